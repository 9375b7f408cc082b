"""Create an Ed25519 key pair for signing access tokens.

``python -m services.common.keys generate --dir DIR`` writes ``signing.pem``
(private, mode 0600) and ``verify.pem`` (public) unless they exist, so a
development stack or a one-shot container gets keys without committing any.
"""

import argparse
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNING_KEY_NAME = "signing.pem"
VERIFY_KEYS_NAME = "verify.pem"


def ensure_key_pair(directory: Path) -> tuple[Path, Path]:
    """The paths of the signing key and verify keys in ``directory``, created if absent."""
    directory.mkdir(parents=True, exist_ok=True)
    signing, verify = directory / SIGNING_KEY_NAME, directory / VERIFY_KEYS_NAME
    if not signing.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(signing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        verify.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return signing, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help="create signing.pem and verify.pem if absent")
    generate.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    signing, verify = ensure_key_pair(args.dir)
    parser.exit(message=f"signing key: {signing}\nverify keys: {verify}\n")


if __name__ == "__main__":
    main()

"""Room codes: short, easy to read aloud and type, no look-alike characters."""

import secrets

# Uppercase letters and digits without 0/O, 1/I/L and the easily confused 5/S, 2/Z, 8/B.
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize(code: str) -> str | None:
    """The canonical (uppercase) code, or None if it cannot be one of ours."""
    canonical = code.strip().upper()
    if not 4 <= len(canonical) <= 16 or any(ch not in ALPHABET for ch in canonical):
        return None
    return canonical

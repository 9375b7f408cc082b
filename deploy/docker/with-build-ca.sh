#!/bin/sh
# Run a command (pip) trusting extra CA certificates when the build was given
# some: the build secret build_ca_certificates, a PEM bundle (for a
# TLS-intercepting proxy). They are added to pip's own bundle in a file that
# lives only while the command runs. Without the secret: the command as is.
set -eu
extra=/run/secrets/build_ca_certificates
if [ ! -s "$extra" ]; then
    exec "$@"
fi
bundle=$(mktemp)
trap 'rm -f "$bundle"' EXIT
cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" "$extra" >"$bundle"
PIP_CERT="$bundle" "$@"

#!/usr/bin/env bash
# Make sure a Chromium the browser tests can drive is installed.
# Playwright's own browser downloads are not used: the tests launch the
# distribution's Chromium at /usr/bin/chromium.
set -euo pipefail

CHROMIUM="${SALA_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $CHROMIUM"
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium missing: installing the Debian package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y chromium
    if [ -x "$CHROMIUM" ]; then
        echo "chromium installed: $CHROMIUM"
        exit 0
    fi
    echo "chromium still missing at $CHROMIUM after apt-get install" >&2
    exit 1
fi

cat >&2 <<MSG
chromium is missing at $CHROMIUM and this script cannot install it
(it needs root and apt-get). Install it yourself, for example:
    sudo apt-get update && sudo apt-get install -y chromium
or point SALA_CHROMIUM at an existing Chromium binary.
MSG
exit 1

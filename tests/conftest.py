"""The running system for integration and browser tests: started once per session.

The stack is the one ``make dev`` runs (tools.devstack), on free ports, with a
throwaway data folder and short timeouts so failure tests finish quickly.
``SALA_TEST_SERVERS=containers`` runs its Postgres and Redis in containers
(testcontainers, tests/containers/servers.py) instead of the embedded servers.
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.devstack import Ports, Stack

GATEWAYS = 2

# Short timeouts, so the grace period and failure detection can be observed quickly.
TEST_SETTINGS = {
    "SALA_ROOM_GRACE_SECONDS": "3",
    "SALA_PRESENCE_TIMEOUT_SECONDS": "3",
    "SALA_HEARTBEAT_SECONDS": "0.5",
    "SALA_LEAVE_GRACE_SECONDS": "3",
    "SALA_FRAME_RATE_PER_SECOND": "200",
    "SALA_FRAME_BURST": "400",
    "SALA_MESSAGE_RATE_PER_USER_PER_SECOND": "100",
    "SALA_MESSAGE_BURST_PER_USER": "200",
    "SALA_HANDSHAKE_TIMEOUT_SECONDS": "2",
    "SALA_PUBSUB_HEALTH_SECONDS": "1",
    "SALA_MESSAGE_RATE_PER_SECOND": "50",
    "SALA_REFRESH_REUSE_GRACE_SECONDS": "1",
    "SALA_SESSION_PURGE_INTERVAL_SECONDS": "0.5",
    "SALA_RATE_LIMIT_WINDOW_SECONDS": "4",
    "SALA_WS_PING_INTERVAL_SECONDS": "1",
    "SALA_WS_PING_TIMEOUT_SECONDS": "1",
    "SALA_LOG_LEVEL": "INFO",
    # Tests open sockets back to back; test_handshake_admission.py gives a replica of its own the production gate.
    "SALA_HANDSHAKE_RATE_PER_SECOND": "1000",
    "SALA_HANDSHAKE_BURST": "1000",
}


def _stack_class() -> type[Stack]:
    """SALA_TEST_SERVERS: "embedded" (the default) or "containers"."""
    servers = os.environ.get("SALA_TEST_SERVERS", "embedded")
    if servers == "containers":
        from tests.containers.servers import ContainerStack

        return ContainerStack
    if servers != "embedded":
        raise pytest.UsageError(f"SALA_TEST_SERVERS must be embedded or containers, not {servers!r}")
    return Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="sala-test-") as tmp:
        data = Path(tmp)
        running = _stack_class()(
            data_dir=data / "data",
            ports=Ports.free(GATEWAYS),
            log_dir=Path(os.environ.get("SALA_TEST_LOG_DIR", data / "logs")),
            fast_storage=True,
            extra_env=TEST_SETTINGS,
            redis_cluster=os.environ.get("SALA_TEST_REDIS", "server") == "cluster",
        )
        try:
            running.start()
            yield running
        finally:
            running.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_docker: needs a Docker engine; the one skip CI allows")
    config.addinivalue_line(
        "markers", "single_redis: drives the one Redis server itself (restarts it, cuts it off); not run on a cluster"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI a skipped test is a failure: servers and the browser must be there.

    An expected failure (a strict xfail naming a known gap) is no skip: it still fails when it passes.
    """
    outcome = yield
    report = outcome.get_result()
    expected_failure = hasattr(report, "wasxfail")
    if os.environ.get("CI") == "true" and report.skipped and not expected_failure and not item.get_closest_marker("needs_docker"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"

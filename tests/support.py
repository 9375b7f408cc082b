"""Helpers every test layer shares."""

import os

import pytest


def unavailable(reason: str) -> None:
    """Stop a test whose tool or server is missing: a failure under CI (where it must be there), else a skip."""
    stop = pytest.fail if os.environ.get("CI", "").lower() in ("1", "true", "yes") else pytest.skip
    stop(reason)

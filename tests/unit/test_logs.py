"""Logging as the services configure it: what uvicorn's per-socket lines show, and at which level."""

import logging
from collections.abc import Iterator

import pytest

from services.common.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    error_log = logging.getLogger("uvicorn.error")
    saved = (root.handlers[:], root.level, error_log.filters[:], logging.getLogger("uvicorn.access").level)
    yield
    root.handlers[:], level, error_log.filters[:], access_level = saved
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(access_level)


def handshake_line() -> None:
    # As uvicorn's WebSocket protocols log an accepted handshake.
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "192.0.2.1:5000", "/ws?room=ABCD2345&token=secret"
    )


def test_at_info_a_socket_handshake_is_not_logged(restored_logging, capsys):
    configure_logging("gateway", "INFO", "text")
    handshake_line()
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    err = capsys.readouterr().err
    assert "WebSocket" not in err
    assert "Application startup complete." in err, "uvicorn's other lines still show"


def test_at_debug_it_is_logged_without_its_query_string(restored_logging, capsys):
    configure_logging("gateway", "DEBUG", "json")
    handshake_line()
    err = capsys.readouterr().err
    assert '\\"WebSocket /ws\\" [accepted]' in err, "JSON-escaped quotes"
    assert "ABCD2345" not in err and "secret" not in err

"""Gateway replicas stopped under the browser: sockets closed with 1012 come back elsewhere.

Failure injection, like tests/integration/test_failures.py: run alone with
``pytest -m failure``.
"""

import re
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import messages_with, send, wait_online
from tests.e2e.test_chat import two_in_a_room

pytestmark = pytest.mark.failure

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"


def edge_memory_of_failures() -> float:
    """How long the edge keeps treating a replica it failed to reach as down (fail_duration)."""
    found = re.search(r"fail_duration\s+(\d+(?:\.\d+)?)s", CADDYFILE.read_text())
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def gateways(stack):
    """Whatever the test stops is running again afterwards."""
    yield stack
    for index in range(len(stack.ports.gateways)):
        if f"gateway{index}" not in stack.children:
            stack.start_child(f"gateway{index}")


def test_stopping_each_gateway_in_turn_keeps_the_conversation(
    new_page, gateways
) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    seen = []
    for index in range(len(gateways.ports.gateways)):
        # SIGTERM: the replica closes its sockets with 1012; the pages come
        # back through the edge to the other replica, with since=.
        gateways.stop_child(f"gateway{index}")
        text = f"after stopping gateway {index}: {uuid.uuid4().hex[:6]}"
        # The edge may hold the replica just restarted as failed for a while;
        # the pages retry with backoff until it takes them.
        for page in (alice, bob):
            expect(page.get_by_test_id("connection-status")).to_have_attribute(
                "data-state", "online", timeout=45_000
            )
        send(alice, text)
        seen.append(text)
        for earlier in seen:
            expect(messages_with(bob, earlier)).to_have_count(1)
            expect(messages_with(alice, earlier)).to_have_count(1)
        gateways.start_child(f"gateway{index}")
        # The edge failed to reach the stopped replica while it was down and
        # keeps it out of rotation for fail_duration even once it answers
        # again: stopping the other replica before then would leave the edge
        # with none, and the room would close. An operator doing a rolling
        # restart has to wait as long.
        time.sleep(edge_memory_of_failures() + 1)
    reply = f"bob is still here {uuid.uuid4().hex[:6]}"
    send(bob, reply)
    expect(messages_with(alice, reply)).to_have_count(1)
    wait_online(alice)
    # Every socket sat on one of the stopped replicas, so each page reconnected
    # at least once, asking for what it missed.
    for page in (alice, bob):
        info = page.evaluate("window.__sala.roomInfo()")
        assert info["connects"] >= 2, info
        assert "since=" in info["lastUrl"], info

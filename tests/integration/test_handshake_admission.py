"""A replica past its handshake rate refuses new sockets with 1013 and a retry hint; the open ones chat on."""

import asyncio
import re

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Socket, ws_url

# Two handshakes at once, then one a second: the third socket in a row is over the rate.
GATE = {"SALA_HANDSHAKE_RATE_PER_SECOND": "1", "SALA_HANDSHAKE_BURST": "2"}


@pytest.fixture
def gated_gateway(stack):
    name = stack.add_replica("gateway", GATE)
    yield stack.service_url(name)
    stack.stop_child(name)


async def open_on(base: str, user, code: str, opened: list[Socket]) -> Socket:
    socket = Socket(await connect(ws_url(base, code), additional_headers=user.bearer, open_timeout=10))
    opened.append(socket)
    return socket


async def refused_hint(socket: Socket) -> int:
    """The socket's close is a 1013 before any frame; the milliseconds its reason says to wait."""
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, closed.value
    hint = re.search(r"\bretry_after_ms=(\d+)\b", closed.value.rcvd.reason)
    assert hint, f"no retry hint in {closed.value.rcvd.reason!r}"
    return int(hint.group(1))


async def test_past_the_burst_a_handshake_is_refused_with_a_hint_and_honoured_after_it(
    gated_gateway, new_user, new_room
):
    alice, bob, carol = await new_user(), await new_user(), await new_user()
    code = await new_room(alice)
    opened: list[Socket] = []
    try:
        a = await open_on(gated_gateway, alice, code, opened)
        await a.recv_type("welcome")
        b = await open_on(gated_gateway, bob, code, opened)
        await b.recv_type("welcome")

        wait_ms = await refused_hint(await open_on(gated_gateway, carol, code, opened))
        assert wait_ms > 0

        said = await a.say("still here")
        heard = await b.recv_type("message")
        assert (heard["id"], heard["text"]) == (said, "still here"), "sockets already open keep chatting"

        await asyncio.sleep(wait_ms / 1000)
        c = await open_on(gated_gateway, carol, code, opened)
        welcome = await c.recv_type("welcome")
        assert said in [event["id"] for event in welcome["history"]]
        said_by_carol = await c.say("made it")
        seen_by_alice = [(await a.recv_type("message"))["id"] for _ in range(2)]  # her own first
        assert seen_by_alice == [said, said_by_carol]

        async with httpx.AsyncClient(base_url=gated_gateway) as client:
            metrics = (await client.get("/metrics")).text
        refused = re.search(r"^sala_gateway_handshakes_refused_total (\S+)$", metrics, re.M)
        assert refused and float(refused.group(1)) >= 1
    finally:
        for socket in opened:
            await socket.close()

"""Chat over the gateways: two replicas serving one room, presence, acks, bad input."""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import ws_url


async def test_users_on_different_replicas_chat_and_see_join_and_leave(api, new_user, new_room, open_socket):
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice, "Across replicas")

    a = await open_socket(alice, code, gateway=0)
    welcome = await a.recv()
    assert welcome["type"] == "welcome"
    assert welcome["room"] == {"code": code, "name": "Across replicas"}
    assert welcome["you"] == alice.username
    assert welcome["members"] == [alice.username]

    b = await open_socket(bob, code, gateway=1)
    welcome_b = await b.recv()
    assert sorted(welcome_b["members"]) == sorted([alice.username, bob.username])
    join = await a.recv_type("join")
    assert join["username"] == bob.username and join["count"] == 2 and "members" not in join

    await a.send({"type": "message", "text": "  hello from A  ", "ref": "a1"})
    frames = {frame["type"]: frame for frame in [await a.recv(), await a.recv()]}
    ack, own = frames["ack"], frames["message"]
    assert ack["ref"] == "a1"
    assert own["id"] == ack["id"], "the sender receives its own message too"
    message = await b.recv_type("message")
    assert message == {"type": "message", "id": ack["id"], "username": alice.username, "text": "hello from A", "ts": message["ts"]}
    assert message["ts"].endswith("Z")

    await b.send({"type": "message", "text": "hi from B"})
    assert (await a.recv_type("message"))["text"] == "hi from B"

    room = (await api.get(f"/api/rooms/{code}", headers=alice.bearer)).json()
    assert room["occupancy"] == 2 and room["members"] == sorted([alice.username, bob.username])

    await b.send({"type": "leave"})
    assert await b.closed_with() == 1000
    leave = await a.recv_type("leave")
    assert leave["username"] == bob.username and leave["count"] == 1 and "members" not in leave

    await a.send({"type": "leave"})
    assert await a.closed_with() == 1000
    assert (await api.get(f"/api/rooms/{code}", headers=alice.bearer)).status_code == 404, "the last member left"


async def test_welcome_carries_recent_history_in_order(new_user, new_room, open_socket):
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code, gateway=0)
    await a.recv()
    for i in range(3):
        await a.send({"type": "message", "text": f"m{i}", "ref": str(i)})
        await a.recv_type("ack")
    b = await open_socket(bob, code, gateway=1)
    welcome = await b.recv()
    texts = [event["text"] for event in welcome["history"] if event["type"] == "message"]
    assert texts == ["m0", "m1", "m2"]
    ids = [event["id"] for event in welcome["history"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


async def test_a_user_with_two_tabs_joins_once_and_leaves_once(new_user, new_room, open_socket):
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code, gateway=0)
    await a.recv()
    b1 = await open_socket(bob, code, gateway=0)
    await b1.recv()
    assert (await a.recv_type("join"))["username"] == bob.username
    b2 = await open_socket(bob, code, gateway=1)
    welcome = await b2.recv()
    assert sorted(welcome["members"]) == sorted([alice.username, bob.username])
    await b1.close()
    # Only the second tab's close may produce a leave: send a marker message and see it arrives first.
    await a.send({"type": "message", "text": "marker", "ref": "m"})
    frame = await a.recv()
    while frame["type"] == "ack":
        frame = await a.recv()
    assert frame["type"] == "message" and frame["text"] == "marker"
    await b2.send({"type": "leave"})
    leave = await a.recv_type("leave")
    assert leave["username"] == bob.username and leave["count"] == 1


async def test_unauthenticated_socket_is_closed_4401(new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    anonymous = await open_socket(None, code)
    assert await anonymous.closed_with() == 4401
    forged = await open_socket(None, code, headers={"Authorization": "Bearer not.a.token"})
    assert await forged.closed_with() == 4401


async def test_unknown_room_is_closed_4404(new_user, open_socket):
    alice = await new_user()
    socket = await open_socket(alice, "ZZZZZZ")
    assert await socket.closed_with() == 4404


async def test_cookie_from_a_foreign_origin_is_refused(stack, new_user, new_room):
    alice = await new_user()
    code = await new_room(alice)
    cookie = {"Cookie": f"chat_session={alice.token}"}
    with pytest.raises(InvalidStatus):
        await connect(ws_url(stack.edge_url, code), additional_headers={**cookie, "Origin": "https://evil.example"})
    async with connect(ws_url(stack.edge_url, code), additional_headers={**cookie, "Origin": stack.edge_url}) as ws:
        assert '"welcome"' in await asyncio.wait_for(ws.recv(), 10)


async def test_logout_closes_open_sockets_with_4001(api, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    first = await open_socket(alice, code, gateway=0)
    second = await open_socket(alice, code, gateway=1)
    await first.recv()
    await second.recv()
    assert (await api.post("/api/auth/logout", headers=alice.bearer)).status_code == 204
    assert await first.closed_with(timeout=2) == 4001
    assert await second.closed_with(timeout=2) == 4001
    late = await open_socket(alice, code)
    assert await late.closed_with() == 4401

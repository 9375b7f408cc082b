"""Presence as the contract states it: the leave grace, explicit leaves, counts, and what is not stored."""

import asyncio
import os
import signal

import pytest

from services.common.redis_schema import (
    DEAD_GATEWAYS,
    GATEWAYS,
    GRACE_VERSIONS,
    GRACES,
    Scripts,
    room_events_key,
    room_key,
)
from tests.conftest import TEST_SETTINGS

GRACE = float(TEST_SETTINGS["SALA_LEAVE_GRACE_SECONDS"])


async def room_status(api, user, code) -> int:
    return (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code


async def frames_until_marker(socket, marker_from, text: str) -> list[dict]:
    """Every frame ``socket`` reads until ``marker_from`` says ``text``: what it saw meanwhile."""
    await marker_from.say(text)
    seen = []
    while not seen or seen[-1].get("text") != text:
        seen.append(await socket.recv())
    return seen


async def test_alone_a_reload_keeps_the_room_and_its_history(api, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    first = await open_socket(alice, code, gateway=0)
    await first.recv_type("welcome")
    said = await first.say("kept across reloads")
    for reload in range(5):
        await first.close()
        first = await open_socket(alice, code, gateway=reload % 2)
        welcome = await first.recv_type("welcome")
        assert welcome["members"] == [alice.username]
        assert [event["id"] for event in welcome["history"] if event["type"] == "message"] == [said]
        assert [event["type"] for event in welcome["history"]] == ["join", "message"], "no leave, no second join"
    assert await room_status(api, alice, code) == 200


async def test_a_member_back_within_the_grace_is_no_leave_and_no_join(pair, open_socket):
    bob, code, a, b = pair.bob, pair.code, pair.a, pair.b
    await a.recv_type("join")
    await b.close()
    back = await open_socket(bob, code, gateway=0)
    await back.recv_type("welcome")
    await asyncio.sleep(GRACE + 1)
    seen = await frames_until_marker(a, back, "back again")
    assert not [frame for frame in seen if frame["type"] in ("join", "leave")]


async def test_a_member_who_does_not_come_back_leaves_after_the_grace(api, pair):
    alice, bob, a, b = pair.alice, pair.bob, pair.a, pair.b
    await a.recv_type("join")
    loop = asyncio.get_running_loop()
    dropped_at = loop.time()
    await b.close()
    leave = await a.recv_type("leave", timeout=GRACE + 10)
    assert loop.time() - dropped_at >= GRACE * 0.9
    assert leave["username"] == bob.username and leave["count"] == 1
    room = (await api.get(f"/api/rooms/{pair.code}", headers=alice.bearer)).json()
    assert room["occupancy"] == 1 and room["members"] == [alice.username]


async def test_the_last_member_gone_without_a_leave_closes_the_room_after_the_grace(api, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code)
    await socket.recv_type("welcome")
    await socket.close()
    assert await room_status(api, alice, code) == 200, "within the grace the room lives"
    async with asyncio.timeout(GRACE + 10):
        while await room_status(api, alice, code) != 404:
            await asyncio.sleep(0.2)


async def test_an_explicit_leave_is_announced_at_once_and_closes_with_1000(pair):
    bob, a, b = pair.bob, pair.a, pair.b
    await a.recv_type("join")
    await b.send({"type": "leave"})
    assert await b.closed_with() == 1000
    leave = await a.recv_type("leave", timeout=GRACE / 2)
    assert leave == {"type": "leave", "id": leave["id"], "username": bob.username, "ts": leave["ts"], "count": 1}


async def test_an_explicit_leave_from_one_tab_keeps_the_user_present_through_the_other(new_user, new_room, open_socket):
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code, gateway=0)
    await a.recv_type("welcome")
    tab1, tab2 = await open_socket(bob, code, gateway=0), await open_socket(bob, code, gateway=1)
    await tab1.recv_type("welcome")
    await tab2.recv_type("welcome")
    await tab1.send({"type": "leave"})
    assert await tab1.closed_with() == 1000
    seen = await frames_until_marker(a, tab2, "still in through tab 2")
    assert [frame["type"] for frame in seen if frame["type"] in ("join", "leave")] == ["join"]


async def test_the_last_member_leaving_explicitly_closes_the_room_at_once(api, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code)
    await socket.recv_type("welcome")
    await socket.send({"type": "leave"})
    assert await socket.closed_with() == 1000
    assert await room_status(api, alice, code) == 404
    again = await open_socket(alice, code)
    assert await again.closed_with() == 4404


async def test_logout_is_an_explicit_leave(api, pair):
    bob, a, b = pair.bob, pair.a, pair.b
    await a.recv_type("join")
    assert (await api.post("/api/auth/logout", headers=bob.bearer)).status_code == 204
    assert await b.closed_with(timeout=3) == 4001
    leave = await a.recv_type("leave", timeout=GRACE / 2)
    assert leave["username"] == bob.username


async def test_joins_count_present_users(new_user, new_room, open_socket):
    users = [await new_user() for _ in range(3)]
    code = await new_room(users[0])
    first = await open_socket(users[0], code)
    await first.recv_type("welcome")
    for n, user in enumerate(users[1:], start=2):
        await (await open_socket(user, code)).recv_type("welcome")
        join = await first.recv_type("join")
        assert join["username"] == user.username and join["count"] == n and "members" not in join


async def test_a_resent_ref_is_stored_once_and_acked_with_the_first_id(pair, redis_client):
    a, b, code = pair.a, pair.b, pair.code
    await a.recv_type("join")
    first = await a.say("only once", ref="same-ref")
    again = await a.say("only once", ref="same-ref")
    assert again == first
    marker = await a.say("marker")
    received = []
    while not received or received[-1] != marker:
        received.append((await b.recv_type("message"))["id"])
    assert received == [first, marker]
    stored = [entry for entry in await redis_client.xrange(room_events_key(code)) if "only once" in entry[1]["e"]]
    assert len(stored) == 1


async def test_a_resent_ref_after_a_reconnect_is_stored_once(pair, open_socket):
    alice, code, a = pair.alice, pair.code, pair.a
    first = await a.say("sent before the blip", ref="blip-1")
    await a.close()
    again = await open_socket(alice, code, gateway=1, since=first)
    await again.recv_type("welcome")
    assert await again.say("sent before the blip", ref="blip-1") == first


async def test_refs_are_per_user(pair):
    a, b = pair.a, pair.b
    await a.recv_type("join")
    assert await a.say("from alice", ref="shared") != await b.say("from bob", ref="shared")


async def test_ping_is_answered_with_pong(new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code)
    await socket.recv_type("welcome")
    await socket.send({"type": "ping"})
    assert await socket.recv() == {"type": "pong"}


async def test_typing_reaches_the_others_only_and_is_never_stored(pair, open_socket):
    alice, bob, code, a, b = pair.alice, pair.bob, pair.code, pair.a, pair.b
    await a.recv_type("join")
    alice_tab2 = await open_socket(alice, code, gateway=1)
    await alice_tab2.recv_type("welcome")
    await a.send({"type": "typing"})
    assert await b.recv_type("typing") == {"type": "typing", "username": alice.username}
    seen = await frames_until_marker(alice_tab2, b, "after typing")
    assert not [frame for frame in seen if frame["type"] == "typing"], "never sent to the typist's own sockets"
    late = await open_socket(bob, code, gateway=0)
    welcome = await late.recv_type("welcome")
    assert not [event for event in welcome["history"] if event["type"] == "typing"]


async def test_members_of_a_killed_replica_back_within_the_grace_cause_no_leave(stack, pair, open_socket):
    bob, code, a = pair.bob, pair.code, pair.a
    await a.recv_type("join")
    stack.stop_child("gateway1", signal.SIGKILL)
    try:
        # Presumed dead after the presence timeout; bob comes back within the grace that follows.
        await asyncio.sleep(float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"]) + 1)
        back = await open_socket(bob, code, gateway=0)
        await back.recv_type("welcome")
        await asyncio.sleep(GRACE + 1)
        seen = await frames_until_marker(a, back, "survived the replica")
        assert not [frame for frame in seen if frame["type"] in ("join", "leave")]
    finally:
        stack.start_child("gateway1")


@pytest.mark.parametrize("since", ["99999999999999999999-0", "1-99999999999999999999", "x-1"])
async def test_an_out_of_range_since_gets_invalid_since_and_the_latest_events(new_user, new_room, open_socket, since):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code, since=since)
    error = await socket.recv()
    assert error["type"] == "error" and error["code"] == "invalid_since"
    welcome = await socket.recv_type("welcome")
    assert [event["type"] for event in welcome["history"]] == ["join"]


async def test_a_join_run_twice_for_one_socket_counts_it_once(new_user, new_room, redis_client):
    """A batch resent after its connection broke may run a join again: the socket's one leave must still end it."""
    alice = await new_user()
    code = await new_room(alice)
    scripts = Scripts.register(redis_client)
    room = room_key(code)
    args = ["c-alice", alice.id, alice.username, "2026-01-01T00:00:00.000Z", 1000, "gw-x"]
    first = await scripts.join(keys=[room], args=args)
    again = await scripts.join(keys=[room], args=args)
    assert first[0] != "" and again[0] == "", "one join event"
    assert await redis_client.hget(room + ":users", alice.id) == "1"
    outcome, *_ = await scripts.leave(keys=[room], args=["c-alice", "ts", 1000, 0])
    assert outcome == "closed", "she was alone: her one leave closes the room"
    assert await redis_client.hget(room + ":users", alice.id) is None


async def test_a_grace_started_while_the_reaper_works_is_never_dropped(new_user, new_room, redis_client):
    """The reaper reads a room's graces, then settles the index; a grace that began in between must survive."""
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    scripts = Scripts.register(redis_client)
    room = room_key(code)
    for conn, user in (("c-alice", alice), ("c-bob", bob)):
        await scripts.join(keys=[room], args=[conn, user.id, user.username, "2026-01-01T00:00:00.000Z", 1000, "gw-x"])
    # Alice dropped long ago: the reaper ends her grace and reads that no grace is left...
    _, due, version, live = await scripts.leave(keys=[room], args=["c-alice", "ts", 1000, 60_000])
    await scripts.index_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, due, version])
    await redis_client.zadd(room + ":grace", {alice.id: 1})
    seen = await scripts.expire_graces(keys=[room], args=["ts", 1000, 10])
    assert seen[0] == 0 and seen[2] == 1
    # ... bob drops meanwhile and indexes his grace ...
    _, bob_due, bob_version, _ = await scripts.leave(keys=[room], args=["c-bob", "ts", 1000, 60_000])
    await scripts.index_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, bob_due, bob_version])
    # ... and the reaper settles with what it saw: bob's grace keeps the room in the index.
    await scripts.settle_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, *seen])
    assert await redis_client.zscore(GRACES, code) is not None
    # Were both graces over, the room closes and its entry goes.
    await redis_client.zadd(room + ":grace", {bob.id: 1})
    closed = await scripts.expire_graces(keys=[room], args=["ts", 1000, 10])
    assert closed == [0, 0, 0]
    await scripts.settle_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, *closed])
    assert await redis_client.zscore(GRACES, code) is None
    assert await redis_client.hget(GRACE_VERSIONS, code) is None


async def test_a_frozen_gateway_presumed_dead_comes_back_under_a_new_id(stack, pair, open_socket, redis_client):
    bob, code, a, b = pair.bob, pair.code, pair.a, pair.b
    await a.recv_type("join")
    before = set(await redis_client.zrange(GATEWAYS, 0, -1))
    pid = stack.pid("gateway1")
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"]) + 1.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    # Presumed dead meanwhile: back, it closes its sockets so their users rejoin, and beats under a new id.
    assert await b.closed_with(timeout=10) == 1012
    back = await open_socket(bob, code, gateway=1)
    # The thawed gateway's pub/sub links may still be reconnecting: a socket waits for its room's subscription
    # up to the gateway's subscribe timeout (10 s), so the welcome may take longer than one.
    await back.recv_type("welcome", timeout=25)
    after = set(await redis_client.zrange(GATEWAYS, 0, -1))
    assert after - before, "the thawed gateway took a new id"
    assert not await redis_client.smembers(DEAD_GATEWAYS) & after
    seen = await frames_until_marker(a, back, "after the freeze")
    assert not [frame for frame in seen if frame["type"] in ("join", "leave")]

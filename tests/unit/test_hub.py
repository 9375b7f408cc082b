"""The hub's fan-out and recovery, against fake subscribers and a fake pub/sub session: no server."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.redis_schema import REVOCATIONS_CHANNEL, room_key
from services.gateway import hub as hub_module
from services.gateway import timeline
from services.gateway.closes import Close
from services.gateway.hub import LocalRoom
from services.gateway.protocol import encode_text_frame
from services.gateway.wire import Reply
from tests.unit.fakes import FakeCluster, FakePubSubClient, FakeSubscriber, event, hub, until

CHANNEL = room_key("ROOM")


@pytest.fixture
def encodes(monkeypatch):
    """Counts the room's frame encodings."""
    calls: list[str] = []

    def counting(text: str) -> bytes:
        calls.append(text)
        return encode_text_frame(text)

    monkeypatch.setattr(hub_module, "encode_text_frame", counting)
    return calls


# LocalRoom.dispatch


async def test_events_reach_every_socket_in_order_encoded_once_each(encodes):
    room = LocalRoom("ROOM")
    members = [FakeSubscriber(username=name) for name in ("ana", "ben", "cai")]
    room.sockets.update(members)
    events = [event(ms) for ms in (1, 2, 3)]
    for event_id, frame in events:
        assert room.dispatch(event_id, frame) == 3
    assert encodes == [frame for _, frame in events]
    for member in members:
        assert member.ids == [(1, 0), (2, 0), (3, 0)]
        assert [wire for _, _, wire in member.delivered] == [encode_text_frame(frame) for _, frame in events]
    for position in range(3):
        wires = {id(member.delivered[position][2]) for member in members}
        assert len(wires) == 1, "every socket gets the same encoded bytes object"


async def test_duplicates_and_older_events_are_dropped(encodes):
    room = LocalRoom("ROOM")
    member = FakeSubscriber()
    room.sockets.add(member)
    room.dispatch(*event(5))
    assert room.dispatch(*event(5)) == 0
    assert room.dispatch(*event(4)) == 0
    assert room.dispatch((5, 0), event(5)[1]) == 0
    assert room.dispatch((5, 1), event(5)[1]) == 1
    assert member.ids == [(5, 0), (5, 1)]
    assert len(encodes) == 2, "a dropped event is not encoded"
    assert room.last_id == (5, 1)


async def test_a_run_of_events_goes_to_each_socket_in_one_call_encoded_once_each(encodes):
    room = LocalRoom("ROOM")
    members = [FakeSubscriber(username=name) for name in ("ana", "ben")]
    room.sockets.update(members)
    room.dispatch(*event(2))
    assert room.dispatch_run([event(1), event(2), event(3), event(3), event(4)]) == 4, "two new events, two sockets"
    assert encodes == [event(ms)[1] for ms in (2, 3, 4)], "what was already dispatched is dropped unencoded"
    for member in members:
        assert member.runs == [2] and member.ids == [(2, 0), (3, 0), (4, 0)]
    assert room.last_id == (4, 0)
    assert room.dispatch_run([event(4), event(5)]) == 2
    assert members[0].runs == [2], "a single new event goes out as ``dispatch`` gives it"


async def test_an_empty_room_still_moves_its_last_id():
    room = LocalRoom("ROOM")
    assert room.dispatch(*event(3)) == 0
    member = FakeSubscriber()
    room.sockets.add(member)
    assert room.dispatch(*event(2)) == 0
    assert member.delivered == []


async def test_seen_only_starts_the_count_of_a_room_without_live_events():
    room = LocalRoom("ROOM")
    member = FakeSubscriber()
    room.sockets.add(member)
    room.seen(None)
    assert room.last_id is None
    room.seen((7, 0))
    assert room.last_id == (7, 0)
    room.seen((6, 0))
    room.seen(None)
    assert room.last_id == (7, 0)
    assert room.dispatch(*event(7)) == 0
    assert room.dispatch(*event(6)) == 0
    assert room.dispatch(*event(8)) == 1
    assert member.ids == [(8, 0)]


async def test_an_event_in_a_new_sockets_history_still_reaches_the_others_live():
    """Bob's join is in his welcome's history before it arrives over pub/sub: alice must still get it."""
    room = LocalRoom("ROOM")
    alice = FakeSubscriber()
    room.sockets.add(alice)
    room.seen((5, 0))
    room.sockets.add(FakeSubscriber())
    room.seen((9, 0))
    assert room.dispatch(*event(9)) == 2
    assert alice.ids == [(9, 0)]


async def test_typing_skips_every_socket_of_its_author(encodes):
    room = LocalRoom("ROOM")
    ana_tab1, ana_tab2 = FakeSubscriber(username="ana"), FakeSubscriber(username="ana", session_id="s2")
    ben = FakeSubscriber(username="ben", session_id="s3")
    room.sockets.update({ana_tab1, ana_tab2, ben})
    frame = '{"type":"typing","username":"ana"}'
    room.dispatch_ephemeral(frame)
    assert ana_tab1.ephemeral == [] and ana_tab2.ephemeral == []
    assert ben.ephemeral == [encode_text_frame(frame)]
    assert encodes == [frame]
    assert room.last_id is None, "an ephemeral frame is no event"


# A link's reading of messages


@pytest.mark.parametrize(
    "garbage",
    [
        "not json",
        "",
        "[1, 2]",
        '"a string"',
        "null",
        '{"id":"not-an-id","type":"message"}',
        '{"id":"12',
        '{"id":"-"}',
    ],
)
async def test_foreign_garbage_on_a_room_channel_is_ignored(garbage):
    fanned: list[int] = []
    the_hub = hub(on_fanout=fanned.append)
    room = the_hub.rooms["ROOM"] = LocalRoom("ROOM")
    room.link = the_hub._control
    member = FakeSubscriber()
    room.sockets.add(member)
    await the_hub._control._handle(Reply("message", CHANNEL, garbage))
    assert member.delivered == [] and member.ephemeral == [] and member.closed == []
    assert room.last_id is None and fanned == []
    await the_hub._control._handle(Reply("message", CHANNEL, event(1)[1]))
    assert member.ids == [(1, 0)] and fanned == [1], "the room still works after the garbage"


async def test_a_revocation_closes_that_sessions_sockets_only():
    the_hub = hub()
    mine, other = FakeSubscriber(session_id="s1"), FakeSubscriber(session_id="s2")
    the_hub.watch_session(mine)
    the_hub.watch_session(other)
    await the_hub._control._handle(Reply("message", REVOCATIONS_CHANNEL, "s1"))
    assert [code for code, _ in mine.closed] == [Close.SESSION_ENDED]
    assert other.closed == []


# Recovery after a dropped subscription


@pytest.fixture
def missed(monkeypatch):
    """The room's stream as ``timeline.events_after`` reads it; records each read."""
    stream: list[tuple[tuple[int, int], str]] = []
    reads: list[tuple[str, tuple[int, int]]] = []

    async def events_after(redis, code, after):
        reads.append((code, after))
        return [(event_id, frame) for event_id, frame in stream if event_id > after]

    monkeypatch.setattr(timeline, "events_after", events_after)
    monkeypatch.setattr(hub_module, "MIN_BACKOFF_SECONDS", 0)
    return stream, reads


async def _running_hub(client: FakePubSubClient, **kwargs):
    the_hub = hub(client, **kwargs)
    await the_hub.start()
    member = FakeSubscriber()
    async with asyncio.timeout(5):
        await the_hub.attach(member)
    await until(the_hub.is_connected)
    return the_hub, member


async def test_after_a_dropped_subscription_missed_events_come_first_and_once(missed):
    stream, reads = missed
    reconnects: list[None] = []
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client, on_reconnect=lambda: reconnects.append(None))
    try:
        first = client.sessions[0]
        stream.append(event(1))
        first.publish(CHANNEL, event(1)[1])
        await until(lambda: member.ids == [(1, 0)])

        # While the connection is down, 2 and 3 are stored; 3 is also heard live on the new session,
        # read while the hub subscribes (before it reads the stream), and 4 comes after.
        stream.extend([event(2), event(3)])

        def on_new_session(pubsub):
            pubsub.on_subscribe = lambda session: session.publish(CHANNEL, event(3)[1])

        client.prepare = on_new_session
        first.fail(RedisConnectionError("connection lost"))
        await until(lambda: len(client.sessions) == 2 and the_hub.is_connected())
        client.sessions[1].publish(CHANNEL, event(4)[1])
        # Messages are handled in order: once 4 is in, any duplicate before it would be too.
        await until(lambda: (4, 0) in member.ids)

        assert member.ids == [(1, 0), (2, 0), (3, 0), (4, 0)]
        assert reads == [("ROOM", (1, 0))]
        assert reconnects == [None]
        assert first.closed
        assert CHANNEL in client.sessions[1].channels and REVOCATIONS_CHANNEL in client.sessions[1].channels
    finally:
        await the_hub.stop()


async def test_every_message_one_read_brings_is_handed_over_in_order(missed):
    _, reads = missed
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        session = client.sessions[0]
        before = session.reads
        for ms in range(1, 6):
            session.publish(CHANNEL, event(ms)[1])
        await until(lambda: len(member.ids) == 5)
        assert member.ids == [(ms, 0) for ms in range(1, 6)]
        assert session.reads == before + 1, "one read brought all five"
        assert reads == []
    finally:
        await the_hub.stop()


async def test_one_read_s_events_go_out_per_room_in_runs_split_by_typing_and_revocations(missed):
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    other = FakeSubscriber(code="OTHR", session_id="s2")
    try:
        async with asyncio.timeout(5):
            await the_hub.attach(other)
        the_hub.watch_session(member)
        session = client.sessions[0]
        typing = '{"type":"typing","username":"ben"}'
        before = session.reads
        session.publish(CHANNEL, event(1)[1])
        session.publish(room_key("OTHR"), event(2)[1])
        session.publish(CHANNEL, event(3)[1])
        session.publish(CHANNEL, typing)
        session.publish(CHANNEL, event(4)[1])
        session.publish(CHANNEL, event(5)[1])
        session.publish(REVOCATIONS_CHANNEL, "s1")
        session.publish(CHANNEL, event(6)[1])
        await until(lambda: (6, 0) in member.ids)
        assert session.reads == before + 1, "one read brought them all"
        assert member.trail == [(1, 0), (3, 0), "typing", (4, 0), (5, 0), "close", (6, 0)]
        assert member.runs == [2, 2], "1 and 3 in one write, 4 and 5 in another"
        assert other.ids == [(2, 0)] and other.closed == []
    finally:
        await the_hub.stop()


async def test_a_failure_read_behind_messages_comes_after_them(missed):
    stream, reads = missed
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        first = client.sessions[0]
        stream.extend([event(1), event(2), event(3)])
        first.publish(CHANNEL, event(1)[1])
        first.publish(CHANNEL, event(2)[1])
        first.fail(RedisConnectionError("connection lost"))
        await until(lambda: len(client.sessions) == 2 and the_hub.is_connected())
        await until(lambda: (3, 0) in member.ids)
        assert member.ids == [(1, 0), (2, 0), (3, 0)]
        assert reads == [("ROOM", (2, 0))], "the gap is read from the last event heard before the failure"
    finally:
        await the_hub.stop()


async def test_the_unsubscribe_task_is_kept_until_it_is_done():
    """Issue 11 defect 2: a task nobody references may be collected before it runs."""
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        session = client.sessions[0]
        session.hold_unsubscribe = asyncio.Event()
        the_hub.detach(member)
        assert "ROOM" not in the_hub.rooms
        assert len(the_hub._unsubscribes) == 1
        (task,) = the_hub._unsubscribes
        await until(lambda: session.unsubscribing == [CHANNEL])
        assert not task.done() and task in the_hub._unsubscribes
        session.hold_unsubscribe.set()
        await task
        await asyncio.sleep(0)
        assert the_hub._unsubscribes == set()
        assert session.unsubscribed == [CHANNEL]
    finally:
        await the_hub.stop()


async def test_a_room_joined_again_before_its_unsubscribe_runs_stays_subscribed():
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        the_hub.detach(member)
        again = FakeSubscriber(session_id="s2")
        async with asyncio.timeout(5):
            await the_hub.attach(again)
        await until(lambda: not the_hub._unsubscribes)
        assert client.sessions[0].unsubscribed == []
        client.sessions[0].publish(CHANNEL, event(1)[1])
        await until(lambda: again.ids == [(1, 0)])
    finally:
        await the_hub.stop()


async def test_a_lost_connection_that_fails_to_close_does_not_stop_the_reader(missed):
    """Closing a broken pub/sub connection may raise; the reader must reconnect all the same, not die."""
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        first = client.sessions[0]

        async def broken_close() -> None:
            raise RedisConnectionError("Connection reset by peer")

        first.aclose = broken_close
        first.fail(RedisConnectionError("Connection lost"))
        await until(lambda: len(client.sessions) == 2 and the_hub.is_connected())
        client.sessions[1].publish(room_key("ROOM"), event(3)[1])
        await until(lambda: (3, 0) in member.ids)
    finally:
        await the_hub.stop()


# On a cluster: a link per primary, rooms moved when their slot moves


async def _sharded_hub(cluster: FakeCluster, *codes: str):
    the_hub = hub(cluster)
    await the_hub.start()
    members = {}
    for code in codes:
        members[code] = FakeSubscriber(code=code, session_id=f"s-{code}")
        the_hub.watch_session(members[code])
        async with asyncio.timeout(5):
            await the_hub.attach(members[code])
    await until(the_hub.is_connected)
    return the_hub, members


async def test_each_room_is_subscribed_sharded_on_its_own_primary(missed):
    cluster = FakeCluster()
    cluster.owners[room_key("BBBB")] = "b:1"
    the_hub, members = await _sharded_hub(cluster, "AAAA", "BBBB")
    try:
        assert cluster.control.sessions[0].channels == {REVOCATIONS_CHANNEL}
        assert cluster.session("a:1").channels == {room_key("AAAA")}
        assert cluster.session("b:1").channels == {room_key("BBBB")}
        cluster.session("a:1").spublish(room_key("AAAA"), event(1)[1])
        cluster.session("b:1").spublish(room_key("BBBB"), event(2)[1])
        await until(lambda: members["AAAA"].ids == [(1, 0)] and members["BBBB"].ids == [(2, 0)])
        cluster.control.sessions[0].publish(REVOCATIONS_CHANNEL, "s-BBBB")
        await until(lambda: members["BBBB"].closed != [])
        assert members["AAAA"].closed == []
    finally:
        await the_hub.stop()


async def test_rooms_on_one_primary_are_subscribed_one_command_each_after_a_reconnect(missed):
    cluster = FakeCluster()
    the_hub, members = await _sharded_hub(cluster, "AAAA", "CCCC", "DDDD")
    try:
        cluster.session("a:1").fail(RedisConnectionError("connection reset"))
        await until(lambda: len(cluster.nodes["a:1"].sessions) == 2 and the_hub.is_connected())
        again = cluster.session("a:1")
        assert again.channels == {room_key(code) for code in ("AAAA", "CCCC", "DDDD")}
        assert all(len(command) == 1 for command in again.subscribes)
    finally:
        await the_hub.stop()


async def test_a_room_whose_slot_moves_resubscribes_on_the_new_primary_and_recovers_the_gap(missed):
    stream, reads = missed
    cluster = FakeCluster()
    the_hub, members = await _sharded_hub(cluster, "AAAA")
    member = members["AAAA"]
    try:
        stream.append(event(1))
        cluster.session("a:1").spublish(room_key("AAAA"), event(1)[1])
        await until(lambda: member.ids == [(1, 0)])

        # The slot moves to b:1; 2 is published there before the hub subscribes, 3 after.
        cluster.owners[room_key("AAAA")] = "b:1"
        stream.append(event(2))
        cluster.session("a:1").slot_moved(room_key("AAAA"))
        await until(lambda: "b:1" in cluster.nodes and cluster.nodes["b:1"].sessions != [])
        await until(lambda: room_key("AAAA") in cluster.session("b:1").channels)
        await until(lambda: (2, 0) in member.ids)
        stream.append(event(3))
        cluster.session("b:1").spublish(room_key("AAAA"), event(3)[1])
        await until(lambda: (3, 0) in member.ids)

        assert member.ids == [(1, 0), (2, 0), (3, 0)]
        assert ("AAAA", (1, 0)) in reads
        assert the_hub.rooms["AAAA"].link.node == "b:1"
        assert cluster.refreshes >= 1
    finally:
        await the_hub.stop()


@pytest.mark.parametrize("placer", ["running", "stopped"])
async def test_after_a_failover_rooms_move_to_the_promoted_primary_with_no_gap(missed, placer):
    """With the placer stopped only the reconnecting link itself can notice the failover: a primary restarted
    right after its replica took over answers again, stale, and the room must not be subscribed there again."""
    stream, _ = missed
    cluster = FakeCluster()
    the_hub, members = await _sharded_hub(cluster, "AAAA")
    member = members["AAAA"]
    try:
        stream.append(event(1))
        cluster.session("a:1").spublish(room_key("AAAA"), event(1)[1])
        await until(lambda: member.ids == [(1, 0)])
        if placer == "stopped":
            the_hub._placer.cancel()

        # a:1 dies; its replica c:1 takes its slots, and 2 is stored there meanwhile.
        cluster.owners[room_key("AAAA")] = "c:1"
        stream.append(event(2))
        cluster.session("a:1").fail(RedisConnectionError("connection reset"))
        await until(lambda: (2, 0) in member.ids)
        cluster.session("c:1").spublish(room_key("AAAA"), event(3)[1])
        await until(lambda: (3, 0) in member.ids)
        assert member.ids == [(1, 0), (2, 0), (3, 0)]
        assert the_hub.rooms["AAAA"].link.node == "c:1"
        assert all(room_key("AAAA") not in session.channels for session in cluster.nodes["a:1"].sessions[1:])
    finally:
        await the_hub.stop()


async def test_a_moved_refusal_places_the_room_again(missed):
    """A stale slot map sends the subscription to the wrong primary: MOVED, then the room goes where it belongs."""
    stream, _ = missed
    cluster = FakeCluster()
    cluster.node_client("a:1").prepare = lambda session: setattr(
        session, "refuse", lambda channel: cluster.owners.get(channel) == "b:1"
    )
    the_hub, members = await _sharded_hub(cluster, "AAAA")
    try:
        cluster.owners[room_key("BBBB")] = "b:1"
        late = FakeSubscriber(code="BBBB", session_id="s-late")
        stale = cluster.owner
        cluster.owner = lambda channel: "a:1" if cluster.refreshes == 0 else stale(channel)
        async with asyncio.timeout(5):
            await the_hub.attach(late)
        assert the_hub.rooms["BBBB"].link.node == "b:1"
        stream.append(event(4))
        cluster.session("b:1").spublish(room_key("BBBB"), event(4)[1])
        await until(lambda: late.ids == [(4, 0)])
    finally:
        await the_hub.stop()


async def test_only_the_rooms_of_a_lost_shard_are_closed_as_cut_off(missed):
    cluster = FakeCluster()
    cluster.owners[room_key("BBBB")] = "b:1"
    the_hub, members = await _sharded_hub(cluster, "AAAA", "BBBB")
    try:
        the_hub._links["b:1"].lost_at = the_hub._links["b:1"].lost_at or 0.0
        assert the_hub.close_cut_off(30, Close.TRY_AGAIN, "cut off") == 1
        assert [code for code, _ in members["BBBB"].closed] == [Close.TRY_AGAIN]
        assert members["AAAA"].closed == []
        assert the_hub.bus_lost_for("BBBB") >= 30 and the_hub.bus_lost_for("AAAA") == 0
    finally:
        await the_hub.stop()


async def test_a_cancellation_escaping_the_client_library_does_not_end_the_link(missed):
    """Only stop() ends a link: a bare CancelledError from a read reconnects, and the gap is recovered."""
    stream, _ = missed
    client = FakePubSubClient()
    the_hub, member = await _running_hub(client)
    try:
        stream.append(event(1))
        client.sessions[0].publish(CHANNEL, event(1)[1])
        await until(lambda: member.ids == [(1, 0)])
        stream.append(event(2))
        client.sessions[0].fail(asyncio.CancelledError())
        await until(lambda: len(client.sessions) == 2 and the_hub.is_connected())
        await until(lambda: member.ids == [(1, 0), (2, 0)])
    finally:
        await the_hub.stop()

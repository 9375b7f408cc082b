"""One socket's delivery and receive loop, against a fake ASGI socket and direct writer: no server."""

import asyncio

import orjson
import pytest

from services.gateway.closes import Close
from services.gateway.frames import PONG_FRAME
from services.gateway.protocol import encode_text_frame
from services.gateway.timeline import History
from tests.unit.fakes import (
    FakeAppender,
    FakeHub,
    FakePresence,
    FakeWebSocket,
    FakeWriter,
    connection,
    context,
    event,
    finished,
    gateway_settings,
    until,
)

ACK = '{"type":"ack","ref":"r1","id":"9-0"}'


def idle_socket(**settings):
    """A socket past its welcome: the direct writer set up, nothing queued, no sender running yet."""
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    conn = connection(context(gateway_settings(**settings)), websocket)
    conn._write_frame = writer
    return conn, websocket, writer


def deliver(conn, ms):
    event_id, frame = event(ms)
    conn.deliver(event_id, frame, encode_text_frame(frame))


async def run_pump(conn):
    """Start the socket's receive loop, which starts a sender whenever frames wait."""
    task = asyncio.create_task(conn._pump())
    await asyncio.sleep(0)
    return task


async def cancel(task):
    """End a task the test no longer needs, whatever state it is in."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def stop(task):
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# deliver: the direct path and the queue


async def test_a_frame_goes_straight_to_an_idle_socket():
    conn, websocket, writer = idle_socket()
    event_id, frame = event(1)
    wire = encode_text_frame(frame)
    conn.deliver(event_id, frame, wire)
    assert writer.written == [wire] and writer.written[0] is wire
    assert conn.queued == 0 and websocket.sent == []
    assert conn.last_id == (1, 0)


async def test_before_the_writer_is_set_up_frames_are_queued():
    conn = connection()
    deliver(conn, 1)
    assert conn.queued == 1
    assert conn.last_id == (0, 0), "the id moves when the frame goes out"


async def test_a_refusing_transport_queues_the_frame():
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    deliver(conn, 1)
    assert writer.written == [] and conn.queued == 1
    assert conn.last_id == (0, 0)


async def test_order_is_kept_between_the_direct_path_and_the_queue():
    conn, websocket, writer = idle_socket()
    deliver(conn, 1)
    writer.accepting = False
    deliver(conn, 2)
    writer.accepting = True
    deliver(conn, 3)
    conn._reply(ACK)
    assert conn.queued == 3, "nothing skips frames already waiting"
    assert len(writer.written) == 1
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and not conn._sending)
        deliver(conn, 4)
        assert writer.transcript == [event(1)[1], event(2)[1], event(3)[1], ACK, event(4)[1]]
        assert websocket.sent == [event(2)[1], event(3)[1], ACK], "4 went straight out once the queue was empty"
        assert conn.last_id == (4, 0)
    finally:
        await stop(task)


async def test_old_ids_are_dropped_on_the_direct_path():
    conn, _, writer = idle_socket()
    deliver(conn, 3)
    deliver(conn, 3)
    deliver(conn, 2)
    assert writer.transcript == [event(3)[1]]
    assert conn.queued == 0 and conn.last_id == (3, 0)


async def test_old_ids_are_dropped_on_the_queued_path():
    conn, websocket, writer = idle_socket()
    deliver(conn, 3)
    writer.accepting = False
    for ms in (5, 4, 5, 3, 6):
        deliver(conn, ms)
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and not conn._sending)
        assert websocket.sent == [event(5)[1], event(6)[1]]
        assert conn.last_id == (6, 0)
    finally:
        await stop(task)


async def test_replies_are_never_dropped_as_old():
    conn, websocket, writer = idle_socket()
    deliver(conn, 5)
    writer.accepting = False
    conn._reply(ACK)
    conn._reply(ACK)
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and not conn._sending)
        assert websocket.sent == [ACK, ACK]
    finally:
        await stop(task)


async def test_typing_skips_a_backed_up_socket():
    conn, _, writer = idle_socket()
    typing = encode_text_frame('{"type":"typing","username":"ben"}')
    conn.deliver_ephemeral(typing)
    writer.accepting = False
    deliver(conn, 1)
    writer.accepting = True
    conn.deliver_ephemeral(typing)
    assert writer.written == [typing]
    assert conn.queued == 1


# The bound, and closes that must not wait behind a peer that stopped reading


async def test_a_socket_past_the_queue_bound_is_closed_with_1013():
    conn = connection(context(gateway_settings(send_queue_max=3)))
    for ms in (1, 2, 3):
        deliver(conn, ms)
    assert conn.queued == 3
    deliver(conn, 4)
    deliver(conn, 5)
    assert conn.queued == 4, "nothing past the bound was queued, only the close"
    await finished(asyncio.create_task(conn._pump()))
    websocket = conn.websocket
    assert [code for code, _ in websocket.closes] == [Close.TRY_AGAIN]
    assert websocket.sent == [], "the backlog is skipped: the close does not wait behind it"


async def test_a_client_flooding_bad_frames_without_reading_is_closed_at_the_bound():
    bound = 4
    conn, websocket, writer = idle_socket(send_queue_max=bound, frame_burst=1000)
    frames_queued: list[int] = []
    websocket.on_receive = lambda: frames_queued.append(sum(1 for item in conn._queue if isinstance(item, tuple)))
    writer.accepting = False
    websocket.stalled = True
    deliver(conn, 1)
    pump = asyncio.create_task(conn._pump())
    await until(lambda: conn._sending)
    for _ in range(50):
        websocket.client_sends("not json")
    await finished(pump)
    assert [code for code, _ in websocket.closes] == [Close.TRY_AGAIN]
    assert max(frames_queued) <= bound
    assert websocket.receives < 50, "the socket was closed while the flood went on"


async def test_a_close_cuts_off_a_sender_stuck_in_send():
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    websocket.stalled = True
    deliver(conn, 1)
    task = await run_pump(conn)
    await until(lambda: conn._sending)
    conn.close(Close.SERVICE_RESTART, "draining")
    await finished(task)
    assert websocket.closes == [(Close.SERVICE_RESTART, "draining")]
    assert websocket.sent == []
    assert conn._sending is False and conn._sender is None


async def test_a_close_while_stuck_in_send_reaches_the_socket():
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    websocket.stalled = True
    deliver(conn, 1)
    pump = asyncio.create_task(conn._pump())
    await until(lambda: conn._sending)
    conn.close(Close.TRY_AGAIN, "too far behind")
    await finished(pump)
    assert websocket.closes == [(Close.TRY_AGAIN, "too far behind")]


async def test_a_close_queued_while_the_sender_is_idle_skips_the_backlog():
    """A close made before the sender picked up the backlog goes out at once, not behind it.

    The bound can be passed within one turn of the loop (the hub's recovery
    dispatching many missed events at once) while the sender has not run:
    ``close()`` then only queues the close. Were the sender to send the
    backlog first, it would stall on a peer that reads nothing and the close
    would wait behind it.
    """
    conn, websocket, writer = idle_socket(send_queue_max=3)
    writer.accepting = False
    websocket.stalled = True
    pump = asyncio.create_task(conn._pump())
    await asyncio.sleep(0)
    for ms in range(1, 6):
        deliver(conn, ms)
    try:
        # Let the loop run until nothing more can happen: the pump ends, or the sender is stuck for good.
        for _ in range(100):
            await asyncio.sleep(0)
        assert [code for code, _ in websocket.closes] == [Close.TRY_AGAIN]
    finally:
        await cancel(pump)


async def test_sending_is_reset_when_a_send_fails():
    """Issue 11 defect 7: a stale ``_sending`` would route every later frame to the queue."""
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    websocket.send_error = OSError("broken pipe")
    deliver(conn, 1)
    task = await run_pump(conn)
    await finished(task)
    assert websocket.closes == [], "a broken transport ends the socket without a close frame"
    assert conn._sending is False
    writer.accepting = True
    deliver(conn, 2)
    assert writer.transcript == [event(2)[1]]


async def test_sending_is_reset_when_the_sender_is_cancelled():
    """Issue 11 defect 7, the cancelled path: the sender is cancelled when the receiver ends."""
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    websocket.stalled = True
    deliver(conn, 1)
    task = await run_pump(conn)
    await until(lambda: conn._sending)
    await stop(task)
    assert conn._sending is False and conn._sender is None


# Tasks: an idle socket has none but its own


async def test_a_sender_runs_only_while_frames_wait():
    conn, websocket, writer = idle_socket()
    task = await run_pump(conn)
    try:
        deliver(conn, 1)
        assert conn._sender is None, "a frame written straight away needs no sender"
        writer.accepting = False
        deliver(conn, 2)
        sender = conn._sender
        assert sender is not None
        await until(lambda: sender.done())
        assert websocket.sent == [event(2)[1]]
        assert conn._sender is None and conn.queued == 0
        deliver(conn, 3)
        await until(lambda: conn._sender is None and conn.queued == 0)
        assert websocket.sent == [event(2)[1], event(3)[1]]
    finally:
        await cancel(task)


async def test_frames_queued_before_the_receive_loop_wait_for_it():
    conn = connection()
    deliver(conn, 1)
    assert conn._sender is None and conn.queued == 1
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and conn._sender is None)
        assert conn.websocket.sent == [event(1)[1]]
    finally:
        await cancel(task)


def run_of(*ms):
    events = [(event_id, frame, encode_text_frame(frame)) for event_id, frame in (event(m) for m in ms)]
    return events, b"".join(wire for _, _, wire in events)


def test_a_run_of_events_is_one_write_when_the_socket_can_take_it():
    conn, websocket, writer = idle_socket()
    events, joined = run_of(3, 4, 5)
    conn.deliver_run(events, joined)
    assert writer.written == [joined]
    assert conn.last_id == (5, 0) and conn.queued == 0


def test_a_run_the_socket_has_part_of_goes_out_one_by_one_from_what_it_lacks():
    conn, websocket, writer = idle_socket()
    conn.last_id = (4, 0)
    events, joined = run_of(3, 4, 5, 6)
    conn.deliver_run(events, joined)
    assert writer.transcript == [event(5)[1], event(6)[1]]
    assert conn.last_id == (6, 0)


async def test_a_run_for_a_backed_up_socket_waits_in_order():
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    events, joined = run_of(1, 2)
    conn.deliver_run(events, joined)
    assert writer.written == [] and conn.queued == 2
    deliver(conn, 3)
    writer.accepting = True
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and conn._sender is None)
        assert websocket.sent == [event(1)[1], event(2)[1], event(3)[1]]
    finally:
        await cancel(task)


async def test_events_the_welcome_already_gave_need_no_sender():
    conn = connection()
    deliver(conn, 3)
    deliver(conn, 4)
    conn.last_id = (5, 0)
    task = await run_pump(conn)
    try:
        assert conn.queued == 0 and conn._sender is None
        assert conn.websocket.sent == []
    finally:
        await cancel(task)


async def test_events_after_the_welcome_s_history_still_go_out_in_order():
    conn = connection()
    for ms in (4, 6, 5, 7):
        deliver(conn, ms)
    conn.last_id = (5, 0)
    task = await run_pump(conn)
    try:
        await until(lambda: conn.queued == 0 and conn._sender is None)
        assert conn.websocket.sent == [event(6)[1], event(7)[1]]
    finally:
        await cancel(task)


async def test_a_cancellation_from_outside_is_no_sender_failure():
    conn, websocket, writer = idle_socket()
    writer.accepting = False
    websocket.stalled = True
    deliver(conn, 1)
    task = await run_pump(conn)
    await until(lambda: conn._sending)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert websocket.closes == [] and conn._sender is None


async def test_a_sender_failure_during_an_append_ends_the_socket():
    """The receiver may be inside an append when the sender fails: the close still goes out."""
    appender = FakeAppender()
    hold = asyncio.Event()
    append = appender.append

    async def slow_append(code: str, body: bytes, dedupe: str):
        await hold.wait()
        return await append(code, body, dedupe)

    appender.append = slow_append
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    conn = connection(context(appender=appender), websocket)
    conn._write_frame = writer
    websocket.client_sends('{"type":"message","text":"hi","ref":"r1"}')
    task = await run_pump(conn)
    await asyncio.sleep(0.01)
    conn.close(Close.SERVICE_RESTART, "draining")
    await finished(task)
    assert websocket.closes == [(Close.SERVICE_RESTART, "draining")]
    assert appender.appended == []


# The receive loop


async def pump_until_closed(conn):
    await finished(asyncio.create_task(conn._pump()))
    return conn.websocket.closes


async def test_a_binary_frame_closes_1003():
    conn, websocket, _ = idle_socket()
    websocket.client_sends(data=b"\x00\x01")
    assert [code for code, _ in await pump_until_closed(conn)] == [Close.UNSUPPORTED]


async def test_too_many_frames_close_1008():
    conn, websocket, writer = idle_socket(frame_burst=3, frame_rate_per_second=0.001)
    for _ in range(5):
        websocket.client_sends('{"type":"ping"}')
    assert [code for code, _ in await pump_until_closed(conn)] == [Close.POLICY]
    assert writer.transcript == [PONG_FRAME] * 3


async def test_a_ping_gets_a_pong():
    conn, websocket, writer = idle_socket()
    websocket.client_sends('{"type":"ping"}')
    pump = asyncio.create_task(conn._pump())
    try:
        await until(lambda: writer.written)
        assert writer.written == [encode_text_frame(PONG_FRAME)]
    finally:
        await cancel(pump)


async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open():
    conn, websocket, writer = idle_socket()
    websocket.client_sends('{"type":"message","text":"","ref":"r7"}')
    websocket.client_sends('{"type":"ping"}')
    pump = asyncio.create_task(conn._pump())
    try:
        await until(lambda: len(writer.transcript) == 2)
        error = orjson.loads(writer.transcript[0])
        assert error["type"] == "error" and error["code"] == "invalid_frame" and error["ref"] == "r7"
        assert writer.transcript[1] == PONG_FRAME
        assert websocket.closes == []
    finally:
        await cancel(pump)


async def test_a_message_with_a_ref_is_appended_and_acked():
    appender = FakeAppender()
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    conn = connection(context(appender=appender), websocket)
    conn._write_frame = writer
    websocket.client_sends('{"type":"message","text":" hello ","ref":"r1"}')
    pump = asyncio.create_task(conn._pump())
    try:
        await until(lambda: writer.transcript)
        assert orjson.loads(writer.transcript[0]) == {"type": "ack", "ref": "r1", "id": "101-0"}
        ((code, body, dedupe),) = appender.appended
        assert code == "ROOM" and orjson.loads(body)["text"] == "hello" and dedupe == "u-ana r1"
    finally:
        await cancel(pump)


async def test_a_message_to_a_room_that_closed_closes_4404():
    conn = connection(context(appender=FakeAppender(live=False)))
    conn.websocket.client_sends('{"type":"message","text":"hi"}')
    assert [code for code, _ in await pump_until_closed(conn)] == [Close.ROOM_GONE]


# The whole life of a socket: join, welcome, pump, leave


@pytest.fixture
def history(monkeypatch):
    """The room's history as the join script reads it."""
    frames = [event(4)[1], event(5)[1]]
    frames_json = "[" + ",".join(frames) + "]"
    monkeypatch.setattr(FakePresence, "history", History(frames_json=frames_json, last_id=(5, 0), truncated=False))
    return frames


async def start(hub=None, presence=None):
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    hub = hub or FakeHub()
    presence = presence or FakePresence()
    conn = connection(context(hub=hub, presence=presence), websocket)
    task = asyncio.create_task(conn.run())
    return conn, websocket, writer, hub, presence, task


async def test_the_welcome_comes_first_and_live_events_after_it_once(history):
    conn, websocket, writer, hub, presence, task = await start()
    try:
        await until(lambda: conn._write_frame is not None)
        welcome = orjson.loads(writer.transcript[0])
        assert welcome["type"] == "welcome" and welcome["you"] == "ana" and welcome["members"] == ["ana"]
        assert [item["id"] for item in welcome["history"]] == ["4-0", "5-0"]
        assert websocket.sent == [], "the welcome went straight to the transport"
        room = hub.rooms["ROOM"]
        assert room.last_id == (5, 0) and conn.last_id == (5, 0)
        for ms in (5, 6):
            room.dispatch(*event(ms))
        assert writer.transcript[1:] == [event(6)[1]]
    finally:
        await cancel(task)


async def test_a_welcome_the_transport_cannot_take_now_is_sent_the_asgi_way(history):
    writer = FakeWriter()
    writer.accepting = False
    websocket = FakeWebSocket(writer)
    conn = connection(context(hub=FakeHub(), presence=FakePresence()), websocket)
    task = asyncio.create_task(conn.run())
    try:
        await until(lambda: conn._write_frame is not None)
        assert orjson.loads(websocket.sent[0])["type"] == "welcome"
        assert writer.written == []
    finally:
        await cancel(task)


async def test_a_leave_frame_closes_1000_and_the_leave_is_explicit(history):
    conn, websocket, _, hub, presence, task = await start()
    websocket.client_sends('{"type":"leave"}')
    await finished(task)
    assert [code for code, _ in websocket.closes] == [Close.LEFT]
    assert presence.leaves == [("ROOM", conn.conn_id, True)]
    assert conn in hub.detached and conn not in hub.rooms["ROOM"].sockets


async def test_a_revocation_closes_4001_and_the_leave_is_explicit(history):
    conn, websocket, _, hub, presence, task = await start()
    await until(lambda: conn._write_frame is not None)
    conn.close(Close.SESSION_ENDED, "session ended")
    await finished(task)
    assert [code for code, _ in websocket.closes] == [Close.SESSION_ENDED]
    assert presence.leaves == [("ROOM", conn.conn_id, True)]


async def test_a_dropped_client_leaves_with_the_grace(history):
    conn, websocket, _, hub, presence, task = await start()
    websocket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1006})
    await finished(task)
    assert websocket.closes == []
    assert presence.leaves == [("ROOM", conn.conn_id, False)]


async def test_a_room_gone_at_join_closes_4404_and_records_no_leave(history):
    conn, websocket, _, hub, presence, task = await start(presence=FakePresence(live=False))
    await finished(task)
    assert [code for code, _ in websocket.closes] == [Close.ROOM_GONE]
    assert websocket.sent == [] and presence.leaves == []
    assert conn in hub.detached


async def test_the_seat_is_free_before_the_close_frame_goes_out(history):
    """A client that reconnects the moment it reads its close finds its place in the per-user count free."""
    conn, websocket, _, _, _, task = await start()
    admission = conn._context.admission
    counts_at_close = []
    close = websocket.close

    async def recording_close(code: int = 1000, reason: str | None = None) -> None:
        counts_at_close.append(admission._users[conn.principal.user_id].sockets)
        await close(code, reason)

    websocket.close = recording_close
    websocket.client_sends('{"type":"leave"}')
    await finished(task)
    assert counts_at_close == [0]
    conn._seat.release()
    assert admission._users[conn.principal.user_id].sockets == 0, "a seat is given back once"


async def test_a_leave_cancelled_midway_is_queued_for_the_heartbeat_loop(history):
    """A leave cut short (shutdown, or a cancellation the client library let out) must not leave a member present."""
    presence = FakePresence()

    async def cancelled_leave(code: str, conn_id: str, explicit: bool) -> str:
        raise asyncio.CancelledError

    presence.leave = cancelled_leave
    conn, websocket, _, _, _, task = await start(presence=presence)
    websocket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1006})
    with pytest.raises(asyncio.CancelledError):
        await finished(task)
    assert presence.unrecorded == [("ROOM", conn.conn_id, False)]

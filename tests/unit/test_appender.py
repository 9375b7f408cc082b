"""The appender's batching and recovery, and its acks that wait for replicas, against fakes: no server."""

import asyncio
from types import SimpleNamespace

import pytest
from redis.asyncio.cluster import PipelineCommand
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, RedisError, ResponseError

from services.common.redis_schema import REASSERT_REF, room_key
from services.gateway.appender import Appended, MessageAppender
from services.gateway.closes import Close
from services.gateway.line import ClusterCommands
from services.gateway.replicated import NotReplicated, ReplicatedAppends
from tests.unit.fakes import (
    FakeAppendServer,
    FakeLine,
    FakeScript,
    FakeWebSocket,
    FakeWriter,
    appender,
    connection,
    context,
    finished,
    until,
)


async def test_one_message_is_one_batch_of_one():
    append, line, script = appender()
    assert await append.append("ROOM", b'{"text":"a"}', "u1 r1") == Appended("1-0", repeat=False)
    assert line.batches == [[(room_key("ROOM"), [1000, b'{"text":"a"}', "u1 r1", 1000])]]
    assert script.calls == 0


async def test_messages_of_one_loop_tick_share_one_batch():
    server = FakeAppendServer()
    append, line, _ = appender(server)
    bodies = [f'{{"text":"{n}"}}'.encode() for n in range(5)]
    results = await asyncio.gather(*(append.append("ROOM", body, f"u1 r{n}") for n, body in enumerate(bodies)))
    (batch,) = line.batches
    assert [args[1] for _, args in batch] == bodies
    assert all(key == room_key("ROOM") for key, _ in batch)
    assert results == [Appended(server.stored[f"u1 r{n}"], repeat=False) for n in range(5)]
    assert len({result.event_id for result in results}) == 5


async def test_each_result_reaches_its_own_caller():
    server = FakeAppendServer()
    server.dead_rooms.add(room_key("GONE"))
    append, line, _ = appender(server)
    results = await asyncio.gather(
        append.append("ROOM", b'{"text":"a"}', "u1 a"),
        append.append("GONE", b'{"text":"b"}', "u1 b"),
        append.append("ROOM", b'{"text":"c"}', "u1 c"),
    )
    assert results == [Appended("1-0", False), None, Appended("2-0", False)]
    assert len(line.batches) == 1


async def test_a_repeated_dedupe_key_is_reported_as_a_repeat():
    append, _, _ = appender()
    first = await append.append("ROOM", b'{"text":"a"}', "u1 r1")
    again = await append.append("ROOM", b'{"text":"a again"}', "u1 r1")
    assert first == Appended("1-0", repeat=False)
    assert again == Appended("1-0", repeat=True)


async def test_an_error_reply_reaches_only_its_own_caller():
    server = FakeAppendServer()
    append, line, _ = appender(server)
    refused = ResponseError("OOM command not allowed")
    run = server.run
    server.run = lambda key, args: refused if args[2] == "u1 b" else run(key, args)
    outcomes = await asyncio.gather(
        append.append("ROOM", b"a", "u1 a"), append.append("ROOM", b"b", "u1 b"), return_exceptions=True
    )
    assert outcomes == [Appended("1-0", False), refused]


async def test_a_redis_error_fails_every_message_of_the_batch():
    append, line, _ = appender()
    line.error = RedisConnectionError("connection lost")
    outcomes = await asyncio.gather(
        *(append.append("ROOM", f'{{"text":"{n}"}}'.encode(), f"u1 r{n}") for n in range(3)), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [RedisConnectionError] * 3
    line.error = None
    assert await append.append("ROOM", b'{"text":"later"}', "u1 later") == Appended("1-0", False)


async def test_a_batch_and_the_next_one_do_not_mix():
    append, line, _ = appender()
    first = await asyncio.gather(*(append.append("ROOM", f"{n}".encode(), f"k{n}") for n in range(2)))
    second = await asyncio.gather(*(append.append("ROOM", f"{n}".encode(), f"k{n + 2}") for n in range(3)))
    assert [len(batch) for batch in line.batches] == [2, 3]
    assert [result.event_id for result in first + second] == ["1-0", "2-0", "3-0", "4-0", "5-0"]


async def test_in_a_cluster_each_call_goes_on_its_own_and_a_failure_stays_its_callers():
    """No line in a cluster: the calls of a tick go out together through the cluster client, each to its node."""
    server = FakeAppendServer()
    script = FakeScript(server)
    append = MessageAppender(
        SimpleNamespace(),
        SimpleNamespace(append_message=script),
        1000,
        1000,
        commands=ClusterCommands(SimpleNamespace()),
    )
    run = server.run

    def run_or_lose(key: str, args: list[object]) -> list[object] | None:
        if key == room_key("LOST"):
            raise OSError("reset")
        return run(key, args)

    server.run = run_or_lose
    outcomes = await asyncio.gather(
        append.append("ROOM", b"a", "u1 a"), append.append("LOST", b"b", "u1 b"), return_exceptions=True
    )
    assert script.calls == 2
    assert outcomes[0] == Appended("1-0", False)
    assert isinstance(outcomes[1], OSError)


# SALA_ACK_REPLICAS: the ack waits for WAIT, which goes on the same connection as the appends.


class FakeRound:
    """One connection's pipeline: every command in order, answered as one exchange by the fake server."""

    def __init__(self, owner: "FakeReplicatedRedis") -> None:
        self._owner = owner
        self.commands: list[tuple[object, ...]] = []

    async def __aenter__(self) -> "FakeRound":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: object) -> "FakeRound":
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def execute_command(self, *args: object) -> "FakeRound":
        self.commands.append(args)
        return self

    def wait(self, replicas: int, timeout: int) -> "FakeRound":
        return self.execute_command("WAIT", replicas, timeout)

    async def execute(self, raise_on_error: bool = True) -> list[object]:
        assert raise_on_error is False
        return await self._owner.exchange(self.commands)


class FakeReplicatedRedis:
    """The append script, the ref reassertion and WAIT, run in order per exchange, by one connection.

    ``acking`` is how many replicas WAIT reports; while ``held`` is set, a
    WAIT answers only once it is set. ``rounds`` lists each exchange's
    commands, by kind: ("EVALSHA", key, dedupe), ("EVAL", key, dedupe, id),
    ("WAIT", replicas).
    """

    def __init__(self, server: FakeAppendServer | None = None, acking: int = 1) -> None:
        self.server = server or FakeAppendServer()
        self.acking = acking
        self.held: asyncio.Event | None = None
        self.noscript: set[str] = set()  # dedupe keys whose next EVALSHA is refused
        self.loads: list[str] = []
        self.rounds: list[list[tuple[object, ...]]] = []

    def pipeline(self, transaction: bool = True) -> FakeRound:
        assert transaction is False
        return FakeRound(self)

    async def script_load(self, script: str) -> str:
        self.loads.append(script)
        return FakeScript.sha

    async def exchange(self, commands: list[tuple[object, ...]]) -> list[object]:
        self.rounds.append([self._kind(command) for command in commands])
        return [await self._run(command) for command in commands]

    @staticmethod
    def _kind(command: tuple[object, ...]) -> tuple[object, ...]:
        if command[0] == "EVALSHA":
            return ("EVALSHA", command[3], command[6])
        if command[0] == "EVAL" and command[1] == FakeScript.script:
            return ("EVAL script", command[3], command[6])
        if command[0] == "EVAL":
            assert command[1] == REASSERT_REF and command[2] == 1
            return ("EVAL", command[3], command[4], command[5])
        return ("WAIT", command[1])

    async def _run(self, command: tuple[object, ...]) -> object:
        if command[0] == "EVAL" and command[1] == FakeScript.script:
            return self.server.run(str(command[3]), list(command[4:]))
        if command[0] == "EVALSHA":
            key, args = str(command[3]), list(command[4:])
            if args[2] in self.noscript:
                self.noscript.discard(args[2])
                return NoScriptError("NOSCRIPT No matching script.")
            return self.server.run(key, args)
        if command[0] == "EVAL":
            key, dedupe, event_id = command[3:]
            if key in self.server.dead_rooms:
                return None
            return int(self.server.stored.get(dedupe) == event_id)
        if self.held is not None:
            await self.held.wait()
        return self.acking


def replicated(redis: FakeReplicatedRedis, replicas: int = 1) -> MessageAppender:
    return MessageAppender(
        redis,
        SimpleNamespace(append_message=FakeScript(redis.server)),
        1000,
        1000,
        commands=ClusterCommands(SimpleNamespace()),
        ack_replicas=replicas,
        ack_timeout_ms=250,
    )


def bodies(n: int) -> list[bytes]:
    return [f'{{"text":"{i}"}}'.encode() for i in range(n)]


async def test_with_no_replicas_asked_no_wait_is_sent():
    redis = FakeReplicatedRedis()
    line = FakeLine(redis.server)
    script = FakeScript(redis.server)
    append = MessageAppender(redis, SimpleNamespace(append_message=script), 1000, 1000, commands=line, ack_replicas=0)
    results = await asyncio.gather(*(append.append("ROOM", body, f"u1 r{i}") for i, body in enumerate(bodies(3))))
    assert redis.rounds == [], "nothing went on a connection of the replicated path, so no WAIT"
    assert [[dedupe for _, (_, _, dedupe, _) in batch] for batch in line.batches] == [[f"u1 r{i}" for i in range(3)]]
    assert [result.event_id for result in results] == ["1-0", "2-0", "3-0"]


async def test_the_appends_and_their_wait_go_out_together_and_the_answer_waits_for_it():
    redis = FakeReplicatedRedis()
    redis.held = asyncio.Event()
    append = replicated(redis, replicas=2)
    redis.acking = 2
    calls = [asyncio.create_task(append.append("ROOM", body, f"u1 r{i}")) for i, body in enumerate(bodies(3))]
    await until(lambda: redis.rounds)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not any(call.done() for call in calls), "answered before WAIT did"
    assert redis.rounds == [[*(("EVALSHA", room_key("ROOM"), f"u1 r{i}") for i in range(3)), ("WAIT", 2)]]
    redis.held.set()
    results = await asyncio.gather(*calls)
    assert results == [Appended(f"{i + 1}-0", repeat=False) for i in range(3)]


async def test_short_of_replicas_nothing_is_acked_and_a_resend_is_stored_once():
    redis = FakeReplicatedRedis(acking=0)
    append = replicated(redis)
    outcomes = await asyncio.gather(
        *(append.append("ROOM", body, f"u1 r{i}") for i, body in enumerate(bodies(2))), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [NotReplicated, NotReplicated]
    assert all(isinstance(outcome, RedisError) for outcome in outcomes), "the socket closes 1013 on a RedisError"
    stored = dict(redis.server.stored)
    redis.acking = 1
    again = await append.append("ROOM", b'{"text":"0"}', "u1 r0")
    assert again == Appended(stored["u1 r0"], repeat=True)
    assert redis.server.stored == stored, "stored once"


async def test_a_repeat_is_confirmed_by_a_write_of_its_own_connection():
    """A repeat wrote nothing on this connection, so its WAIT would cover nothing: the ref is written again first."""
    redis = FakeReplicatedRedis()
    redis.server.stored["u1 r1"] = "7-0"
    append = replicated(redis)
    assert await append.append("ROOM", b'{"text":"a"}', "u1 r1") == Appended("7-0", repeat=True)
    assert redis.rounds == [
        [("EVALSHA", room_key("ROOM"), "u1 r1"), ("WAIT", 1)],
        [("EVAL", room_key("ROOM"), "u1 r1", "7-0"), ("WAIT", 1)],
    ]


async def test_a_repeat_while_replicas_are_short_is_refused_in_the_same_round():
    redis = FakeReplicatedRedis(acking=0)
    redis.server.stored["u1 r1"] = "7-0"
    append = replicated(redis)
    with pytest.raises(NotReplicated):
        await append.append("ROOM", b'{"text":"a"}', "u1 r1")
    assert len(redis.rounds) == 1


async def test_a_repeat_whose_room_closed_meanwhile_is_answered_as_gone():
    redis = FakeReplicatedRedis()
    redis.server.stored["u1 r1"] = "7-0"
    append = replicated(redis)
    reassert = redis._run

    async def closing(command):
        if command[0] == "EVAL":
            redis.server.dead_rooms.add(room_key("ROOM"))
        return await reassert(command)

    redis._run = closing
    assert await append.append("ROOM", b'{"text":"a"}', "u1 r1") is None


async def test_messages_arriving_during_a_round_go_out_together_in_the_next():
    redis = FakeReplicatedRedis()
    redis.held = asyncio.Event()
    append = replicated(redis)
    first = asyncio.create_task(append.append("ROOM", b'{"text":"a"}', "u1 a"))
    await until(lambda: redis.rounds)
    later = [asyncio.create_task(append.append("ROOM", body, f"u1 b{i}")) for i, body in enumerate(bodies(3))]
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(redis.rounds) == 1, "one round per primary in flight"
    redis.held.set()
    await asyncio.gather(first, *later)
    assert [len(round_) for round_ in redis.rounds] == [2, 4]


async def test_after_noscript_the_refused_messages_run_again_and_are_confirmed():
    redis = FakeReplicatedRedis()
    redis.noscript = {"u1 r1"}
    append = replicated(redis)
    results = await asyncio.gather(*(append.append("ROOM", body, f"u1 r{i}") for i, body in enumerate(bodies(3))))
    assert redis.loads == [], "no SCRIPT LOAD, which a cluster client sends to every primary"
    assert redis.server.runs == dict.fromkeys(bodies(3), 1), "every message ran once"
    assert [result.event_id for result in results] == [redis.server.stored[f"u1 r{i}"] for i in range(3)]
    assert redis.rounds[1] == [("EVAL script", room_key("ROOM"), "u1 r1"), ("WAIT", 1)]


async def test_a_socket_short_of_replicas_is_closed_1013_without_an_ack():
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    conn = connection(context(appender=replicated(FakeReplicatedRedis(acking=0))), websocket)
    conn._write_frame = writer
    websocket.client_sends('{"type":"message","text":"hello","ref":"r1"}')
    await finished(asyncio.create_task(conn._pump()))
    assert [code for code, _ in websocket.closes] == [Close.TRY_AGAIN]
    assert not any('"ack"' in frame for frame in writer.transcript)


# On a cluster: one round per primary, on one of its connections.


class FakeNode:
    """A primary as the appender reaches it: ``execute_pipeline`` on one of its connections."""

    def __init__(self, cluster: "FakeCluster", name: str) -> None:
        self.name = name
        self._cluster = cluster
        self.failure: Exception | None = None
        self.reconnects = 0

    async def execute_pipeline(self, commands: list[PipelineCommand]) -> bool:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        self._cluster.rounds.append((self.name, [FakeReplicatedRedis._kind(c.args) for c in commands]))
        for command in commands:
            key = command.args[3] if command.args[0] != "WAIT" else None
            if key is not None and self._cluster.owners.get(key, "a") != self.name:
                command.result = MovedError("1 127.0.0.1:6380")
            else:
                command.result = await self._cluster.redis._run(command.args)
        return False

    def update_active_connections_for_reconnect(self) -> None:
        self.reconnects += 1

    async def disconnect_free_connections(self) -> None:
        return None


class FakeCluster:
    """The cluster client's slot map (``mapped``) and the true owners of the rooms (``owners``; default "a").

    The client's own script call (``routed``) runs on the owner and
    corrects the map, as following a redirect does.
    """

    def __init__(self, acking: dict[str, int] | None = None) -> None:
        self.redis = FakeReplicatedRedis()
        self.acking = acking or {}
        self.nodes = {name: FakeNode(self, name) for name in ("a", "b")}
        self.owners: dict[str, str] = {}
        self.mapped: dict[str, str] = {}
        self.rounds: list[tuple[str, list[tuple[object, ...]]]] = []
        self.routed: list[str] = []
        # Each call moves the room to the other node (a cluster whose slots keep moving).
        self.keeps_moving = False
        self.sha = FakeScript.sha
        self.script = FakeScript.script

    async def initialize(self) -> "FakeCluster":
        return self

    def get_node_from_key(self, key: str) -> FakeNode:
        return self.nodes[self.mapped.get(key, "a")]

    def get_node(self, node_name: str) -> FakeNode:
        return self.nodes[node_name]

    async def __call__(self, keys: list[str], args: list[object]) -> list[object] | None:
        """The append script through the cluster client: it follows the redirect to the owner."""
        self.routed.append(keys[0])
        self.mapped[keys[0]] = self.owners.get(keys[0], "a")
        if self.keeps_moving:
            self.owners[keys[0]] = "b" if self.mapped[keys[0]] == "a" else "a"
        return self.redis.server.run(keys[0], args)


def on_cluster(cluster: FakeCluster) -> ReplicatedAppends:
    return ReplicatedAppends(cluster, cluster, replicas=1, timeout_ms=250, cluster=True)


def args(body: bytes, dedupe: str) -> list[object]:
    return [1000, body, dedupe, 1000]


async def test_each_primary_gets_its_own_round_and_wait_and_a_short_one_refuses_only_its_own():
    cluster = FakeCluster()
    cluster.owners = cluster.mapped = {room_key("A"): "a", room_key("B"): "b"}
    appends = on_cluster(cluster)
    waits = {"a": 1, "b": 0}

    async def wait_per_node(command):
        if command[0] == "WAIT":
            return waits[cluster.rounds[-1][0]]
        return await FakeReplicatedRedis._run(cluster.redis, command)

    cluster.redis._run = wait_per_node
    outcomes = await asyncio.gather(
        appends.append(room_key("A"), args(b"a1", "u a1"), "u a1"),
        appends.append(room_key("B"), args(b"b1", "u b1"), "u b1"),
        appends.append(room_key("A"), args(b"a2", "u a2"), "u a2"),
        return_exceptions=True,
    )
    assert sorted(cluster.rounds) == [
        ("a", [("EVALSHA", room_key("A"), "u a1"), ("EVALSHA", room_key("A"), "u a2"), ("WAIT", 1)]),
        ("b", [("EVALSHA", room_key("B"), "u b1"), ("WAIT", 1)]),
    ]
    assert [type(outcome) for outcome in outcomes] == [list, NotReplicated, list]


async def test_a_moved_message_goes_through_the_clients_call_then_is_confirmed_on_its_new_primary():
    cluster = FakeCluster()
    key = room_key("A")
    cluster.owners[key] = "b"  # failed over; the client's map still says "a"
    appends = on_cluster(cluster)
    reply = await appends.append(key, args(b"a1", "u a1"), "u a1")
    assert reply == ["1-0", 0]
    assert cluster.routed == [key]
    assert cluster.rounds == [
        ("a", [("EVALSHA", key, "u a1"), ("WAIT", 1)]),
        ("b", [("EVAL", key, "u a1", "1-0"), ("WAIT", 1)]),
    ]
    assert cluster.redis.server.runs == {b"a1": 1}


async def test_a_lost_connection_is_settled_by_the_clients_call_and_confirmed_once():
    cluster = FakeCluster()
    key = room_key("A")
    cluster.nodes["a"].failure = RedisConnectionError("reset")
    appends = on_cluster(cluster)
    assert await appends.append(key, args(b"a1", "u a1"), "u a1") == ["1-0", 0]
    assert cluster.nodes["a"].reconnects == 1
    assert cluster.routed == [key]
    assert cluster.rounds == [("a", [("EVAL", key, "u a1", "1-0"), ("WAIT", 1)])]


async def test_a_message_that_keeps_moving_is_refused_after_a_bound():
    cluster = FakeCluster()
    key = room_key("A")
    cluster.owners[key] = "b"
    cluster.keeps_moving = True
    appends = on_cluster(cluster)
    with pytest.raises(NotReplicated):
        await appends.append(key, args(b"a1", "u a1"), "u a1")
    assert cluster.redis.server.runs == {b"a1": len(cluster.routed)}
    assert len(cluster.redis.server.stored) == 1, "stored once however often it moved"

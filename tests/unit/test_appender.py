"""The appender's batching and recovery, against a fake script and pipeline: no server."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.redis_schema import room_key
from services.gateway.appender import Appended
from tests.unit.fakes import FakeAppendServer, appender


async def test_one_message_is_one_script_call():
    append, redis, script = appender()
    assert await append.append("ROOM", b'{"text":"a"}', "u1 r1") == Appended("1-0", repeat=False)
    assert script.calls == 1 and redis.executed == []


async def test_messages_of_one_loop_tick_share_one_pipeline():
    server = FakeAppendServer()
    append, redis, script = appender(server)
    bodies = [f'{{"text":"{n}"}}'.encode() for n in range(5)]
    results = await asyncio.gather(*(append.append("ROOM", body, f"u1 r{n}") for n, body in enumerate(bodies)))
    assert script.calls == 0
    (pipeline,) = redis.executed
    assert [args[1] for _, args in pipeline.commands] == bodies
    assert all(key == room_key("ROOM") for key, _ in pipeline.commands)
    assert results == [Appended(server.stored[f"u1 r{n}"], repeat=False) for n in range(5)]
    assert len({result.event_id for result in results}) == 5


async def test_each_result_reaches_its_own_caller():
    server = FakeAppendServer()
    server.dead_rooms.add(room_key("GONE"))
    append, redis, _ = appender(server)
    results = await asyncio.gather(
        append.append("ROOM", b'{"text":"a"}', "u1 a"),
        append.append("GONE", b'{"text":"b"}', "u1 b"),
        append.append("ROOM", b'{"text":"c"}', "u1 c"),
    )
    assert results == [Appended("1-0", False), None, Appended("2-0", False)]
    assert len(redis.executed) == 1


async def test_a_repeated_dedupe_key_is_reported_as_a_repeat():
    append, _, _ = appender()
    first = await append.append("ROOM", b'{"text":"a"}', "u1 r1")
    again = await append.append("ROOM", b'{"text":"a again"}', "u1 r1")
    assert first == Appended("1-0", repeat=False)
    assert again == Appended("1-0", repeat=True)


async def test_after_noscript_only_the_refused_entries_run_again():
    """Issue 11 defect 5: re-running the whole batch would run the entries that succeeded twice."""
    server = FakeAppendServer()
    append, redis, script = appender(server)
    redis.noscript = {1, 3}
    bodies = [f'{{"text":"{n}"}}'.encode() for n in range(5)]
    results = await asyncio.gather(*(append.append("ROOM", body, f"u1 r{n}") for n, body in enumerate(bodies)))
    assert redis.loads == [script.script]
    assert server.runs == dict.fromkeys(bodies, 1), "every message ran exactly once"
    assert [result.repeat for result in results] == [False] * 5
    assert [result.event_id for result in results] == [server.stored[f"u1 r{n}"] for n in range(5)]
    (_, rerun) = redis.executed
    assert [args[1] for _, args in rerun.commands] == [bodies[1], bodies[3]]


async def test_a_single_refused_entry_is_run_again_on_its_own():
    server = FakeAppendServer()
    append, redis, script = appender(server)
    redis.noscript = {0}
    results = await asyncio.gather(
        append.append("ROOM", b'{"text":"a"}', "u1 a"), append.append("ROOM", b'{"text":"b"}', "u1 b")
    )
    assert server.runs == {b'{"text":"a"}': 1, b'{"text":"b"}': 1}
    assert script.calls == 1 and len(redis.executed) == 1
    assert results == [Appended("2-0", False), Appended("1-0", False)]


async def test_a_redis_error_fails_every_message_of_the_batch():
    append, redis, _ = appender()
    redis.error = RedisConnectionError("connection lost")
    outcomes = await asyncio.gather(
        *(append.append("ROOM", f'{{"text":"{n}"}}'.encode(), f"u1 r{n}") for n in range(3)), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [RedisConnectionError] * 3
    redis.error = None
    assert await append.append("ROOM", b'{"text":"later"}', "u1 later") == Appended("1-0", False)


async def test_a_batch_and_the_next_one_do_not_mix():
    append, redis, script = appender()
    first = await asyncio.gather(*(append.append("ROOM", f"{n}".encode(), f"k{n}") for n in range(2)))
    second = await asyncio.gather(*(append.append("ROOM", f"{n}".encode(), f"k{n + 2}") for n in range(3)))
    assert [len(pipeline.commands) for pipeline in redis.executed] == [2, 3]
    assert [result.event_id for result in first + second] == ["1-0", "2-0", "3-0", "4-0", "5-0"]


@pytest.mark.parametrize("failure", [RedisConnectionError("lost"), OSError("reset")])
async def test_a_failed_single_call_reaches_its_caller(failure):
    append, _, _ = appender()

    async def failing(keys, args):
        raise failure

    append._script = failing
    with pytest.raises(type(failure)):
        await append.append("ROOM", b"{}", "k")

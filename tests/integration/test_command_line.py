"""The appender's command line against the real server: order, error replies, a forgotten script, a lost connection."""

import asyncio
import socket
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from services.common.redis_client import create_server_client
from services.common.redis_schema import Script
from services.gateway.line import CommandLine
from tools.devstack import Stack

# Counts its runs in the key it is given, and answers the count and its argument.
COUNTING_SCRIPT = "return {redis.call('INCR', KEYS[1]), ARGV[1]}"


@pytest.fixture
async def line(stack: Stack):
    if stack.redis_cluster:
        pytest.fail("the command line serves one server; this module is not in the cluster suites")
    client = create_server_client(stack.redis_url)
    command_line = CommandLine(client)
    yield command_line
    await command_line.aclose()
    await client.aclose()


def key(name: str) -> str:
    return f"sala:test:line:{name}:{uuid.uuid4().hex}"


async def test_replies_come_back_to_their_batches_in_order(line: CommandLine):
    counter = key("counter")
    batches = await asyncio.gather(*(line.run([("INCR", counter), ("INCR", counter)]) for _ in range(50)))
    # Each batch went out in one write, so its two increments are consecutive; the batches went out in order.
    assert [value for batch in batches for value in batch] == list(range(1, 101))


async def test_an_error_reply_is_that_commands_result_and_the_line_goes_on(line: CommandLine):
    text = key("text")
    first, refused, after = await line.run([("SET", text, "not a number"), ("INCR", text), ("GET", text)])
    assert first == "OK" and after == "not a number"
    assert isinstance(refused, ResponseError)
    assert await line.run([("PING",)]) == ["PONG"]


async def test_a_forgotten_script_is_loaded_once_and_each_call_runs_once(line: CommandLine, redis_client):
    script = Script(redis_client, COUNTING_SCRIPT)
    counter = key("runs")
    await redis_client.script_flush()
    results = await line.eval_many(script, [([counter], [n]) for n in range(3)])
    assert [result[1] for result in results] == ["0", "1", "2"]
    assert int(await redis_client.get(counter)) == 3, "no call ran twice"
    assert await redis_client.script_exists(script.sha) == [True]


async def test_a_batch_in_flight_when_its_connection_dies_is_sent_again_on_a_new_one(line: CommandLine, redis_client):
    (first_id,) = await line.run([("CLIENT", "ID")])
    waiting = asyncio.create_task(line.run([("BLPOP", key("never"), "0.5")]))
    await asyncio.sleep(0.1)
    assert await redis_client.client_kill_filter(_id=first_id) == 1
    assert await asyncio.wait_for(waiting, 5) == [None]
    (second_id,) = await line.run([("CLIENT", "ID")])
    assert second_id != first_id


async def test_a_server_out_of_reach_fails_the_batch_after_the_retries():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = create_server_client(f"redis://127.0.0.1:{port}/0", retries=0)
    line = CommandLine(client, retries=1)
    try:
        with pytest.raises(RedisConnectionError):
            await line.run([("PING",)])
    finally:
        await line.aclose()
        await client.aclose()


async def test_after_close_a_batch_is_refused(line: CommandLine):
    assert await line.run([("PING",)]) == ["PONG"]
    await line.aclose()
    with pytest.raises(RedisConnectionError):
        await line.run([("PING",)])

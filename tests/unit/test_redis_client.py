"""The Redis clients' construction: what Sala changes in redis-py's cluster client, and that it still holds."""

from redis._parsers.commands import AsyncCommandsParser

from services.common.redis_client import CommandTableOnce, create_redis, redis_ready
from services.common.settings import ServiceSettings


class _CountingNode:
    def __init__(self) -> None:
        self.calls = 0

    async def execute_command(self, *args: object) -> dict:
        self.calls += 1
        return {"get": {"name": "get", "flags": ["readonly"], "first_key_pos": 1, "last_key_pos": 1, "step_count": 1}}


async def test_the_cluster_client_reads_its_command_table_once():
    """redis-py re-reads it from the first primary after each error: with that one cut off, every command fails."""
    client = create_redis(ServiceSettings(redis_cluster=True, redis_url="redis://127.0.0.1:1,redis://127.0.0.1:2"))
    assert isinstance(client.commands_parser, CommandTableOnce)
    assert isinstance(client.commands_parser, AsyncCommandsParser), "the attribute redis-py reads is still there"
    first, second = _CountingNode(), _CountingNode()
    await client.commands_parser.initialize(first)
    await client.commands_parser.initialize(second)
    assert (first.calls, second.calls) == (1, 0)
    assert "get" in client.commands_parser.commands


def test_cluster_credentials_are_read_as_a_redis_url_reads_them():
    client = create_redis(ServiceSettings(redis_cluster=True, redis_url="rediss://sala:p%40ss%2Cw@10.0.0.1:6379"))
    options = client.nodes_manager.connection_kwargs
    assert (options["username"], options["password"]) == ("sala", "p@ss,w")


async def test_a_cluster_that_no_seed_answers_is_not_ready_rather_than_an_error():
    client = create_redis(ServiceSettings(redis_cluster=True, redis_url="redis://127.0.0.1:1"), retries=0)
    try:
        assert await redis_ready(client) is False
    finally:
        await client.aclose()

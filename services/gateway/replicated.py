"""Acks that survive a failover: a message is answered only once ``WAIT`` saw it reach enough replicas.

``WAIT`` counts the writes of the connection that sends it, so the appends
and their ``WAIT`` go out together on one connection of the room's primary:
a round. One round per primary is in flight at a time, and the messages that
arrive meanwhile go out together in the next (a group commit): a replica
that lags holds one connection per primary for the timeout, never the
client's whole pool.

A message the script answers as a repeat (a re-send after a lost ack, or a
round the client library ran again after its connection broke) was written
before, perhaps on another connection, so this connection's ``WAIT`` proves
nothing about it. It goes round once more with ``REASSERT_REF``, which
writes the message's ref again, unchanged: a write on this connection, later
than the message, that the round's ``WAIT`` must see replicated.

Short of replicas within the timeout, the message is refused with
``NotReplicated``, a RedisError: its socket closes with 1013 and the client
re-sends it with the same ref, which stores it once. It is stored on the
primary, and published, all the same: only the ack waits for the replicas.

On a cluster a round goes to the primary that the client's slot map names.
A redirect (a failover or a resharding) or a lost connection sends the
message through the client's own call, which follows redirects, refreshes
the slot map and retries; then it goes round again, as a repeat, to its
primary.
"""

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.redis_schema import REASSERT_REF, Script

log = logging.getLogger(__name__)

# Rounds one message may take (appended, then confirmed as a repeat after a redirect, ...) before it is refused.
MAX_ROUNDS = 4
# Answers that mean "not run here": the message goes through the cluster client's own call.
REDIRECTS = (AskError, TryAgainError, ClusterDownError)  # AskError covers MovedError
# The one lane on a single server; on a cluster, that of messages whose primary the slot map does not name.
NO_NODE = ""


class NotReplicated(RedisError):
    """Fewer replicas than asked confirmed a message in time: it is not acked."""


@dataclass(slots=True)
class _Message:
    key: str
    args: list[object]
    dedupe: str
    future: asyncio.Future[list[object] | None]
    # The script's answer ``[id, repeat]`` once the message is known stored: rounds then confirm it.
    stored: list[object] | None = None
    rounds: int = 0
    # The primary did not know the script: the next round sends it whole (EVAL caches it on that node).
    send_body: bool = False


class ReplicatedAppends:
    """Runs the append script and answers with its reply only once ``replicas`` replicas hold the message."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        script: Script,
        replicas: int,
        timeout_ms: int,
        cluster: bool | None = None,
    ) -> None:
        """``cluster``: whether ``redis`` is a cluster client (None: a RedisCluster is)."""
        self._redis = redis
        self._script = script
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        self._cluster = isinstance(redis, RedisCluster) if cluster is None else cluster
        self._queued: dict[str, list[_Message]] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}

    async def append(self, key: str, args: list[object], dedupe: str) -> list[object] | None:
        """The append script's reply for the room ``key``, once replicated; None if the room is not live."""
        message = _Message(key, args, dedupe, asyncio.get_running_loop().create_future())
        self._enqueue(message)
        return await message.future

    def _enqueue(self, message: _Message) -> None:
        lane = self._lane_of(message.key)
        self._queued.setdefault(lane, []).append(message)
        if lane not in self._lanes:
            # Starts on the next turn of the loop: the messages of this one go out together.
            self._lanes[lane] = asyncio.create_task(self._drain(lane))

    def _lane_of(self, key: str) -> str:
        if not self._cluster:
            return NO_NODE
        try:
            return self._redis.get_node_from_key(key).name
        except (RedisClusterException, RedisError):
            return NO_NODE

    async def _drain(self, lane: str) -> None:
        try:
            while batch := self._queued.pop(lane, None):
                await self._round(lane, batch)
        finally:
            del self._lanes[lane]

    async def _round(self, lane: str, batch: list[_Message]) -> None:
        for message in batch:
            message.rounds += 1
        try:
            if self._cluster:
                await self._cluster_round(lane, batch)
            else:
                replies, waited = await self._server_exchange(batch)
                await self._settle(batch, replies, waited)
        except Exception as exc:  # whatever went wrong, every waiting socket must hear of it
            if not isinstance(exc, RedisError | OSError):
                log.exception("appending a replicated batch failed")
            for message in batch:
                if not message.future.done():
                    message.future.set_exception(exc)

    async def _cluster_round(self, lane: str, batch: list[_Message]) -> None:
        try:
            await self._redis.initialize()  # a no-op unless the client saw the topology change
            node = self._redis.get_node(node_name=lane) if lane != NO_NODE else None
            exchanged = None if node is None else await self._node_exchange(node, batch)
        except (RedisClusterException, RedisError, OSError):
            exchanged = None
        if exchanged is None:
            # No primary to send to, or whether the appends ran is unknown: the client's own call
            # finds out (it retries and re-maps).
            await self._route(batch)
        else:
            await self._settle(batch, *exchanged)

    def _command(self, message: _Message) -> tuple[object, ...]:
        if message.stored is not None:
            return ("EVAL", REASSERT_REF, 1, message.key, message.dedupe, message.stored[0])
        if message.send_body:
            return ("EVAL", self._script.script, 1, message.key, *message.args)
        return ("EVALSHA", self._script.sha, 1, message.key, *message.args)

    async def _server_exchange(self, batch: list[_Message]) -> tuple[list[object], object]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in batch:
                pipe.execute_command(*self._command(message))
            pipe.wait(self._replicas, self._timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        return replies[:-1], replies[-1]

    async def _node_exchange(self, node: ClusterNode, batch: list[_Message]) -> tuple[list[object], object]:
        """The round on one connection of ``node``: the cluster client would send ``WAIT`` to any node."""
        commands = [PipelineCommand(i, *self._command(message)) for i, message in enumerate(batch)]
        commands.append(PipelineCommand(len(batch), "WAIT", self._replicas, self._timeout_ms))
        try:
            await node.execute_pipeline(commands)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # As the cluster client does: this node's connections are not to be trusted any more.
            node.update_active_connections_for_reconnect()
            await node.disconnect_free_connections()
            raise
        return [command.result for command in commands[:-1]], commands[-1].result

    async def _settle(self, batch: list[_Message], replies: list[object], waited: object) -> None:
        """Answer what the round confirmed; send again what it could not."""
        written: list[_Message] = []  # written on the round's connection before its WAIT
        again: list[_Message] = []
        routed: list[_Message] = []
        for message, reply in zip(batch, replies, strict=True):
            if message.future.done():
                continue
            if isinstance(reply, NoScriptError):
                # Loaded by sending it whole to this primary only: a SCRIPT LOAD would go to every primary.
                message.send_body = True
                again.append(message)
            elif self._cluster and isinstance(reply, REDIRECTS):
                routed.append(message)
            elif isinstance(reply, Exception):
                message.future.set_exception(reply)
            elif reply is None:
                message.future.set_result(None)  # the room is gone
            elif message.stored is not None:
                # A reassert: 1 if it wrote the ref again.
                if int(reply) == 1:
                    written.append(message)
                else:
                    message.future.set_exception(NotReplicated("the message's ref was forgotten before it was confirmed"))
            else:
                message.stored = reply
                # A repeat was written before, maybe on another connection: it goes round again to be
                # confirmed, unless the replicas are short now anyway.
                (again if int(reply[1]) and self._enough(waited) else written).append(message)
        self._confirm(written, waited)
        if routed:
            await self._route(routed)
        for message in again:
            self._retry(message)

    def _enough(self, waited: object) -> bool:
        return isinstance(waited, int) and waited >= self._replicas

    def _confirm(self, written: list[_Message], waited: object) -> None:
        if not written:
            return
        if self._enough(waited):
            for message in written:
                message.future.set_result(message.stored)
            return
        log.warning(
            "replicas did not confirm in time; messages not acked",
            extra={"replicas": str(waited), "wanted": self._replicas, "messages": len(written)},
        )
        failure = waited if isinstance(waited, Exception) else None
        for message in written:
            message.future.set_exception(
                failure or NotReplicated(f"{waited} of {self._replicas} replicas confirmed within {self._timeout_ms} ms")
            )

    async def _route(self, batch: list[_Message]) -> None:
        """Store (or find) each message through the cluster client's own call, then confirm it in a round."""
        replies = await asyncio.gather(
            *(self._script(keys=[message.key], args=message.args) for message in batch), return_exceptions=True
        )
        for message, reply in zip(batch, replies, strict=True):
            if message.future.done():
                continue
            if isinstance(reply, BaseException):
                message.future.set_exception(reply)
            elif reply is None:
                message.future.set_result(None)
            else:
                message.stored = reply
                self._retry(message)

    def _retry(self, message: _Message) -> None:
        if message.rounds >= MAX_ROUNDS:
            message.future.set_exception(NotReplicated(f"not confirmed in {MAX_ROUNDS} rounds"))
        else:
            self._enqueue(message)

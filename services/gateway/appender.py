"""Appending chat messages in batches: one Redis round trip per event-loop tick, not per message.

Every socket of the gateway hands its message here and awaits the event id.
Messages that arrive while the loop is busy go out together in one batch of
the append script; each still runs atomically on its own, and a socket never
has two messages in flight, so its order is kept. On one server the batches go
out on the gateway's command line (``services.gateway.line``), without
redis-py's per-command bookkeeping; in a cluster each call goes to its room's
node through the cluster client.

Each append carries a dedupe key (the user and the client's ``ref``, or one
the gateway makes up): the script stores a key's message once and answers a
repeat with the first id. So a client re-sending after a lost ack, the client
library retrying a call whose connection broke mid-flight, and the batch run
again after a lost connection, all store the message once.

With ``SALA_ACK_REPLICAS`` above 0 the answer also waits until that many
replicas hold the message (``services.gateway.replicated``).
"""

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from services.common.redis_schema import Scripts, room_key
from services.gateway.line import Commands
from services.gateway.replicated import ReplicatedAppends

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Appended:
    event_id: str
    # The same dedupe key was stored before: this is a repeat, answered with the first id.
    repeat: bool


@dataclass(slots=True)
class _Entry:
    code: str
    body: bytes
    dedupe: str
    future: asyncio.Future[Appended | None]


class MessageAppender:
    def __init__(
        self,
        redis: Redis | RedisCluster,
        scripts: Scripts,
        maxlen: int,
        dedupe_window: int,
        commands: Commands,
        ack_replicas: int = 0,
        ack_timeout_ms: int = 1000,
    ) -> None:
        self._commands = commands
        self._script = scripts.append_message
        self._maxlen = maxlen
        self._dedupe_window = dedupe_window
        self._pending: list[_Entry] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._replicated = (
            ReplicatedAppends(redis, self._script, ack_replicas, ack_timeout_ms) if ack_replicas > 0 else None
        )

    async def append(self, code: str, body: bytes, dedupe: str) -> Appended | None:
        """Store and publish a message event once per ``dedupe`` key; None if the room is not live."""
        if self._replicated is not None:
            args = [self._maxlen, body, dedupe, self._dedupe_window]
            result = await self._replicated.append(room_key(code), args, dedupe)
            return None if result is None else Appended(result[0], bool(int(result[1])))
        future: asyncio.Future[Appended | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(code, body, dedupe, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        task = asyncio.create_task(self._flush(self._pending))
        self._pending = []
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Entry]) -> None:
        try:
            results = await self._run(batch)
        except Exception as exc:  # whatever went wrong, every waiting socket must hear of it
            if not isinstance(exc, RedisError | OSError):
                log.exception("appending a batch failed")
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        for entry, result in zip(batch, results, strict=True):
            if entry.future.done():
                continue
            if isinstance(result, Exception):
                entry.future.set_exception(result)
            else:
                entry.future.set_result(None if result is None else Appended(result[0], bool(int(result[1]))))

    def _args(self, entry: _Entry) -> list[object]:
        return [self._maxlen, entry.body, entry.dedupe, self._dedupe_window]

    async def _run(self, batch: list[_Entry]) -> list[object]:
        return await self._commands.eval_many(
            self._script, [([room_key(entry.code)], self._args(entry)) for entry in batch]
        )

"""Appending chat messages in batches: one Redis round trip per event-loop tick, not per message.

Every socket of the gateway hands its message here and awaits the event id.
Messages that arrive while the loop is busy go out together in one pipeline
of the append script; each still runs atomically on its own, and a socket
never has two messages in flight, so its order is kept.
"""

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from services.common.redis_schema import Scripts, room_key

log = logging.getLogger(__name__)


class MessageAppender:
    def __init__(self, redis: Redis, scripts: Scripts, maxlen: int) -> None:
        self._redis = redis
        self._script = scripts.append_message
        self._maxlen = maxlen
        self._pending: list[tuple[str, bytes, asyncio.Future[str | None]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def append(self, code: str, body: bytes) -> str | None:
        """Store and publish a message event; its id, or None if the room is not live."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((code, body, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        task = asyncio.create_task(self._flush(self._pending))
        self._pending = []
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[str, bytes, asyncio.Future[str | None]]]) -> None:
        try:
            results = await self._run(batch)
        except (RedisError, OSError) as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(self, batch: list[tuple[str, bytes, asyncio.Future[str | None]]]) -> list[object]:
        if len(batch) == 1:
            code, body, _ = batch[0]
            return [await self._script(keys=[room_key(code)], args=[self._maxlen, body])]
        async with self._redis.pipeline(transaction=False) as pipe:
            for code, body, _ in batch:
                pipe.evalsha(self._script.sha, 1, room_key(code), self._maxlen, body)
            results = await pipe.execute(raise_on_error=False)
        if any(isinstance(result, NoScriptError) for result in results):
            # Redis restarted and forgot the script: load it once, then run the batch again.
            await self._redis.script_load(self._script.script)
            return await self._run(batch)
        return results

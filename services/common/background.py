"""A service's periodic duties (heartbeat, reaper, ...), started in the lifespan and stopped for sure.

Cancellation alone is not enough: a cancel that lands as a client-side
timeout fires can be turned into a TimeoutError and swallowed by a retry
loop. So each duty also checks a stop flag between rounds, and shutdown waits
for the duties only so long.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Duties:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, duty: Callable[["Duties"], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(duty(self), name=name))

    async def pause(self, seconds: float) -> bool:
        """Wait between rounds; False once the service is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                log.warning("duty did not stop in time", extra={"duty": task.get_name()})

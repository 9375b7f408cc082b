"""Light single-reader primitives for per-socket state.

A gateway holds thousands of idle sockets, and each one keeps its queues and
flags for hours. ``asyncio.Queue`` carries three deques and an ``Event`` (a
fourth) for bounds, ``join()`` and many readers; a socket needs none of that,
so these keep a deque only while items wait (an empty one is a 760-byte
block, and an idle socket has two mailboxes), and a future only while
someone waits.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """An unbounded FIFO with a single reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        # None while empty.
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return self._items is None

    def __iter__(self) -> Iterator[T]:
        """The waiting items, oldest first, left in place."""
        return iter(self._items or ())

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        """The oldest item; raises ``asyncio.QueueEmpty`` when there is none."""
        items = self._items
        if items is None:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def drop_leading(self, stale: Callable[[T], bool]) -> None:
        """Drop the items at the head of the queue for which ``stale`` holds, up to the first that is not."""
        items = self._items
        while items and stale(items[0]):
            items.popleft()
        if not items:
            self._items = None

    async def get(self) -> T:
        while self._items is None:
            if self._waiter is not None:
                raise RuntimeError("a Mailbox has a single reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()


class Gate:
    """An ``asyncio.Event`` look-alike that starts set and holds futures only while someone waits."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> None:
        if self._open:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)

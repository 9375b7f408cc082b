"""Password hashing with argon2id through passlib's API (the libpass fork), and the password rules."""

import asyncio
import ctypes
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TypeVar

from passlib.context import CryptContext
from zxcvbn.frequency_lists import FREQUENCY_LISTS

T = TypeVar("T")

log = logging.getLogger(__name__)

# glibc's mallopt parameter, and the size from which it serves a block by mmap (its initial default).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024

# Below this length an email's local part ("jo") would forbid too many passwords; it is only refused whole.
MIN_CONTAINED_PART = 3


class CommonPasswords:
    """The most common passwords (zxcvbn's frequency list), refused at registration (ASVS 6.2.4)."""

    @cached_property
    def _passwords(self) -> frozenset[str]:
        return frozenset(FREQUENCY_LISTS["passwords"])

    def __contains__(self, password: str) -> bool:
        return password.lower() in self._passwords


def password_problem(password: str, username: str, email: str) -> str | None:
    """Why ``password`` is too easy to guess for this account, or None: the first thing an attacker tries."""
    folded = password.casefold()
    if len(set(folded)) == 1:
        return "The password repeats a single character; choose another."
    if username.casefold() in folded:
        return "The password contains the username; choose another."
    local = email.rpartition("@")[0].casefold()
    for part in {local, local.partition("+")[0]}:
        if part and (folded == part or (len(part) >= MIN_CONTAINED_PART and part in folded)):
            return "The password contains the email address's name; choose another."
    return None


def return_freed_hash_memory() -> None:
    """Have glibc give argon2's blocks back to the system as soon as a hash is done.

    glibc maps a large block (argon2's ~19 MiB) with mmap and unmaps it when
    freed, but after the first such free it raises its threshold, and later
    blocks come from per-thread arenas it keeps forever: RSS stays at its peak.
    Pinning the threshold keeps them mapped and returned. Elsewhere than glibc
    (musl, macOS) there is nothing to pin.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        log.info("not glibc: malloc's mmap threshold left as it is")
        return
    if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("could not pin malloc's mmap threshold: hash memory may stay at its peak")


class HasherBusy(Exception):
    """Every hashing slot stayed taken for the whole wait: the caller should answer 503."""


class HashSlots:
    """Runs costly computations on a pool of ``concurrency`` threads, at most that many at once.

    Each argon2 computation holds its memory for its duration, so the number
    at once is what bounds the process's memory; threads beyond it would also
    each keep a malloc arena of their own. A caller that finds no free slot
    within ``wait_seconds`` gets HasherBusy instead of joining an unbounded queue.
    """

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self._wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")

    async def run(self, work: Callable[..., T], *args: str) -> T:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise HasherBusy from None
        future = asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        # The slot is free when the computation ends, not when a cancelled caller stops waiting for it.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class PasswordHasher:
    """argon2id hashing and verification, off the event loop and a bounded number at a time (HashSlots)."""

    def __init__(
        self, memory_kib: int, time_cost: int, parallelism: int, concurrency: int, wait_seconds: float
    ) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__rounds=time_cost,
            argon2__parallelism=parallelism,
        )
        self._slots = HashSlots(concurrency, wait_seconds)
        # Verified against when the email is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._context.hash("not a real password")

    async def hash(self, password: str) -> str:
        return await self._slots.run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Whether it matches, and a new hash when the stored one uses weaker parameters."""
        if password_hash is None:
            await self._slots.run(self._context.verify, password, self._dummy_hash)
            return False, None
        return await self._slots.run(self._context.verify_and_update, password, password_hash)

    def close(self) -> None:
        self._slots.close()

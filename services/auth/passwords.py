"""Password hashing with argon2id through passlib's API (the libpass fork), and the common-password check."""

from functools import cached_property

from passlib.context import CryptContext
from starlette.concurrency import run_in_threadpool
from zxcvbn.frequency_lists import FREQUENCY_LISTS


class CommonPasswords:
    """The most common passwords (zxcvbn's frequency list), refused at registration (ASVS 6.2.4)."""

    @cached_property
    def _passwords(self) -> frozenset[str]:
        return frozenset(FREQUENCY_LISTS["passwords"])

    def __contains__(self, password: str) -> bool:
        return password.lower() in self._passwords


class PasswordHasher:
    """Hashes off the event loop: argon2 is deliberately slow."""

    def __init__(self, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__rounds=time_cost,
            argon2__parallelism=parallelism,
        )
        # Verified against when the email is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._context.hash("not a real password")

    async def hash(self, password: str) -> str:
        return await run_in_threadpool(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Whether it matches, and a new hash when the stored one uses weaker parameters."""
        if password_hash is None:
            await run_in_threadpool(self._context.verify, password, self._dummy_hash)
            return False, None
        return await run_in_threadpool(self._context.verify_and_update, password, password_hash)

"""Accounts and sessions in Postgres."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


class EmailTaken(Exception):
    pass


class UsernameTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    username: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID
    user_id: UUID
    expires_at: datetime


async def create_user(pool: asyncpg.Pool, email: str, username: str, password_hash: str) -> User:
    try:
        row = await pool.fetchrow(
            "INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3)"
            " RETURNING id, email, username, password_hash, created_at",
            email,
            username,
            password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "users_email_key":
            raise EmailTaken from exc
        raise UsernameTaken from exc
    return User(**dict(row))


async def user_by_email(pool: asyncpg.Pool, email: str) -> User | None:
    row = await pool.fetchrow(
        "SELECT id, email, username, password_hash, created_at FROM users WHERE lower(email) = lower($1)", email
    )
    return User(**dict(row)) if row else None


async def user_by_id(pool: asyncpg.Pool, user_id: UUID) -> User | None:
    row = await pool.fetchrow("SELECT id, email, username, password_hash, created_at FROM users WHERE id = $1", user_id)
    return User(**dict(row)) if row else None


async def update_password_hash(pool: asyncpg.Pool, user_id: UUID, password_hash: str) -> None:
    await pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def create_session(pool: asyncpg.Pool, user_id: UUID, ttl_seconds: int) -> Session:
    row = await pool.fetchrow(
        "INSERT INTO sessions (user_id, expires_at) VALUES ($1, now() + make_interval(secs => $2))"
        " RETURNING id, user_id, expires_at",
        user_id,
        float(ttl_seconds),
    )
    return Session(**dict(row))


async def session_is_live(pool: asyncpg.Pool, session_id: UUID) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > now())",
            session_id,
        )
    )


async def revoke_session(pool: asyncpg.Pool, session_id: UUID) -> None:
    """Mark the session revoked (a session revoked already keeps its first revocation time)."""
    await pool.execute("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", session_id)


async def recently_revoked_sessions(pool: asyncpg.Pool, within_seconds: int) -> list[UUID]:
    """Sessions revoked so recently that one of their access tokens may still be unexpired."""
    rows = await pool.fetch(
        "SELECT id FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)", float(within_seconds)
    )
    return [row["id"] for row in rows]


class RefreshRejected(Exception):
    """The refresh token is unknown, or its session is over."""


class RefreshReused(Exception):
    """A refresh token was presented again after it had been replaced: the session was revoked."""

    def __init__(self, session_id: UUID) -> None:
        super().__init__("refresh token reused")
        self.session_id = session_id


async def add_refresh_token(pool: asyncpg.Pool, session_id: UUID, token_hash: bytes) -> None:
    await pool.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", token_hash, session_id)


async def rotate_refresh_token(
    pool: asyncpg.Pool, token_hash: bytes, new_hash: bytes, reuse_grace_seconds: float
) -> tuple[Session, User]:
    """Swap a refresh token for a new one, atomically; detects replays.

    A token used again within ``reuse_grace_seconds`` (two tabs refreshing at
    once) is only refused; later, it revokes the session.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT r.used_at, r.used_at > now() - make_interval(secs => $2) AS recent,"
            " s.id AS session_id, s.user_id, s.expires_at, s.revoked_at, s.expires_at > now() AS live"
            " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id"
            " WHERE r.token_hash = $1 FOR UPDATE OF r, s",
            token_hash,
            float(reuse_grace_seconds),
        )
        if row is None or row["revoked_at"] is not None or not row["live"]:
            raise RefreshRejected
        if row["used_at"] is not None:
            if row["recent"]:
                raise RefreshRejected
            # Committed before the caller hears of the replay: the revocation must stick.
            await conn.execute("UPDATE sessions SET revoked_at = now() WHERE id = $1", row["session_id"])
            user = None
        else:
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", token_hash)
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", new_hash, row["session_id"]
            )
            user = await conn.fetchrow(
                "SELECT id, email, username, password_hash, created_at FROM users WHERE id = $1", row["user_id"]
            )
    if user is None:
        raise RefreshReused(row["session_id"])
    return Session(row["session_id"], row["user_id"], row["expires_at"]), User(**dict(user))


async def revoke_user_sessions(pool: asyncpg.Pool, user_id: UUID) -> list[UUID]:
    """Revoke every live session of the user; returns their ids."""
    rows = await pool.fetch(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()"
        " RETURNING id",
        user_id,
    )
    return [row["id"] for row in rows]


async def refresh_token_session(pool: asyncpg.Pool, token_hash: bytes) -> UUID | None:
    """The session a refresh token belongs to (used or not), to throttle refreshes per session."""
    return await pool.fetchval("SELECT session_id FROM refresh_tokens WHERE token_hash = $1", token_hash)


# Rows deleted per statement, so that a large backlog never holds locks for long.
PURGE_BATCH = 1000


async def _delete_in_batches(pool: asyncpg.Pool, table: str, key: str, condition: str, *args: object) -> int:
    deleted = 0
    while True:
        status = await pool.execute(
            f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT {PURGE_BATCH})",
            *args,
        )
        count = int(status.rsplit(" ", 1)[1])
        deleted += count
        if count < PURGE_BATCH:
            return deleted


async def purge_sessions(
    pool: asyncpg.Pool, token_lifetime_seconds: int, used_token_keep_seconds: int
) -> tuple[int, int]:
    """Delete what can no longer matter; returns (sessions, refresh tokens) deleted.

    A session goes once it expired or was revoked more than an access token's
    lifetime ago (until then a revoked row is what restores the revocation
    list after Redis loses it); its refresh tokens go with it. A used refresh
    token goes once it is older than ``used_token_keep_seconds``: later, its
    replay is refused without revoking the session.
    """
    sessions = await _delete_in_batches(
        pool,
        "sessions",
        "id",
        "expires_at < now() - make_interval(secs => $1) OR revoked_at < now() - make_interval(secs => $1)",
        float(token_lifetime_seconds),
    )
    tokens = await _delete_in_batches(
        pool,
        "refresh_tokens",
        "token_hash",
        "used_at < now() - make_interval(secs => $1)",
        float(used_token_keep_seconds),
    )
    return sessions, tokens

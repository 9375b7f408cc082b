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


async def revoke_session(pool: asyncpg.Pool, session_id: UUID) -> datetime | None:
    """Mark the session revoked; returns when it would have expired, or None if it was not live."""
    return await pool.fetchval(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING expires_at",
        session_id,
    )


async def revoked_unexpired_sessions(pool: asyncpg.Pool) -> list[tuple[UUID, datetime]]:
    rows = await pool.fetch(
        "SELECT id, expires_at FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > now()"
    )
    return [(row["id"], row["expires_at"]) for row in rows]

"""Apply the versioned SQL files in ``migrations/`` once each, in order.

Runs at start-up under a Postgres advisory lock, so replicas starting
together apply each file exactly once.
"""

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary constant that names Sala's migration lock among advisory locks.
MIGRATION_LOCK_ID = 0x5A1A_0001


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration, sorted by version (the file name)."""
    folder = resources.files("services.auth") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply what is missing; returns the versions applied now."""
    applied_now = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                log.info("applied migration", extra={"version": version})
                applied_now.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now

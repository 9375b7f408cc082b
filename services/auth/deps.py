"""Dependencies of the auth routes, as ``Annotated`` aliases."""

from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, status

from services.auth.metrics import AuthMetrics
from services.auth.passwords import CommonPasswords, PasswordHasher
from services.auth.settings import AuthSettings
from services.auth.store import session_is_live
from services.common.deps import AuthenticatedUser, RedisDep, ScriptsDep, app_state
from services.common.tokens import Principal, TokenSigner

PoolDep = Annotated[asyncpg.Pool, Depends(app_state("pool"))]
SettingsDep = Annotated[AuthSettings, Depends(app_state("settings"))]
SignerDep = Annotated[TokenSigner, Depends(app_state("signer"))]
HasherDep = Annotated[PasswordHasher, Depends(app_state("hasher"))]
MetricsDep = Annotated[AuthMetrics, Depends(app_state("metrics"))]
CommonPasswordsDep = Annotated[CommonPasswords, Depends(app_state("common_passwords"))]


async def _live_principal(principal: AuthenticatedUser, pool: PoolDep) -> Principal:
    """Auth also asks Postgres, the truth about sessions, so a revocation holds even if Redis forgot it."""
    if not await session_is_live(pool, principal.session_id):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="Session ended: log in again.", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


CurrentUser = Annotated[Principal, Depends(_live_principal)]

__all__ = ["CommonPasswordsDep", "CurrentUser", "HasherDep", "MetricsDep", "PoolDep", "RedisDep", "ScriptsDep", "SettingsDep", "SignerDep"]

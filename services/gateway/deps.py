"""Dependencies of the gateway routes, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends

from services.common.deps import RedisDep, ScriptsDep, app_state
from services.common.tokens import TokenVerifier
from services.gateway.hub import Hub
from services.gateway.settings import GatewaySettings

HubDep = Annotated[Hub, Depends(app_state("hub"))]
SettingsDep = Annotated[GatewaySettings, Depends(app_state("settings"))]
VerifierDep = Annotated[TokenVerifier, Depends(app_state("verifier"))]

__all__ = ["HubDep", "RedisDep", "ScriptsDep", "SettingsDep", "VerifierDep"]

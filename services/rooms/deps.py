"""Dependencies of the rooms routes, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends

from services.common.deps import AuthenticatedUser, RedisDep, ScriptsDep, app_state
from services.rooms.settings import RoomsSettings

SettingsDep = Annotated[RoomsSettings, Depends(app_state("settings"))]
CurrentUser = AuthenticatedUser

__all__ = ["CurrentUser", "RedisDep", "ScriptsDep", "SettingsDep"]

"""The rooms API: create a room, look one up by code."""

from fastapi import APIRouter, HTTPException, status

from services.common import ratelimit
from services.common.clock import utc_now_iso
from services.common.http import error_responses
from services.common.ratelimit import Limit
from services.common.room_codes import normalize
from services.rooms import store
from services.rooms.deps import CurrentUser, RedisDep, ScriptsDep, SettingsDep
from services.rooms.schemas import CreateRoomRequest, RoomDetail, RoomOut

router = APIRouter(prefix="/api/rooms", tags=["rooms"])

NO_SUCH_ROOM = "No live room has this code: check it, or the room may have closed."


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RoomOut, responses=error_responses(401, 403, 413, 429, 503)
)
async def create_room(
    user: CurrentUser, scripts: ScriptsDep, settings: SettingsDep, body: CreateRoomRequest | None = None
) -> RoomOut:
    limit = Limit(settings.rooms_per_user, settings.rate_limit_window_seconds)
    verdict = await ratelimit.hit(scripts, "create-room", user.user_id, limit)
    if not verdict.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many rooms created; try again in {verdict.retry_after} seconds.",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    name = (body.name if body else None) or None
    created_at = utc_now_iso()
    try:
        code = await store.create_room(
            scripts, name, created_at, user.username, settings.room_grace_seconds, settings.room_code_length
        )
    except store.NoFreeCode:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="No free room code; try again.") from None
    return RoomOut(code=code, name=name, created_at=created_at, created_by=user.username)


@router.get("/{code}", response_model=RoomDetail, responses=error_responses(401, 404, 503))
async def get_room(code: str, user: CurrentUser, redis: RedisDep) -> RoomDetail:
    canonical = normalize(code)
    room = await store.get_room(redis, canonical) if canonical else None
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_SUCH_ROOM)
    return RoomDetail.model_validate(room)

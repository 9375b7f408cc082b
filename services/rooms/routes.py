"""The rooms API: create a room, look one up by code."""

from fastapi import APIRouter, HTTPException, Request, status

from services.common import ratelimit
from services.common.clock import utc_now_iso
from services.common.http import error_responses
from services.common.ratelimit import Budget, Limit
from services.common.room_codes import normalize
from services.rooms import store
from services.rooms.deps import CurrentUser, RedisDep, ScriptsDep, SettingsDep
from services.rooms.schemas import CreateRoomRequest, RoomDetail, RoomOut
from services.rooms.settings import RoomsSettings

router = APIRouter(prefix="/api/rooms", tags=["rooms"])

NO_SUCH_ROOM = "No live room has this code: check it, or the room may have closed."


def _lookup_budgets(settings: RoomsSettings, user_id: str, address: str) -> tuple[list[Budget], list[Budget]]:
    """(every lookup's budgets, a miss's budgets): a code is the only key to a room, so guessing is throttled hard."""
    window = settings.rate_limit_window_seconds
    lookups = [
        Budget("room-lookup-user", user_id, Limit(settings.room_lookups_per_user, window)),
        Budget("room-lookup-address", address, Limit(settings.room_lookups_per_address, window)),
    ]
    return lookups, ratelimit.room_miss_budgets(settings, user_id, address)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RoomOut, responses=error_responses(401, 403, 413, 429, 503)
)
async def create_room(
    user: CurrentUser, scripts: ScriptsDep, settings: SettingsDep, body: CreateRoomRequest | None = None
) -> RoomOut:
    limit = Limit(settings.rooms_per_user, settings.rate_limit_window_seconds)
    verdict = await ratelimit.hit(scripts, "create-room", user.user_id, limit)
    if not verdict.allowed:
        raise ratelimit.too_many(verdict.retry_after, "rooms created")
    name = (body.name if body else None) or None
    created_at = utc_now_iso()
    try:
        code = await store.create_room(
            scripts, name, created_at, user.username, settings.room_grace_seconds, settings.room_code_length
        )
    except store.NoFreeCode:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="No free room code; try again.") from None
    return RoomOut(code=code, name=name, created_at=created_at, created_by=user.username)


@router.get("/{code}", response_model=RoomDetail, responses=error_responses(401, 404, 429, 503))
async def get_room(
    code: str, request: Request, user: CurrentUser, redis: RedisDep, scripts: ScriptsDep, settings: SettingsDep
) -> RoomDetail:
    """A live room by code. Each lookup counts as a miss until the room is found, so parallel guesses cannot overdraw."""
    lookups, misses = _lookup_budgets(settings, user.user_id, ratelimit.client_address(request))
    verdict = await ratelimit.reserve(scripts, [*lookups, *misses])
    if not verdict.allowed:
        raise ratelimit.too_many(verdict.retry_after, "room lookups")
    canonical = normalize(code)
    room = await store.get_room(redis, canonical) if canonical else None
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_SUCH_ROOM)
    await ratelimit.refund(scripts, misses)
    return RoomDetail.model_validate(room)

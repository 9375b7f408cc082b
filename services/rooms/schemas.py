"""Request and response bodies of the rooms API."""

from typing import Annotated

from pydantic import BaseModel, StringConstraints


class CreateRoomRequest(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64, pattern=r"^[^\x00]*$")] | None = None


class RoomOut(BaseModel):
    code: str
    name: str | None
    created_at: str
    created_by: str


class RoomDetail(RoomOut):
    occupancy: int
    members: list[str]

"""``python -m services.rooms``: run the rooms service."""

from services.common.serve import serve
from services.rooms.app import create_app
from services.rooms.settings import RoomsSettings

serve("rooms", RoomsSettings, create_app)

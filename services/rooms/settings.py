from pathlib import Path

from services.common.settings import ServiceSettings


class RoomsSettings(ServiceSettings):
    port: int = 8002
    jwt_verify_keys_file: Path
    room_grace_seconds: int = 60
    room_code_length: int = 6
    rooms_per_user: int = 30
    rate_limit_window_seconds: int = 60

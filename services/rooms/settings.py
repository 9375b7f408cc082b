from pathlib import Path

from services.common.settings import ServiceSettings


class RoomsSettings(ServiceSettings):
    port: int = 8002
    jwt_verify_keys_file: Path
    room_grace_seconds: int = 60
    room_code_length: int = 6
    rooms_per_user: int = 30
    rate_limit_window_seconds: int = 60
    # Room lookups: every lookup per user and per client address, and lookups of a code
    # that is not live (guesses) more strictly, per window.
    room_lookups_per_user: int = 60
    room_lookups_per_address: int = 120
    room_lookup_misses_per_user: int = 10
    room_lookup_misses_per_address: int = 30

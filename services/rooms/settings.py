from pathlib import Path

from services.common.settings import ServiceSettings


class RoomsSettings(ServiceSettings):
    port: int = 8002
    jwt_verify_keys_file: Path
    room_grace_seconds: int = 60
    room_code_length: int = 6
    rooms_per_user: int = 30
    # Room lookups per user and per client address, per window; lookups of a code that is not
    # live (guesses) are limited more strictly by the shared room_lookup_misses_* settings.
    room_lookups_per_user: int = 60
    room_lookups_per_address: int = 120

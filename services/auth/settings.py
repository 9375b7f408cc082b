from pathlib import Path

from services.common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    port: int = 8001
    database_url: str = "postgresql://postgres@127.0.0.1:5432/sala"
    database_pool_max: int = 10
    jwt_signing_key_file: Path
    access_token_ttl_seconds: int = 900
    # How long a login lasts while its refresh token keeps being used.
    session_ttl_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: float = 10.0
    cookie_secure: bool = False
    # argon2id cost; at or above OWASP's minimum (19 MiB, 2 passes, 1 lane).
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    login_failures_per_account: int = 5
    login_attempts_per_address: int = 30
    registrations_per_address: int = 20
    rate_limit_window_seconds: int = 60

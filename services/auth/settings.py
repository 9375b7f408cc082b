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
    # A used refresh token is kept this long to recognise its replay, then purged.
    used_refresh_token_keep_seconds: int = 7 * 24 * 3600
    session_purge_interval_seconds: float = 3600.0
    refreshes_per_session: int = 10
    cookie_secure: bool = False
    # argon2id cost; at or above OWASP's minimum (19 MiB, 2 passes, 1 lane).
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # Memory all argon2 computations together may use; it sets how many run at once.
    password_hash_memory_budget_mib: int = 80
    # How long a login or registration waits for a free hashing slot before 503.
    password_hash_wait_seconds: float = 2.0
    login_failures_per_account_address: int = 5
    login_failures_per_account: int = 20
    login_account_window_seconds: int = 300
    login_known_address_seconds: int = 30 * 24 * 3600
    login_attempts_per_address: int = 30
    registrations_per_address: int = 20

    @property
    def password_hash_concurrency(self) -> int:
        """Argon2 computations at once: the memory budget over one computation's memory, at least one."""
        return max(1, self.password_hash_memory_budget_mib * 1024 // self.argon2_memory_kib)

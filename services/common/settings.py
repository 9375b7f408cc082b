"""The settings every service reads from ``SALA_*`` environment variables."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base of each service's settings model; subclasses add their own fields."""

    model_config = SettingsConfigDict(env_prefix="SALA_", extra="ignore")

    env: Literal["dev", "production"] = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # On: SALA_REDIS_URL lists seed nodes of a Redis (7+) or Valkey cluster, comma-separated.
    redis_cluster: bool = False
    # Where to reach cluster nodes that announce an address this service cannot reach as is (NAT, port
    # forwarding): comma-separated ``announced=reachable`` pairs of ``host:port``, at most 1,000.
    redis_cluster_address_map: str = ""
    jwt_verify_keys_file: Path | None = None
    jwt_issuer: str = "sala"
    jwt_audience: str = "sala"
    allowed_origins: Annotated[list[str], NoDecode] = [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    ]
    # Addresses whose X-Forwarded-For is believed: the edge, and only the edge.
    trusted_proxies: str = "127.0.0.1"
    # A gateway silent this long is dead; with the reaper running every second, detection takes at most this + 1 s.
    presence_timeout_seconds: float = 6.0
    # A user whose last socket went away without an explicit leave (reload, dropped network, dead
    # gateway) stays present this long; coming back within it is no leave and no join.
    leave_grace_seconds: float = Field(default=20.0, gt=0)
    room_history_max: int = 1000
    # The window of every fixed-window rate limit.
    rate_limit_window_seconds: int = 60
    # Lookups of a code that is not live, per user and per client address and window, over the
    # rooms API and the chat socket together: a code is the only key to a room.
    room_lookup_misses_per_user: int = 10
    room_lookup_misses_per_address: int = 30

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("redis_cluster_address_map")
    @classmethod
    def _check_address_map(cls, value: str) -> str:
        cls.parse_address_map(value)
        return value

    @staticmethod
    def parse_address_map(value: str) -> dict[str, str]:
        """``SALA_REDIS_CLUSTER_ADDRESS_MAP`` as announced ``host:port`` → reachable ``host:port``."""
        pairs = [pair.strip() for pair in value.split(",") if pair.strip()]
        if len(pairs) > 1000:
            raise ValueError("at most 1,000 address pairs")
        mapping = {}
        for pair in pairs:
            announced, sep, reachable = pair.partition("=")
            if not sep or ":" not in announced or not reachable.rpartition(":")[2].isdigit():
                raise ValueError(f"not an announced=reachable pair of host:port: {pair!r}")
            mapping[announced.strip()] = reachable.strip()
        return mapping

    @property
    def cluster_addresses(self) -> dict[str, str]:
        return self.parse_address_map(self.redis_cluster_address_map)

    @model_validator(mode="after")
    def _check_production(self) -> "ServiceSettings":
        if self.env == "production" and any(o.startswith("http://") for o in self.allowed_origins):
            raise ValueError("SALA_ALLOWED_ORIGINS must be https:// origins when SALA_ENV=production")
        return self

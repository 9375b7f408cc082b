"""The soak's settings: ``SALA_SOAK_*`` variables, overridden by the command line."""

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FAULT_KINDS = (
    "gateway_kill",
    "gateway_freeze",
    "gateway_cut",
    "redis_restart",
    "redis_kill",
    "auth_restart",
    "rooms_restart",
)
TARGETS = ("dev", "compose")
# Gateway replicas when none are asked for: the dev stack's two, and the three
# replicas a compose deployment is soaked with.
DEFAULT_GATEWAYS = {"dev": 2, "compose": 3}

# The product settings the soak changes, on every target. It keeps the product's
# own timing (presence timeout, leave grace): the faults are measured against
# what production promises. Only what would throttle the soak itself changes,
# and rooms keep every event so the checker can read whole streams at the end.
PRODUCT_ENV = {
    "SALA_REGISTRATIONS_PER_ADDRESS": "10000",
    "SALA_LOGIN_ATTEMPTS_PER_ADDRESS": "10000",
    "SALA_ROOMS_PER_USER": "1000",
    "SALA_ACCESS_TOKEN_TTL_SECONDS": "86400",
    "SALA_ROOM_HISTORY_MAX": "100000",
    "SALA_LOG_LEVEL": "INFO",
}


class SoakSettings(BaseSettings):
    """Every loop of the soak is bounded by one of these, in count or in time."""

    model_config = SettingsConfigDict(env_prefix="SALA_SOAK_")

    target: Literal["dev", "compose"] = "dev"  # a dev stack of its own, or docker-compose.yml under a project of its own
    ref: str | None = Field(default=None, max_length=200)  # compose: build from this git ref, not the working tree
    seconds: float = Field(default=600, gt=0, le=24 * 3600)  # how long members send and faults are injected
    rooms: int = Field(default=6, ge=1, le=100)
    members: int = Field(default=5, ge=1, le=50)  # per room
    gateways: int = Field(default=2, ge=2, le=8)  # unless given: DEFAULT_GATEWAYS of the target
    message_interval_seconds: float = Field(default=2.0, gt=0.05, le=60)
    faults: int = Field(default=30, ge=0, le=10_000)
    kinds: tuple[str, ...] = FAULT_KINDS
    freeze_min_seconds: float = Field(default=8, ge=0, le=120)
    freeze_max_seconds: float = Field(default=15, ge=0, le=120)
    cut_min_seconds: float = Field(default=8, ge=0, le=120)
    cut_max_seconds: float = Field(default=12, ge=0, le=120)
    warmup_seconds: float = Field(default=5, ge=0, le=600)  # no fault before this
    cooldown_seconds: float = Field(default=15, ge=0, le=600)  # no fault starts this close to the end
    drain_seconds: float = Field(default=45, gt=0, le=600)  # after sending stops, how long members may catch up
    ping_seconds: float = Field(default=2, gt=0, le=60)  # the client's heartbeat
    dead_after_seconds: float = Field(default=6, gt=0, le=300)  # silence after which the client drops the socket
    backoff_base_seconds: float = Field(default=0.5, gt=0, le=60)
    backoff_max_seconds: float = Field(default=10, gt=0, le=600)
    fault_settle_seconds: float = Field(default=3, ge=0, le=120)  # latency samples this close after a fault are left out
    pending_max: int = Field(default=50, ge=1, le=10_000)  # unacked messages a member holds before it stops typing
    seed: int | None = None

    @model_validator(mode="after")
    def _check(self) -> "SoakSettings":
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if self.freeze_min_seconds > self.freeze_max_seconds or self.cut_min_seconds > self.cut_max_seconds:
            raise ValueError("a minimum is above its maximum")
        if "gateways" not in self.model_fields_set:
            self.gateways = DEFAULT_GATEWAYS[self.target]
        if self.ref is not None and self.target != "compose":
            raise ValueError("a git ref is for the compose target (the dev stack runs the working tree)")
        return self

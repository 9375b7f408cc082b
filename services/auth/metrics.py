"""The auth service's own Prometheus metrics."""

from prometheus_client import CollectorRegistry, Counter


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.logins = Counter(
            "sala_auth_logins_total",
            "Login attempts by outcome: success, invalid, rate_limited, busy",
            ["outcome"],
            registry=registry,
        )
        self.registrations = Counter("sala_auth_registrations_total", "Accounts created", registry=registry)
        self.refreshes = Counter(
            "sala_auth_refreshes_total",
            "Refresh attempts by outcome: success, rejected, reused, rate_limited",
            ["outcome"],
            registry=registry,
        )

"""The one format of event time stamps."""

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """ISO 8601 UTC with milliseconds, the ``ts`` of every event."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

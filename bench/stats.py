"""Percentiles of latency samples (exact, nearest rank: the samples fit in memory)."""

from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def latency_summary(samples_us: Sequence[int]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds."""
    ordered = sorted(samples_us)
    summary = {name: percentile(ordered, q) for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))}
    summary["max"] = ordered[-1] if ordered else None
    return {name: (None if value is None else round(value / 1000, 2)) for name, value in summary.items()}

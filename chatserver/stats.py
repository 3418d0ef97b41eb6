"""Aggregate statistics that identify nobody (P10).

Only counts and durations leave this module. A count under ``SUPPRESS_BELOW``
is reported as None (shown as "<5"), and a duration statistic over fewer
samples than that is None too, so that no figure can be traced to one
person's chat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SUPPRESS_BELOW = 5


def suppress(count: int) -> int | None:
    return count if count >= SUPPRESS_BELOW else None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for too few samples to show."""
    n = len(sorted_values)
    if n < SUPPRESS_BELOW:
        return None
    position = q * (n - 1)
    low = int(position)
    high = min(low + 1, n - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarise(
    per_day: list[tuple[str, int]],
    first_responses_us: list[int],
    resolutions_us: list[int],
    devices: list[tuple[str | None, int]],
) -> dict[str, Any]:
    first = sorted(v / 1e6 for v in first_responses_us)
    resolved = sorted(v / 1e6 for v in resolutions_us)
    return {
        "suppressed_below": SUPPRESS_BELOW,
        "conversations_per_day": [
            {"day": day, "conversations": suppress(count)} for day, count in per_day
        ],
        "conversations": suppress(sum(count for _, count in per_day)),
        "first_response_seconds": {
            "count": suppress(len(first)),
            "median": percentile(first, 0.5),
            "p90": percentile(first, 0.9),
        },
        "resolution_seconds": {
            "count": suppress(len(resolved)),
            "median": percentile(resolved, 0.5),
        },
        "device_mix": [
            {"device_class": device or "unknown", "sessions": suppress(count)}
            for device, count in devices
        ],
    }

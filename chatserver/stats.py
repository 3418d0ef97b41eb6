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


def _csat_figures(count: int, score_sum: int, satisfied: int) -> dict[str, Any]:
    """Count, average score and share of 4s and 5s of a group of ratings; the two figures
    only over enough ratings to show (P10). A count of 0 is shown: it is about no one."""
    shown = count >= SUPPRESS_BELOW
    return {
        "ratings": count and suppress(count),
        "average": round(score_sum / count, 2) if shown else None,
        "satisfied_share": round(satisfied / count, 3) if shown else None,
    }


def summarise_csat(rows: dict[str, list[Any]]) -> dict[str, Any]:
    """Satisfaction ratings in the period: the 1–5 distribution, average, share of satisfied
    (4 or 5), per agent rated and per UTC day. Counts and averages only, small ones withheld."""
    by_score = {int(score): int(count) for score, count in rows["by_score"]}
    count = sum(by_score.values())
    total = sum(score * n for score, n in by_score.items())
    satisfied = by_score.get(4, 0) + by_score.get(5, 0)
    return {
        **_csat_figures(count, total, satisfied),
        "distribution": [
            {"score": score, "ratings": by_score.get(score, 0) and suppress(by_score[score])}
            for score in range(1, 6)
        ],
        "per_agent": [
            {"agent": {"id": agent_id, "name": name}, **_csat_figures(n, s, happy)}
            for agent_id, name, n, s, happy in rows["by_agent"]
        ],
        "per_day": [
            {"day": day, **_csat_figures(n, s, happy)} for day, n, s, happy in rows["by_day"]
        ],
    }

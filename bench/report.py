"""Plain-text tables for the benchmark results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LOAD_COLUMNS = (
    "target",
    "offered/s",
    "delivered/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "ack p50",
    "ack p99",
    "CPU s/1k",
    "RSS MB",
    "lost",
    "errors",
    "gen lag p99",
)
IDLE_COLUMNS = (
    "target",
    "sockets",
    "open",
    "RSS before MB",
    "RSS after MB",
    "KiB/socket",
    "deflate",
)


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(c), *(len(r[k]) for r in rows)) if rows else len(c) for k, c in enumerate(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        # First column left-aligned (names), numbers right-aligned.
        return "  ".join(
            cell.ljust(w) if k == 0 else cell.rjust(w)
            for k, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def load_rows(target: str, steps: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for s in steps:
        if "failed" in s:
            rows.append([target, num(int(s["offered"])), "failed", *["-"] * 10])
            continue
        errors = sum(s.get("errors", {}).values())
        rows.append(
            [
                target,
                num(int(s["offered"])),
                num(s["delivered"], 0),
                num(s["p50"], 2),
                num(s["p99"], 2),
                num(s["max"], 1),
                num(s.get("ack_p50"), 2),
                num(s.get("ack_p99"), 2),
                num(s["cpu_per_1k"], 3),
                num(s["rss_mb"], 1),
                num(int(s["lost"])),
                num(int(errors)),
                num(s["gen_lag_p99"], 2),
            ]
        )
    return rows


def idle_row(target: str, r: dict[str, Any]) -> list[str]:
    return [
        target,
        num(int(r["count"])),
        num(int(r["open"])),
        num(r["rss_before_mb"], 1),
        num(r["rss_after_mb"], 1),
        num(r["kib_per_socket"], 1),
        "yes" if r.get("deflate") else "no",
    ]


def step_notes(target: str, steps: Sequence[dict[str, Any]]) -> list[str]:
    """Anything beyond the numbers that a reader must not miss."""
    notes = []
    for s in steps:
        rate = f"{target} @ {int(s['offered']):,}/s"
        if "failed" in s:
            notes.append(f"{rate}: {s['failed']}")
            continue
        for code, n in sorted(s.get("errors", {}).items()):
            sample = s.get("error_samples", {}).get(code, "")
            notes.append(f"{rate}: {n} error frame(s) code={code!r}: {sample}")
        if s.get("lost"):
            notes.append(
                f"{rate}: {s['lost']} of {s['sent']} measured messages not delivered"
                " before the drain deadline (p99/max are then lower bounds)"
            )
        if s.get("ack_missing"):
            notes.append(f"{rate}: {s['ack_missing']} acks missing")
        for key, label in (
            ("dups", "duplicate deliveries"),
            ("stray", "stray/duplicate frames"),
            ("order_violations", "seq order violations"),
            ("closed_sockets", "sockets closed by the server"),
        ):
            if s.get(key):
                notes.append(f"{rate}: {s[key]} {label}")
        if s.get("close_infos"):
            notes.append(f"{rate}: close reasons: {'; '.join(s['close_infos'])}")
        other = {k: v for k, v in s.get("other", {}).items()}
        if other:
            notes.append(f"{rate}: other frames seen: {other}")
        cm = s.get("commit_metrics") or {}
        commits = cm.get("chatserver_commit_batch_size_count", 0)
        if commits:
            size = cm.get("chatserver_commit_batch_size_sum", 0) / commits
            n = cm.get("chatserver_commit_seconds_count", 0)
            ms = 1000 * cm.get("chatserver_commit_seconds_sum", 0) / n if n else 0
            notes.append(
                f"{rate}: server /metrics over the step: {int(commits)} commits, "
                f"{size:.0f} writes per commit, {ms:.1f} ms per commit on average"
            )
        if (s.get("other_cpu_pct") or 0) > 15:
            notes.append(
                f"{rate}: other processes on the machine used "
                f"{s['other_cpu_pct']:.0f}% of a core during the window (noisy)"
            )
        if (s.get("gen_lag_p99") or 0) > 5:
            notes.append(
                f"{rate}: the load generator fell behind its schedule (gen lag p99 "
                f"{s['gen_lag_p99']:.1f} ms): latencies include its own delay"
            )
    return notes

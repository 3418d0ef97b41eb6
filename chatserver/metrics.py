"""Prometheus metrics, one registry per app so that tests and several apps never share counts.

Counters on the per-message path are plain integers, read by a collector only
when ``/metrics`` is scraped: a prometheus_client ``Counter.inc`` takes a lock
and costs several microseconds, which at tens of thousands of messages a
second is a visible share of the CPU. Per-batch figures use real histograms.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sockets: dict[str, int] = {"visitor": 0, "agent": 0}
        self.frames: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.messages_received = 0
        self.messages_stored = 0
        # Times the broker lost events and every socket was brought up to date from the store.
        self.resyncs = 0
        # Sockets sent messages found in the store that their events never brought.
        self.caught_up = 0
        self.registry.register(_Counts(self))
        self.commit_batch = Histogram(
            "chatserver_commit_batch_size",
            "Writes sharing one transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "chatserver_commit_seconds",
            "Time from a batch's hand-off to its commit.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )

    def frame(self, frame_type: str) -> None:
        self.frames[frame_type] = self.frames.get(frame_type, 0) + 1

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def observe_batch(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Counts(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        sockets = GaugeMetricFamily("chatserver_sockets", "Open sockets.", labels=["role"])
        for role, count in sorted(m.sockets.items()):
            sockets.add_metric([role], count)
        yield sockets
        frames = CounterMetricFamily(
            "chatserver_frames_received", "Frames received, by type.", labels=["type"]
        )
        for kind, count in sorted(m.frames.items()):
            frames.add_metric([kind], count)
        yield frames
        errors = CounterMetricFamily(
            "chatserver_errors", "Errors answered, by code.", labels=["code"]
        )
        for code, count in sorted(m.errors.items()):
            errors.add_metric([code], count)
        yield errors
        yield CounterMetricFamily(
            "chatserver_messages_received",
            "Messages sent by clients.",
            value=m.messages_received,
        )
        yield CounterMetricFamily(
            "chatserver_messages_stored",
            "Messages newly stored (duplicates excluded).",
            value=m.messages_stored,
        )
        yield CounterMetricFamily(
            "chatserver_broker_resyncs",
            "Times the broker reconnected and sockets were caught up from the store.",
            value=m.resyncs,
        )
        yield CounterMetricFamily(
            "chatserver_caught_up",
            "Replays started because the store had messages a socket's events never brought.",
            value=m.caught_up,
        )

"""Prometheus metrics, one registry per app so that tests and several apps never share counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sockets = Gauge("chatserver_sockets", "Open sockets.", ["role"], registry=r)
        self.frames = Counter(
            "chatserver_frames_received", "Frames received, by type.", ["type"], registry=r
        )
        self.errors = Counter(
            "chatserver_errors", "Errors answered, by code.", ["code"], registry=r
        )
        self.messages_received = Counter(
            "chatserver_messages_received", "Messages sent by clients.", registry=r
        )
        self.messages_stored = Counter(
            "chatserver_messages_stored", "Messages newly stored (duplicates excluded).", registry=r
        )
        self.commit_batch = Histogram(
            "chatserver_commit_batch_size",
            "Writes sharing one transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "chatserver_commit_seconds",
            "Time from a batch's hand-off to its commit.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )

        self._frame_counters: dict[str, Counter] = {}

    def frame_received(self, frame_type: str) -> None:
        # labels() costs a lock and a lookup; per-frame paths use bound children.
        counter = self._frame_counters.get(frame_type)
        if counter is None:
            counter = self._frame_counters[frame_type] = self.frames.labels(frame_type)
        counter.inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""What the web layer shares between requests: built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatserver.broker.base import Broker
from chatserver.config import Settings
from chatserver.hub.hub import Hub
from chatserver.metrics import Metrics
from chatserver.privacy.service import Privacy
from chatserver.shared.base import LockOutStore
from chatserver.shared.memory import MemoryLockOut
from chatserver.store.base import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    broker: Broker
    hub: Hub
    metrics: Metrics
    privacy: Privacy
    secret_key: bytes = b""
    # Sign-in lock-out: the cluster's (shared state), or this process's.
    lockout: LockOutStore = field(default_factory=MemoryLockOut)

"""The application of one worker process when ``chatserver serve`` runs several.

uvicorn starts each worker in a fresh interpreter and builds the app from an
import string, so the parent hands over its settings (already merged from file,
environment and demo set-up) through one environment variable.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.types import ASGIApp

from chatserver import logs
from chatserver.config import Settings
from chatserver.web.app import create_app

ENV = "CHATSERVER__WORKER"


def hand_over(settings: Settings, *, demo: bool, extra_origins: tuple[str, ...]) -> None:
    """Put what the workers need where they will find it (the parent's environment)."""
    os.environ[ENV] = json.dumps(
        {"values": dict(settings.values), "demo": demo, "extra_origins": list(extra_origins)}
    )


def app() -> ASGIApp:
    """uvicorn's factory, called once in each worker (with the access log, if it is on:
    uvicorn applies the parent's ``logs.log_config`` in each worker)."""
    data: dict[str, Any] = json.loads(os.environ[ENV])
    settings = Settings.from_mapping(data["values"])
    built = create_app(
        settings, demo=bool(data["demo"]), extra_origins=tuple(data["extra_origins"])
    )
    return logs.with_access_log(built, settings)

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import Server, make_settings, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(make_settings(tmp_path)) as srv:
        yield srv


@pytest.fixture
async def token(server: Server) -> str:
    return await server.token("agent")

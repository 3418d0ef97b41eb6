"""Fixtures for the browser tests: one demo chat server and one static host site (another
origin, allowed by the chat server) per test session (per xdist worker), one Chromium per
test module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT,
    Agent,
    ChatServer,
    StaticSite,
    agent_online,
    artifacts_dir,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API keeps an asyncio loop running in
    # this thread while it lives, and the suite's asyncio tests may share this worker.
    if not Path(CHROMIUM).exists():
        message = (
            f"browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get update && apt-get install -y chromium)"
        )
        if os.environ.get("CI"):  # CI installs Chromium itself: there it is a failure
            pytest.fail(message)
        pytest.skip(message)
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """Host pages on their own port: a customer's site embedding the widget cross-origin."""
    static = StaticSite(tmp_path_factory.mktemp("host-site"))
    try:
        yield static
    finally:
        static.close()


@pytest.fixture(scope="session")
def chat(tmp_path_factory: pytest.TempPathFactory, site: StaticSite) -> Iterator[ChatServer]:
    """The demo chat server; the static site's origin may open the visitor socket."""
    server = ChatServer(
        data_dir=tmp_path_factory.mktemp("chatserver-data"),
        logs=tmp_path_factory.mktemp("chatserver-logs"),
        allowed_origins=site.origin,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Fresh browser contexts (a new visitor or agent each), closed after the test."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("locale", "en-US")
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT * 1000)
        made.append(context)
        return context

    expect.set_options(timeout=TIMEOUT * 1000)
    yield make
    for context in made:
        context.close()


@pytest.fixture
def agent(chat: ChatServer) -> Iterator[Agent]:
    """The demo agent online on the agent socket for the whole test."""
    with agent_online(chat) as online:
        yield online


@pytest.fixture(scope="session")
def artifacts() -> Path:
    return artifacts_dir()

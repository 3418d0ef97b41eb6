"""The Starlette app, built by one factory; every resource lives in the lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatserver import useragent
from chatserver.attachments.service import Attachments
from chatserver.broker import MemoryBroker, broker_from_url
from chatserver.broker.base import Broker
from chatserver.clock import Clock
from chatserver.config import Settings
from chatserver.errors import BadRequest, ChatError
from chatserver.hub.hub import Hub
from chatserver.mail import web as mail_web
from chatserver.mail.service import Mail
from chatserver.metrics import Metrics
from chatserver.opening_hours import OpeningHours
from chatserver.origins import AllowedOrigins, normalise_origin
from chatserver.privacy.service import Privacy
from chatserver.sessions import load_secret_key
from chatserver.shared import state_from_url
from chatserver.store import store_from_url
from chatserver.store.base import Store
from chatserver.web import (
    api,
    api_admin,
    api_agents,
    api_attachments,
    api_hours,
    api_invitations,
    api_privacy,
    api_stats,
    api_visitor,
    api_webhooks,
    assets,
    console,
    front,
    ops,
)
from chatserver.web.errors import on_chat_error, on_http_exception, on_unexpected
from chatserver.web.openapi import DOCUMENT
from chatserver.web.sockets import AgentEndpoint, VisitorEndpoint
from chatserver.web.state import AppState
from chatserver.webhooks.service import Webhooks


class _DenialIsNotAnError(logging.Filter):
    """Drop uvicorn's false alarm after a refused upgrade (uvicorn PR #3138, still open).

    websockets-sansio logs "ASGI callable returned without completing handshake"
    after every WebSocket denial response although the client got it. Our
    socket endpoints always either accept or deny, so the message never means
    a real fault here, and alerting on ERROR would otherwise fire per refusal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


_uvicorn_log = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _DenialIsNotAnError) for f in _uvicorn_log.filters):
    _uvicorn_log.addFilter(_DenialIsNotAnError())


class ChatApp(Starlette):
    """Starlette, with the two socket paths taken before its middleware and router.

    A socket lives for hours; each layer of the stack it passes through stays
    on it as a suspended coroutine frame and wraps every frame it sends. Going
    straight to the endpoint saves about a fifth of an idle socket's memory.
    Everything else (HTTP, lifespan, errors) is plain Starlette.
    """

    def __init__(self, *, sockets: dict[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sockets = sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = self.sockets.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def fixed_origins(configured: list[str], extra: tuple[str, ...]) -> frozenset[str]:
    """The settings' origins as browsers send them (``https://host[:port]``, no slash)."""
    result = set()
    for origin in (*configured, *extra):
        try:
            result.add(normalise_origin(origin))
        except BadRequest:
            result.add(origin)  # kept as written: it can only match itself
    return frozenset(result)


async def openapi(request: Request) -> Response:
    return JSONResponse(DOCUMENT)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    broker: Broker | None = None,
    clock: Clock | None = None,
    demo: bool = False,
    extra_origins: tuple[str, ...] = (),
) -> Starlette:
    """The whole server. Pass ``store``/``broker`` to use your own; else built from settings."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        the_store = store or store_from_url(
            settings.store_url,
            synchronous=settings.sqlite_synchronous,
            group_commit_max=settings.group_commit_max,
            observe_batch=metrics.observe_batch,
        )
        the_broker = broker or broker_from_url(settings.broker)
        await the_store.open()
        hub = Hub(
            the_store,
            the_broker,
            clock=clock,
            metrics=metrics,
            assign_capacity=settings.agent_capacity if settings.auto_assign else None,
            origins=AllowedOrigins(fixed_origins(settings.allowed_origins, extra_origins)),
            # Presence, the round-robin turn, lock-out and limits: in the broker's Redis
            # (for every node) with a redis:// broker, else in memory.
            shared=state_from_url(settings.broker, presence_ttl=settings.presence_ttl),
        )
        secret_key = load_secret_key(settings.secret_key, settings.data_dir)
        privacy = Privacy(
            the_store,
            settings,
            hub.clock,
            secret_key=secret_key,
            on_erased=hub.erased,
            on_event=hub.emit,
        )
        hub.privacy = privacy
        app.state.attachments = Attachments(
            the_store, privacy.attachment_storage, settings, hub.clock
        )
        hub.hours = OpeningHours(hub)
        await hub.start()
        await hub.hours.start()
        await asyncio.to_thread(useragent.warm_up)
        app.state.chat = AppState(
            settings=settings,
            store=the_store,
            broker=the_broker,
            hub=hub,
            metrics=metrics,
            privacy=privacy,
            secret_key=secret_key,
            lockout=hub.shared.lockout,
        )
        sweeper = asyncio.create_task(privacy.sweeper(), name="retention sweeper")
        # The in-memory broker never loses an event; any other one might.
        catch_up = (
            asyncio.create_task(hub.catch_up_forever(settings.catch_up_interval), name="catch-up")
            if settings.catch_up_interval and not isinstance(the_broker, MemoryBroker)
            else None
        )
        webhooks = await Webhooks.start_for(the_store, settings, hub)
        app.state.webhooks = webhooks
        mail = Mail.start(settings, the_store, hub)
        try:
            yield {}
        finally:
            if mail is not None:
                await mail.close()
            for task in (sweeper, catch_up):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if webhooks is not None:
                await webhooks.close()
            await hub.close()
            await the_store.close()

    routes: list[Any] = [
        Mount(
            "/api/v1",
            routes=[
                Route("/openapi.json", openapi, methods=["GET"]),
                *api.routes,
                *api_agents.routes,
                *api_invitations.routes,
                *api_visitor.routes,
                *api_stats.routes,
                *api_hours.routes,
                *api_admin.routes,
                *api_attachments.routes,
                *api_webhooks.routes,
                *api_privacy.routes,
            ],
        ),
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/readyz", ops.readyz, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        *console.routes,
        *api_invitations.console_routes,
        *mail_web.routes,
        *assets.routes(demo=demo),
        *front.routes(demo=demo),
    ]
    return ChatApp(
        sockets={"/ws/visitor": VisitorEndpoint(), "/ws/agent": AgentEndpoint()},
        routes=routes,
        lifespan=lifespan,
        # CORS for the attachment paths only: the widget uploads and downloads cross-origin.
        middleware=[Middleware(api_attachments.AttachmentCors)],
        exception_handlers={
            ChatError: on_chat_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )

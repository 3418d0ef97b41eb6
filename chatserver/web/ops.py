"""Health, readiness and metrics for operators and load balancers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatserver.errors import ChatError, Unavailable
from chatserver.web.errors import error_response
from chatserver.web.state import AppState


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: AppState = request.app.state.chat
    try:
        await state.store.ping()
        await state.broker.ping()
    except ChatError as exc:
        return error_response(Unavailable(exc.message))
    except Exception as exc:
        return error_response(Unavailable(f"not ready: {exc}"))
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.chat
    return Response(state.metrics.render(), media_type=state.metrics.content_type)

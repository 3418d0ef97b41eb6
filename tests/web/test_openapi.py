"""The OpenAPI document matches the routes the app really has."""

from __future__ import annotations

from starlette.routing import Mount, Route

from chatserver.config import Settings
from chatserver.web.app import create_app
from tests.helpers import Server


def api_routes() -> set[tuple[str, str]]:
    app = create_app(Settings.from_mapping())
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/api/v1":
            for sub in route.routes:
                assert isinstance(sub, Route)
                if sub.path == "/openapi.json":
                    continue
                for method in sub.methods or ():
                    if method != "HEAD":
                        found.add((sub.path, method.lower()))
    return found


def documented() -> set[tuple[str, str]]:
    from chatserver.web.openapi import DOCUMENT

    return {
        (path, method)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_route_is_documented_and_nothing_else() -> None:
    """Each /api/v1 route and method is in the OpenAPI document, and the document has no extra."""
    assert api_routes() == documented()


async def test_document_is_served_and_is_openapi_3_1(server: Server) -> None:
    """GET /api/v1/openapi.json serves an OpenAPI 3.1 document whose refs all resolve."""
    async with server.http() as http:
        doc = (await http.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    text = str(doc)
    import re

    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas

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


def assert_conforms(method: str, path: str, status: int, body: object) -> None:
    """``body`` matches the schema the OpenAPI document gives for this answer."""
    import jsonschema

    from chatserver.web.openapi import DOCUMENT

    answers = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in answers, f"{method.upper()} {path} answered {status}, not documented"
    schema = answers[str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(body)


async def test_answers_match_the_documented_schemas(server: Server, token: str) -> None:
    """Every operation's real answers, good and bad, match the document's schemas."""
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id="v", body="hi")
        conv = (await visitor.until("ack"))["conversation_id"]
    calls: list[tuple[str, str, str, dict[str, object] | None]] = [
        ("get", "/conversations", "/conversations", None),
        ("get", "/conversations?status=nope", "/conversations", None),
        ("get", f"/conversations/{conv}", "/conversations/{id}", None),
        ("get", "/conversations/none", "/conversations/{id}", None),
        (
            "patch",
            f"/conversations/{conv}",
            "/conversations/{id}",
            {"status": "pending", "tags": ["a"]},
        ),
        ("patch", f"/conversations/{conv}", "/conversations/{id}", {"status": 1}),
        (
            "post",
            f"/conversations/{conv}/messages",
            "/conversations/{id}/messages",
            {"client_msg_id": "r", "body": "ok"},
        ),
        (
            "post",
            f"/conversations/{conv}/messages",
            "/conversations/{id}/messages",
            {"client_msg_id": "r", "body": "ok"},
        ),
        (
            "post",
            f"/conversations/{conv}/messages",
            "/conversations/{id}/messages",
            {"client_msg_id": "n", "body": "x" * 10_001},
        ),
        ("get", f"/conversations/{conv}/messages?limit=1", "/conversations/{id}/messages", None),
        (
            "get",
            f"/conversations/{conv}/messages?after_seq=x",
            "/conversations/{id}/messages",
            None,
        ),
    ]
    statuses = set()
    async with server.http(token) as http:
        for method, url, path, body in calls:
            r = await http.request(method.upper(), "/api/v1" + url, json=body)
            statuses.add(r.status_code)
            assert_conforms(method, path, r.status_code, r.json())
    async with server.http() as anonymous:
        r = await anonymous.get("/api/v1/conversations")
        statuses.add(r.status_code)
        assert_conforms("get", "/conversations", r.status_code, r.json())
    assert statuses >= {200, 201, 400, 401, 404, 413}

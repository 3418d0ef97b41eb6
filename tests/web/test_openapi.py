"""The OpenAPI document matches the routes the app really has."""

from __future__ import annotations

import httpx
from starlette.routing import Mount, Route

from chatserver.config import Settings
from chatserver.web.app import create_app
from chatserver.web.openapi import DOCUMENT
from tests.helpers import Server, identity_token


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


def test_every_schema_is_valid_json_schema() -> None:
    """Each schema in the document, and each parameter's, is valid JSON Schema 2020-12."""
    import jsonschema

    schemas = list(DOCUMENT["components"]["schemas"].values())
    for item in DOCUMENT["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                schemas += [p["schema"] for p in operation.get("parameters", [])]
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)


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


def privacy_operations() -> set[tuple[str, str]]:
    from chatserver.web.openapi_privacy import PATHS

    return {
        (method, path)
        for path, item in PATHS.items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


async def test_privacy_answers_match_the_documented_schemas(server: Server, token: str) -> None:
    """Every compliance operation's real answers, good and bad, match the document's schemas."""
    compliance = await server.token("compliance", name="Carla Compliance")
    admin = await server.token("admin", name="Ada Admin")
    async with server.http(admin) as http:
        r = await http.post("/api/v1/policies", json={"version": "v1", "url": "https://p.example"})
        assert r.status_code == 201
    verified = identity_token("platform-1", name="Vera Verified", email="vera@example.com")
    hello = {"identity": verified, "consent": {"version": "v1"}, "page": {"url": "https://s/"}}
    async with server.visitor(hello=hello) as (visitor, welcome):
        subject = welcome["account"]["id"]
        await visitor.send(type="send", client_msg_id="v", body="hi")
        conv = (await visitor.until("ack"))["conversation_id"]
    async with server.http(token) as http:
        r = await http.post(
            f"/api/v1/conversations/{conv}/messages", json={"client_msg_id": "a", "body": "hello"}
        )
        assert r.status_code == 201
    async with server.visitor(hello={"consent": {"version": "v1"}}) as (anonymous, welcome):
        stranger = welcome["visitor_id"]
        await anonymous.send(type="send", client_msg_id="s", body="anyone?")
        await anonymous.until("ack")

    exercised: set[tuple[str, str]] = set()
    statuses: set[int] = set()

    async def call(
        http: httpx.AsyncClient,
        method: str,
        url: str,
        path: str,
        body: object = None,
        *,
        content: bytes | None = None,
    ) -> httpx.Response:
        if content is not None:
            headers = {"content-type": "application/json"}
            r = await http.request(
                method.upper(), "/api/v1" + url, content=content, headers=headers
            )
        else:
            r = await http.request(method.upper(), "/api/v1" + url, json=body)
        exercised.add((method, path))
        statuses.add(r.status_code)
        if r.headers["content-type"] == "application/zip":
            answers = DOCUMENT["paths"][path][method]["responses"]
            assert r.status_code == 200 and "application/zip" in answers["200"]["content"]
            assert r.content.startswith(b"PK")
        else:
            assert_conforms(method, path, r.status_code, r.json())
        return r

    export = "/subjects/{id}/export"
    rectifications = "/subjects/{id}/rectifications"
    async with server.http(compliance) as http:
        found = await call(http, "get", "/subjects?account_id=platform-1", "/subjects")
        assert [s["id"] for s in found.json()["items"]] == [subject]
        found = await call(http, "get", "/subjects?email=VERA@example.com", "/subjects")
        assert [s["kind"] for s in found.json()["items"]] == ["account"]
        await call(http, "get", "/subjects?pid=01017012345", "/subjects")
        await call(http, "get", "/subjects", "/subjects")
        await call(http, "get", "/subjects?email=" + "x" * 321, "/subjects")

        document = (await call(http, "get", f"/subjects/{subject}/export", export)).json()
        assert [m["body"] for m in document["conversations"][0]["messages"]] == ["hi", "hello"]
        assert document["consents"][0]["policy_version"] == "v1"
        await call(http, "get", f"/subjects/{stranger}/export?format=json", export)
        zipped = await call(http, "get", f"/subjects/{subject}/export?format=zip&locale=nb", export)
        assert zipped.headers["content-type"] == "application/zip"
        await call(http, "get", f"/subjects/{subject}/export?format=pdf", export)
        await call(http, "get", f"/subjects/{subject}/export?format=zip&locale=de", export)
        await call(http, "get", "/subjects/nobody/export", export)

        url = f"/subjects/{subject}/rectifications"
        pending = await call(http, "post", url, rectifications, {"field": "name", "value": "Vera"})
        assert pending.json()["status"] == "pending"
        second = await call(http, "post", url, rectifications, {"field": "email", "value": "v@x"})
        applied = await call(http, "post", url, rectifications, {"field": "phone", "value": "12"})
        assert applied.json()["status"] == "applied"
        await call(http, "post", url, rectifications, {"field": "phone", "value": None})
        await call(http, "post", url, rectifications, {"field": "shoe_size", "value": "42"})
        await call(http, "post", url, rectifications, {"field": "name"})
        await call(http, "post", url, rectifications, content=b"x" * 1_000_001)
        await call(
            http,
            "post",
            f"/subjects/{stranger}/rectifications",
            rectifications,
            {"field": "name", "value": "Who"},
        )
        await call(
            http,
            "post",
            "/subjects/nobody/rectifications",
            rectifications,
            {"field": "name", "value": "x"},
        )
        listed = await call(http, "get", url, rectifications)
        assert len(listed.json()["items"]) == 4
        await call(http, "get", f"/subjects/{stranger}/rectifications", rectifications)
        await call(http, "get", "/subjects/nobody/rectifications", rectifications)

        approve, reject = "/rectifications/{id}/approve", "/rectifications/{id}/reject"
        mine = pending.json()["id"]
        # Four eyes: who asked cannot decide.
        await call(http, "post", f"/rectifications/{mine}/approve", approve)
        await call(http, "post", f"/rectifications/{mine}/reject", reject)

        hold = "/subjects/{id}/legal-hold"
        await call(http, "put", f"/subjects/{subject}/legal-hold", hold, {"hold": True})
        await call(http, "put", f"/subjects/{stranger}/legal-hold", hold, {"hold": True})
        await call(http, "put", f"/subjects/{subject}/legal-hold", hold, {"hold": "yes"})
        await call(http, "put", f"/subjects/{subject}/legal-hold", hold, {})
        await call(http, "put", "/subjects/nobody/legal-hold", hold, {"hold": True})
        await call(http, "put", hold.replace("{id}", subject), hold, content=b"x" * 1_000_001)
        held = "/conversations/{id}/legal-hold"
        await call(http, "put", f"/conversations/{conv}/legal-hold", held, {"hold": True})
        await call(http, "put", f"/conversations/{conv}/legal-hold", held, {"hold": False})
        await call(http, "put", f"/conversations/{conv}/legal-hold", held, {"hold": 1})
        await call(http, "put", "/conversations/none/legal-hold", held, {"hold": True})

        runs = "/retention/runs"
        report = await call(http, "post", runs, runs, {})
        assert report.json()["dry_run"] is True
        await call(http, "post", runs, runs, {"dry_run": False})
        await call(http, "post", runs, runs, {"dry_run": "no"})
        await call(http, "post", runs, runs, content=b"x" * 1_000_001)
        assert len((await call(http, "get", runs, runs)).json()["items"]) == 2

    async with server.http(admin) as http:
        r = await call(http, "post", f"/rectifications/{mine}/approve", approve)
        assert r.json()["status"] == "applied"
        await call(http, "post", f"/rectifications/{mine}/approve", approve)
        await call(http, "post", f"/rectifications/{mine}/reject", reject)
        r = await call(http, "post", f"/rectifications/{second.json()['id']}/reject", reject)
        assert r.json()["status"] == "rejected"
        await call(http, "post", "/rectifications/none/approve", approve)
        await call(http, "post", "/rectifications/none/reject", reject)
        # Admins decide rectifications, and nothing else here.
        await call(http, "get", "/subjects?email=vera@example.com", "/subjects")

    me = "/me/export"
    async with server.http() as http:
        http.headers["Authorization"] = f"Identity {verified}"
        document = (await call(http, "get", me, me)).json()
        assert document["subject"]["id"] == subject
        assert document["subject"]["name"] == "Vera"
        assert document["rectifications"][0]["status"] == "applied"
        zipped = await call(http, "get", me + "?format=zip", me)
        assert zipped.headers["content-type"] == "application/zip"
        await call(http, "get", me + "?locale=xx&format=zip", me)
        http.headers["Authorization"] = f"Identity {identity_token('platform-unknown')}"
        await call(http, "get", me, me)
        http.headers["Authorization"] = "Identity not-a-token"
        await call(http, "get", me, me)
        http.headers["Authorization"] = f"Bearer {compliance}"
        await call(http, "get", me, me)
        del http.headers["Authorization"]
        await call(http, "get", me, me)
        await call(http, "get", "/audit", "/audit")
        await call(http, "post", f"/rectifications/{mine}/approve", approve)

    async with server.http(compliance) as http:
        erasure = "/subjects/{id}/erasure"
        # A legal hold keeps data from retention; release it before erasing.
        await call(http, "put", f"/subjects/{subject}/legal-hold", hold, {"hold": False})
        erased = await call(http, "post", f"/subjects/{subject}/erasure", erasure)
        assert erased.json()["already_erased"] is False
        again = await call(http, "post", f"/subjects/{subject}/erasure", erasure)
        assert again.json()["already_erased"] is True
        await call(http, "put", f"/subjects/{stranger}/legal-hold", hold, {"hold": False})
        await call(http, "post", f"/subjects/{stranger}/erasure", erasure)
        await call(http, "post", "/subjects/nobody/erasure", erasure)

        audit = "/audit"
        log = (await call(http, "get", audit, audit)).json()
        assert log["next_cursor"] is None
        actions = {entry["action"] for entry in log["items"]}
        assert {"policy.publish", "subject.erasure", "retention.run"} <= actions
        first = await call(http, "get", "/audit?limit=2", audit)
        cursor = first.json()["next_cursor"]
        assert cursor is not None
        await call(http, "get", f"/audit?cursor={cursor}&limit=1000", audit)
        await call(http, "get", f"/audit?subject_id={subject}&action=subject.export", audit)
        await call(http, "get", "/audit?cursor=abc", audit)
        await call(http, "get", "/audit?limit=0", audit)
        verified_chain = await call(http, "get", "/audit/verify", "/audit/verify")
        assert verified_chain.json()["ok"] is True

    async with server.http(token) as http:
        for method, path in sorted(privacy_operations() - {("get", me)}):
            url = path.replace("{id}", "x")
            body = {"hold": True} if method == "put" else {}
            r = await call(http, method, url, path, body)
            assert r.status_code == 403, (method, path)
    async with server.http() as http:
        for method, path in sorted(privacy_operations()):
            r = await call(http, method, path.replace("{id}", "x"), path, {})
            assert r.status_code == 401, (method, path)

    assert exercised == privacy_operations()
    assert statuses >= {200, 201, 400, 401, 403, 404, 409, 413}

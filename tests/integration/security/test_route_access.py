"""Every route, asked without a key and with a bogus, a revoked, an expired, a read-only and a
foreign-collection key: 401 (with `WWW-Authenticate: Bearer`) for the first four, 403 where
the scope or the collection is missing, and never any data. The table below must name every
operation that takes a key (a new route fails `test_the_table_covers_every_keyed_route`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.conftest import start_server, stop_server, wait_until
from tests.integration.security.helpers import ADMIN_KEY, Keyed

ETNA = "Mount Etna is an active stratovolcano on the east coast of Sicily."
USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Where is Etna?"}]}


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the OpenAPI path, formatted with `ids`
    needs: str  # read, write or admin
    json: Any = None
    collection: bool = True  # names the collection "default" (a foreign-collection key: 403)
    batch: bool = False  # a batch of "default": a foreign-collection key gets 404

    def send(self, c: httpx.Client, ids: dict[str, str]) -> httpx.Response:
        path = self.path.format(**ids)
        return c.request(self.method, path, json=self.json, timeout=30)


CALLS = [
    Call("POST", "/v1/documents", "write", {"text": "Quartz is hard."}),
    Call("POST", "/v1/documents/batch", "write", {"documents": [{"text": "Mica is soft."}]}),
    Call("POST", "/v1/index", "write", {"content": "Gneiss is banded."}),
    Call("GET", "/v1/documents", "read"),
    Call("GET", "/v1/documents/{document_id}", "read"),
    Call("GET", "/v1/documents/{document_id}/content", "read"),
    Call("GET", "/v1/documents/{document_id}/file", "read"),
    Call("GET", "/v1/batches/{batch_id}", "read", batch=True),
    Call("GET", "/v1/batches/{batch_id}/events", "read", batch=True),
    Call("POST", "/v1/batches/{batch_id}/cancel", "write", batch=True),
    Call("DELETE", "/v1/documents/{document_id}", "write"),
    Call(
        "POST",
        "/v1/documents/delete",
        "write",
        {"filters": {"type": "eq", "key": "topic", "value": "none"}},
    ),
    Call("DELETE", "/v1/collections/{collection}", "write"),
    Call("GET", "/v1/jobs/{job_id}", "read", collection=False),
    Call("GET", "/v1/jobs/{job_id}/events", "read", collection=False),
    Call("POST", "/v1/search", "read", {"query": "volcano"}),
    Call("POST", "/v1/query", "read", {"question": "Where is Etna?"}),
    Call("POST", "/v1/stream", "read", {"question": "Where is Etna?"}),
    Call(
        "POST",
        "/v1/evaluations",
        "write",
        {"cases": [{"question": "Where is Etna?", "expected_document_ids": ["etna"]}]},
    ),
    Call("GET", "/v1/evaluations/{evaluation_id}", "write", collection=False),
    Call("POST", "/api/chat", "read", {"id": "chat-1", "messages": [USER]}),
    Call("GET", "/api/chat/{chat_id}/stream", "read", collection=False),
    Call("GET", "/v1/models", "read", collection=False),
    Call("GET", "/v1/models/{model_id}", "read"),
    Call(
        "POST",
        "/v1/chat/completions",
        "read",
        {"model": "citeline", "messages": [{"role": "user", "content": "Where is Etna?"}]},
    ),
    Call(
        "POST",
        "/v1/keys",
        "admin",
        {"name": "x", "tenant": "acme", "scopes": ["read"]},
        collection=False,
    ),
    Call("GET", "/v1/keys", "admin", collection=False),
    Call("DELETE", "/v1/keys/{key_id}", "admin", collection=False),
    Call("GET", "/v1/usage", "read", collection=False),
]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Keyed, dict[str, dict[str, Any]], dict[str, str]]]:
    """One server for the module (no test changes its data): keys of every kind, and a
    document and a job of tenant acme."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("access"), admin_api_key=ADMIN_KEY)
    live = start_server(settings)
    try:
        yield _world(Keyed(live))
    finally:
        stop_server(live)


def _world(keyed: Keyed) -> tuple[Keyed, dict[str, dict[str, Any]], dict[str, str]]:
    owner = keyed.mint(tenant="acme", scopes=("read", "write"))
    doc = keyed.index(owner["key"], id="etna", text=ETNA)
    with keyed.client(owner["key"]) as c:
        batch = c.post("/v1/documents/batch", json={"documents": [{"id": "mica", "text": "Mica."}]})
        assert batch.status_code == 202, batch.text
    revoked = keyed.mint(tenant="acme")
    with keyed.admin() as c:
        assert c.delete(f"/v1/keys/{revoked['id']}").status_code == 200
    keys = {
        "owner": owner,
        "revoked": revoked,
        "expired": keyed.mint(tenant="acme", expires_in_s=0.5),
        "read_only": keyed.mint(tenant="acme", scopes=("read",)),
        "foreign_collection": keyed.mint(
            tenant="acme", scopes=("read", "write"), collections=["elsewhere"]
        ),
        "victim_key": keyed.mint(tenant="acme", scopes=("read",), name="target"),
    }
    ids = {
        "document_id": "etna",
        "job_id": doc["job_id"],
        "collection": "default",
        "chat_id": "chat-1",
        "model_id": "citeline",
        "key_id": keys["victim_key"]["id"],
        "batch_id": batch.json()["batch_id"],
        "evaluation_id": "eval_" + "0" * 24,
    }
    with keyed.client(keys["expired"]["key"]) as c:  # poll until the key's time has passed
        wait_until(lambda: c.get("/v1/usage").status_code == 401, timeout=10, interval=0.05)
    return keyed, keys, ids


def _refused(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, (r.request.method, r.request.url.path, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["request_id"] == r.headers["x-request-id"]
    assert "Etna" not in r.text and "etna" not in r.text.replace("/etna", "")
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")


BOGUS = ["garbage", "cl_0123456789abcdef_" + "0" * 64, "Bearer", "cl_" + "f" * 16]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_without_a_valid_key_every_route_is_401(world: Any, call: Call) -> None:
    keyed, keys, ids = world
    with keyed.client() as c:
        _refused(call.send(c, ids), 401)
    for key in [*BOGUS, keys["revoked"]["key"], keys["expired"]["key"]]:
        with keyed.client(key) as c:
            _refused(call.send(c, ids), 401)
    with keyed.live.client(headers={"X-API-Key": "nonsense"}) as c:
        _refused(call.send(c, ids), 401)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_scope_and_collection_are_checked(world: Any, call: Call) -> None:
    keyed, keys, ids = world
    with keyed.client(keys["read_only"]["key"]) as c:
        r = call.send(c, ids)
    if call.needs == "read":
        assert r.status_code < 400 or r.status_code == 404, r.text
    else:
        _refused(r, 403)
        assert repr(call.needs) in r.json()["detail"]
    if call.collection and not call.batch:
        with keyed.client(keys["foreign_collection"]["key"]) as c:
            r = call.send(c, ids)
        _refused(r, 403)
        assert "collection 'default'" in r.json()["detail"]
    if call.batch:  # a batch of another collection is as unknown as one that never existed
        with keyed.client(keys["foreign_collection"]["key"]) as c:
            _refused(call.send(c, ids), 404)


def test_a_key_limited_to_other_collections_sees_no_job_of_this_one(world: Any) -> None:
    keyed, keys, ids = world
    with keyed.client(keys["foreign_collection"]["key"]) as c:
        for path in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events"):
            _refused(c.get(path.format(**ids)), 404)
        assert c.get("/v1/models").json()["data"] == []  # no preset over "default"


def test_the_table_covers_every_keyed_route(world: Any) -> None:
    keyed, _, _ = world
    with keyed.client() as c:
        spec = c.get("/openapi.json").json()
    keyed_ops = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if op.get("security")
    }
    assert {(c.method, c.path) for c in CALLS} == keyed_ops
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path in keyed_ops:
        responses = spec["paths"][path][method.lower()]["responses"]
        assert {"401", "403", "429"} <= set(responses)


OPEN_PATHS: list[tuple[str, Callable[[httpx.Response], bool]]] = [
    ("/healthz", lambda r: r.status_code == 200),
    ("/readyz", lambda r: r.status_code == 200),
    ("/", lambda r: r.status_code == 200 and "api-key" in r.text),
    ("/static/chat.js", lambda r: r.status_code == 200),
    ("/docs", lambda r: r.status_code == 200 and "swagger-ui" in r.text),
    ("/openapi.json", lambda r: r.status_code == 200),
]


@pytest.mark.parametrize(("path", "ok"), OPEN_PATHS, ids=[p for p, _ in OPEN_PATHS])
def test_probes_and_static_shells_need_no_key(keyed: Keyed, path: str, ok: Any) -> None:
    with keyed.client() as c:
        assert ok(c.get(path))

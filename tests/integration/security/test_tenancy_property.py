"""No operation returns, changes or reveals another tenant's data: a property test over random
tenants, collections and operations, through the HTTP API with one key per tenant, on both
registries (SQLite; Redis with the arq queue) and both stores (Qdrant Edge; qdrant-client's
local mode through the same store contract).

Document ids and collection names are shared between the two tenants on purpose, so that every
write of one tenant has a namesake in the other to damage. After each operation, each tenant's
view (its document list per collection, searches, its jobs) must equal a model of only its
own operations, and nothing the other tenant wrote may appear in any answer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config import Settings
from tests.conftest import start_server, stop_server, wait_until
from tests.integration.security.helpers import ADMIN_KEY, Keyed
from tests.redis_server import run_redis

TENANTS, COLLECTIONS, DOCS = 2, ("default", "shared"), ("d0", "d1", "d2")
COMBOS = ["sqlite-edge", "sqlite-qdrant", "redis-edge", "redis-qdrant"]


@pytest.fixture(scope="module", params=COMBOS)
def keyed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keyed]:
    registry, store = request.param.split("-")
    path = tmp_path_factory.mktemp(request.param)
    extra: dict[str, Any] = {"qdrant_url": ":memory:"} if store == "qdrant" else {}
    redis_servers = run_redis(path) if registry == "redis" else None
    if redis_servers is not None:
        extra |= {"queue": "arq", "redis_url": next(redis_servers).url}
    live = start_server(Settings(data_dir=path / "data", admin_api_key=ADMIN_KEY, **extra))
    try:
        yield Keyed(live)
    finally:
        stop_server(live)
        if redis_servers is not None:
            redis_servers.close()


def text_of(tenant: int, collection: str, doc: str, serial: int) -> str:
    """Every text names its owner with a word no other tenant's text has, plus shared words."""
    return f"Common volcano report {doc} about basalt, owner{tenant}word, serial{serial}x."


@dataclass
class World:
    keyed: Keyed
    keys: list[str]
    # the model: tenant -> collection -> doc -> (text, year)
    docs: list[dict[str, dict[str, tuple[str, int]]]] = field(default_factory=list)
    jobs: list[list[str]] = field(default_factory=list)
    serial: itertools.count[int] = field(default_factory=itertools.count)

    def client(self, tenant: int) -> httpx.Client:
        return self.keyed.client(self.keys[tenant])


def _new_world(keyed: Keyed) -> World:
    run = uuid.uuid4().hex[:8]  # fresh tenants per example: examples do not see each other
    keys = [keyed.mint(tenant=f"t{t}-{run}")["key"] for t in range(TENANTS)]
    return World(keyed, keys, [{} for _ in keys], [[] for _ in keys])


OPS = st.one_of(
    st.tuples(
        st.just("index"),
        st.integers(0, 1),
        st.sampled_from(COLLECTIONS),
        st.sampled_from(DOCS),
        st.integers(2020, 2023),
    ),
    st.tuples(
        st.just("delete"), st.integers(0, 1), st.sampled_from(COLLECTIONS), st.sampled_from(DOCS)
    ),
    st.tuples(st.just("delete_collection"), st.integers(0, 1), st.sampled_from(COLLECTIONS)),
    st.tuples(
        st.just("delete_filter"),
        st.integers(0, 1),
        st.sampled_from(COLLECTIONS),
        st.integers(2020, 2023),
    ),
    st.tuples(st.just("query"), st.integers(0, 1), st.sampled_from(COLLECTIONS)),
)


def apply(w: World, op: tuple[Any, ...]) -> None:
    kind, tenant, collection = op[0], op[1], op[2]
    mine = w.docs[tenant].setdefault(collection, {})
    with w.client(tenant) as c:
        if kind == "index":
            doc, year = op[3], op[4]
            text = text_of(tenant, collection, doc, next(w.serial))
            body = {"id": doc, "text": text, "collection": collection, "metadata": {"year": year}}
            r = c.post("/v1/documents", json=body)
            assert r.status_code == 202, r.text
            job = r.json()["job_id"]
            done = wait_until(lambda: c.get(f"/v1/jobs/{job}").json()["status"] == "completed")
            assert done
            mine[doc] = (text, year)
            w.jobs[tenant].append(job)
        elif kind == "delete":
            r = c.delete(f"/v1/documents/{op[3]}", params={"collection": collection})
            assert r.status_code == (200 if op[3] in mine else 404), r.text
            mine.pop(op[3], None)
        elif kind == "delete_collection":
            r = c.delete(f"/v1/collections/{collection}")
            assert r.status_code == 200 and r.json()["documents"] == len(mine), r.text
            mine.clear()
        elif kind == "delete_filter":
            flt = {"type": "lte", "key": "year", "value": op[3]}
            r = c.post("/v1/documents/delete", json={"collection": collection, "filters": flt})
            gone = sorted(d for d, (_, year) in mine.items() if year <= op[3])
            assert r.status_code == 200 and r.json()["document_ids"] == gone, r.text
            for d in gone:
                del mine[d]
        else:  # query: the answer may quote only the tenant's own documents
            r = c.post(
                "/v1/query", json={"question": "volcano report basalt", "collection": collection}
            )
            assert r.status_code == 200, r.text
            other = 1 - tenant
            assert f"owner{other}word" not in r.text
            assert {s["document_id"] for s in r.json()["sources"]} <= set(mine)


def check_views(w: World) -> None:
    """Each tenant sees exactly its own model: documents, texts, searches, jobs."""
    for tenant in range(TENANTS):
        other = 1 - tenant
        with w.client(tenant) as c:
            for collection in COLLECTIONS:
                expected = w.docs[tenant].get(collection, {})
                listed = c.get("/v1/documents", params={"collection": collection}).json()
                assert sorted(d["document_id"] for d in listed["documents"]) == sorted(expected)
                hits = c.post(
                    "/v1/search",
                    json={
                        "query": "common volcano report basalt",
                        "collection": collection,
                        "max_results": 20,
                    },
                ).json()["results"]
                assert {h["text"] for h in hits} == {t for t, _ in expected.values()}
                assert not any(f"owner{other}word" in h["text"] for h in hits)
                for doc in DOCS:
                    r = c.get(f"/v1/documents/{doc}", params={"collection": collection})
                    assert r.status_code == (200 if doc in expected else 404)
            for job in w.jobs[other]:  # the other tenant's jobs do not exist for this one
                assert c.get(f"/v1/jobs/{job}").status_code == 404
            models = {m["id"] for m in c.get("/v1/models").json()["data"]}
            shared = w.docs[tenant].get("shared")
            assert ("citeline/shared" in models) == bool(shared)
            usage = c.get("/v1/usage").json()
            assert usage["documents"] == sum(len(d) for d in w.docs[tenant].values())


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(ops=st.lists(OPS, min_size=1, max_size=7))
def test_no_operation_reaches_another_tenant(keyed: Keyed, ops: list[tuple[Any, ...]]) -> None:
    world = _new_world(keyed)
    for op in ops:
        apply(world, op)
        check_views(world)


def test_a_fixed_collision_scenario(keyed: Keyed) -> None:
    """The namesakes case spelled out: both tenants write `d0` in `shared`, one deletes it,
    the other's stays; one drops the collection, the other's stays."""
    world = _new_world(keyed)
    for op in [
        ("index", 0, "shared", "d0", 2021),
        ("index", 1, "shared", "d0", 2021),
        ("delete", 0, "shared", "d0"),
        ("index", 0, "shared", "d1", 2020),
        ("delete_filter", 1, "shared", 2023),
        ("index", 1, "shared", "d2", 2022),
        ("delete_collection", 0, "shared"),
        ("query", 1, "shared"),
    ]:
        apply(world, op)
        check_views(world)
    assert list(world.docs[1]["shared"]) == ["d2"]
    path: Path = keyed.live.settings.data_dir
    assert path.exists()

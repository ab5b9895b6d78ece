"""After a document is deleted and the service compacts, nothing it keeps holds the text: the
data dir is grepped for a unique string of the document (every version of it) and finds it
nowhere, in the registry, the store or their logs; Redis holds none of it either. Deleting a
collection and deleting by filter stay inside the caller's tenant."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from service.routes import documents as document_routes
from service.store import edge
from service.store.base import ChunkPoint, Scope, SparseVector
from tests.conftest import wait_until
from tests.integration.security.helpers import Keyed
from tests.redis_server import RedisServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]

UNIQUE = "Zqxvörtl-8c41e2"  # in no other document, not in any id or name


def _hits(root: Path, needle: str) -> list[str]:
    """Files under `root` holding `needle` (UTF-8), read as raw bytes."""
    raw = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


def _redis_hits(client: redis.Redis, needle: str) -> list[str]:
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            values = list(client.hgetall(key).values())
        elif kind == "string":
            values = [client.get(key)]
        elif kind == "stream":
            values = [str(e) for e in client.xrange(key)]
        else:
            values = [str(key)]
        if any(needle in str(v) for v in values):
            found.append(key)
    return found


def _erase_and_grep(live: Any) -> None:
    with live.client() as c:
        live.index(id="keep", text="Basalt is a volcanic rock that cools fast.")
        live.index(id="gone", text=f"The secret recipe {UNIQUE} uses saffron.")
        # A second version: the first one's text must go too.
        live.index(id="gone", text=f"The secret recipe {UNIQUE} uses saffron and thyme.")
        assert _hits(live.settings.data_dir, UNIQUE), "the test must see the text before"
        assert c.delete("/v1/documents/gone").status_code == 200
        live.run_on_loop(live.runtime.compact())
        assert _hits(live.settings.data_dir, UNIQUE) == []
        assert c.get("/v1/documents/gone").status_code == 404
        hits = c.post("/v1/search", json={"query": "volcanic rock"}).json()["results"]
        assert [h["document_id"] for h in hits] == ["keep"]  # the rest survived compaction
        assert c.post("/v1/search", json={"query": "saffron recipe"}).json()["results"] == []


def test_nothing_of_a_deleted_document_stays_in_the_data_dir(server: Any) -> None:
    _erase_and_grep(server)
    server.index(id="after", text="New documents index after compaction.")


def test_and_nothing_in_redis_either(make_server: Any, redis_server: RedisServer) -> None:
    live = make_server(queue="arq", redis_url=redis_server.url)
    _erase_and_grep(live)
    assert _redis_hits(redis_server.client(), UNIQUE) == []


def test_job_texts_are_dropped_when_jobs_end(server: Any) -> None:
    server.index(id="doc", text=f"Hidden {UNIQUE} words.")
    rows = server.runtime.registry.db.execute("SELECT status, text FROM jobs").fetchall()
    assert rows and all(status == "completed" and text == "" for status, text in rows)


def test_delete_a_collection_within_the_tenant(server: Any) -> None:
    server.index(id="a1", text="Alpha rocks are granite.", collection="alpha")
    server.index(id="a2", text="Alpha rivers are wide.", collection="alpha")
    server.index(id="b1", text="Beta rocks are granite.", collection="beta")
    with server.client() as c:
        r = c.delete("/v1/collections/alpha")
        assert r.status_code == 200 and r.json() == {"collection": "alpha", "documents": 2}
        assert c.get("/v1/documents", params={"collection": "alpha"}).json()["documents"] == []
        found = c.post("/v1/search", json={"query": "granite", "collection": "beta"}).json()
        assert [h["document_id"] for h in found["results"]] == ["b1"]
        alpha = c.post("/v1/search", json={"query": "granite", "collection": "alpha"}).json()
        assert alpha["results"] == []
        assert server.runtime.store.chunk_ids(Scope("default", "alpha")) == []
        assert c.delete("/v1/collections/alpha").json()["documents"] == 0
    server.index(id="a3", text="Alpha again.", collection="alpha")  # the name can be reused


def test_delete_by_filter(server: Any) -> None:
    for i in range(6):
        server.index(id=f"d{i}", text=f"Report {i} on lava.", metadata={"year": 2020 + i})
    with server.client() as c:
        r = c.post(
            "/v1/documents/delete",
            json={"filters": {"type": "lt", "key": "year", "value": 2023}},
        )
        assert r.status_code == 200 and r.json() == {
            "document_ids": ["d0", "d1", "d2"],
            "more": False,
        }
        left = [d["document_id"] for d in c.get("/v1/documents").json()["documents"]]
        assert left == ["d3", "d4", "d5"]
        bad = c.post("/v1/documents/delete", json={"filters": {"type": "gt", "key": "y"}})
        assert bad.status_code == 422


def _stale_chunk(document_id: str, version: str, year: int) -> ChunkPoint:
    """A chunk of a superseded version, as the store holds one until its clean-up."""
    text = f"Report on lava, version {version}."
    return ChunkPoint(
        document_id=document_id, version=version, chunk_index=0, text=text, start=0,
        end=len(text), sparse=SparseVector([1], [1.0]), metadata={"year": year},
    )  # fmt: skip


def test_delete_by_filter_pages_through_served_versions_of_the_callers_scope_only(
    keyed: Keyed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two documents a call, the store's scan three chunks a page: the calls go on while
    `more`, and between them delete exactly the documents whose served version matches."""
    monkeypatch.setattr(document_routes, "DELETE_MATCHING_LIMIT", 2)
    monkeypatch.setattr(edge, "_SCROLL_PAGE", 3)
    acme, globex = keyed.mint(tenant="acme")["key"], keyed.mint(tenant="globex")["key"]
    old = {"year": 2020}
    for i in range(7):
        keyed.index(acme, id=f"old{i}", text=f"Report {i} on lava flows.", metadata=old)
        keyed.index(globex, id=f"old{i}", text=f"Report {i} on lava flows.", metadata=old)
    keyed.index(
        acme, id="old0", text="Report on lava, the wiki's.", metadata=old, collection="wiki"
    )
    keyed.index(acme, id="recent", text="Report on lava today.", metadata={"year": 2024})
    keyed.index(acme, id="renewed", text="Report on lava, first draft.", metadata=old)
    keyed.index(acme, id="renewed", text="Report on lava, final.", metadata={"year": 2024})
    keyed.index(acme, id="revised", text="Report on lava, a draft.", metadata={"year": 2024})
    keyed.index(acme, id="revised", text="Report on lava, revised.", metadata=old)
    store, mine = keyed.live.runtime.store, Scope("acme", "default")
    store.upsert(
        mine,
        [
            _stale_chunk("renewed", "stale", 2020),  # matches, but is not what is served
            _stale_chunk("revised", "stale", 2020),  # matches as its served version does
            _stale_chunk("ghost", "unindexed", 2020),  # no served version at all
        ],
    )
    gone = {f"old{i}" for i in range(7)} | {"revised"}

    pages = []
    with keyed.client(acme) as c:
        flt = {"filters": {"type": "lte", "key": "year", "value": 2020}}
        while not pages or pages[-1]["more"]:
            r = c.post("/v1/documents/delete", json=flt)
            assert r.status_code == 200, r.text
            pages.append(r.json())
        deleted = [d for p in pages for d in p["document_ids"]]
        assert [p["more"] for p in pages] == [True, True, True, False]
        assert all(len(p["document_ids"]) == 2 for p in pages)
        assert sorted(deleted) == sorted(gone)  # each once
        listed = c.get("/v1/documents").json()["documents"]
        assert sorted(d["document_id"] for d in listed) == ["recent", "renewed"]
        found = c.post("/v1/search", json={"query": "lava report", "max_results": 50}).json()
        assert {h["document_id"] for h in found["results"]} == {"recent", "renewed"}
        wiki = c.post("/v1/search", json={"query": "lava", "collection": "wiki"}).json()
        assert [h["document_id"] for h in wiki["results"]] == ["old0"]
        assert c.post("/v1/documents/delete", json=flt).json() == {
            "document_ids": [],
            "more": False,
        }
    assert all(store.chunk_ids(mine, d) == [] for d in gone)
    assert store.chunk_ids(mine, "ghost") and store.chunk_ids(mine, "renewed")
    with keyed.client(globex) as c:
        found = c.post("/v1/search", json={"query": "lava report", "max_results": 50}).json()
        assert {h["document_id"] for h in found["results"]} == {f"old{i}" for i in range(7)}


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    """`python -m service` makes the data dir 0700 and its files 0600 (an existing world-
    readable file included)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "old.txt").write_text("x")
    os.chmod(data / "old.txt", 0o644)
    port = free_port()
    env = {**os.environ, "CITELINE_DATA_DIR": str(data), "CITELINE_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, cwd=REPO_ROOT)
    try:
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.1)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/documents", json={"text": "Private."})
        assert r.status_code == 202
        wait_until(lambda: any(data.rglob("*.dat")), timeout=30)
        entries = [data, *data.rglob("*")]
        modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in entries if not p.is_symlink()}
        assert {m for p, m in modes.items() if Path(p).is_dir()} == {0o700}, modes
        assert {m for p, m in modes.items() if Path(p).is_file()} == {0o600}, modes
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_open_mode_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    env = {**os.environ, "CITELINE_DATA_DIR": str(tmp_path), "CITELINE_HOST": host}
    env.pop("CITELINE_ADMIN_API_KEY", None)
    run = subprocess.run(
        [sys.executable, "-m", "service"], env=env, cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0 and "CITELINE_ADMIN_API_KEY" in run.stderr

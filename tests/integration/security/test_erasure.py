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

from tests.conftest import wait_until
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
        assert server.runtime.store.chunk_ids(_scope("default", "alpha")) == []
        assert c.delete("/v1/collections/alpha").json()["documents"] == 0
    server.index(id="a3", text="Alpha again.", collection="alpha")  # the name can be reused


def _scope(tenant: str, collection: str) -> Any:
    from service.store.base import Scope

    return Scope(tenant, collection)


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

"""Index API over real HTTP: accept, dedup, versions, delete, paging."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from service.store.base import Scope, point_id
from tests.integration.corpus import DOCS, post_all


def search(live: Any, query: str, **body: Any) -> list[dict[str, Any]]:
    with live.client() as c:
        r = c.post("/v1/search", json={"query": query, **body})
        assert r.status_code == 200, r.text
        results: list[dict[str, Any]] = r.json()["results"]
        return results


def test_indexed_chunks_carry_exact_spans(server: Any) -> None:
    post_all(server)
    results = search(server, "most active volcano in Sicily")
    assert results and results[0]["document_id"] == "volcano"
    doc = next(d for d in DOCS if d["id"] == "volcano")
    for hit in results:
        if hit["document_id"] == "volcano":
            assert doc["text"][hit["start"] : hit["end"]] == hit["text"]
    assert results[0]["title"] == "Volcanoes"
    assert results[0]["metadata"]["year"] == 2019


def test_job_reports_stage_and_counts(server: Any) -> None:
    accepted = server.index(
        id="a",
        text="Alpha beta gamma. " * 400,
        chunking={"max_chunk_size_tokens": 64, "chunk_overlap_tokens": 8},
    )
    with server.client() as c:
        job = c.get(f"/v1/jobs/{accepted['job_id']}").json()
        doc = c.get("/v1/documents/a").json()
    assert job["status"] == "completed" and job["stage"] == "done"
    assert job["chunks_total"] == job["chunks_done"] > 10
    assert job["tries"] == 1 and job["error"] is None
    assert doc["state"] == "indexed" and doc["chunks"] == job["chunks_total"]


def test_same_content_is_one_document_and_one_job(server: Any) -> None:
    body = {"text": "Identical content posted many times.", "title": "dup"}
    with server.client() as c, concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: c.post("/v1/documents", json=body), range(10)))
    assert all(r.status_code == 202 for r in responses)
    jobs = {r.json()["job_id"] for r in responses}
    docs = {r.json()["document_id"] for r in responses}
    assert len(jobs) == 1 and len(docs) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    server.wait_job(jobs.pop())
    with server.client() as c:
        again = c.post("/v1/documents", json=body).json()
    assert again["duplicate"] is True and again["status"] == "completed"


def test_new_version_replaces_old_chunks(server: Any) -> None:
    small = {"max_chunk_size_tokens": 64, "chunk_overlap_tokens": 0}
    v1 = server.index(id="doc", text="Zebras graze on the savanna. " * 60, chunking=small)
    v2 = server.index(id="doc", text="Penguins swim in cold water. " * 30, chunking=small)
    assert v1["version"] != v2["version"] and v1["job_id"] != v2["job_id"]
    assert search(server, "zebras savanna") == []
    assert {h["document_id"] for h in search(server, "penguins")} == {"doc"}
    scope = Scope("default", "default")
    stored = set(server.runtime.store.chunk_ids(scope, "doc"))
    with server.client() as c:
        n = c.get("/v1/documents/doc").json()["chunks"]
    assert n > 1
    assert stored == {point_id(scope, "doc", v2["version"], i) for i in range(n)}


def test_delete_then_never_retrieved_or_cited(server: Any) -> None:
    post_all(server)
    with server.client() as c:
        assert c.delete("/v1/documents/volcano").status_code == 200
        assert c.get("/v1/documents/volcano").status_code == 404
        assert c.delete("/v1/documents/volcano").status_code == 404
        answer = c.post("/v1/query", json={"question": "Which volcano in Sicily is active?"}).json()
    assert all(s["document_id"] != "volcano" for s in answer["sources"])
    assert all(h["document_id"] != "volcano" for h in search(server, "volcano Etna Sicily lava"))
    assert server.runtime.store.chunk_ids(Scope("default", "default"), "volcano") == []


def test_delete_and_readd_same_content_indexes_again(server: Any) -> None:
    first = server.index(id="x", text="Basalt columns form as lava cools.")
    with server.client() as c:
        c.delete("/v1/documents/x")
    again = server.index(id="x", text="Basalt columns form as lava cools.")
    assert again["duplicate"] is False and again["job_id"] != first["job_id"]
    assert [h["document_id"] for h in search(server, "basalt columns")] == ["x"]


def test_collections_are_isolated(server: Any) -> None:
    post_all(server, collection="alpha")
    assert search(server, "sourdough starter", collection="beta") == []
    assert search(server, "sourdough starter", collection="alpha")[0]["document_id"] == "sourdough"
    with server.client() as c:
        assert c.get("/v1/documents/sourdough", params={"collection": "beta"}).status_code == 404


def test_index_endpoint_accepts_the_brief_shape(server: Any) -> None:
    with server.client() as c:
        r = c.post(
            "/v1/index",
            json={
                "content": "Quartz is a hard mineral.",
                "metadata": {"k": "v"},
                "source": "https://example.org/notes.txt",
            },
        )
    assert r.status_code == 202 and r.json()["status"] == "queued"
    server.wait_job(r.json()["job_id"])
    hit = search(server, "quartz mineral")[0]
    assert hit["source"] == "https://example.org/notes.txt" and hit["metadata"] == {"k": "v"}


def test_documents_are_paged(server: Any) -> None:
    docs = [{"id": f"d{i:03d}", "text": f"Document number {i} about topic {i}."} for i in range(25)]
    post_all(server, docs)
    seen: list[str] = []
    cursor = None
    with server.client() as c:
        while True:
            params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
            page = c.get("/v1/documents", params=params).json()
            seen += [d["document_id"] for d in page["documents"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [d["id"] for d in docs]

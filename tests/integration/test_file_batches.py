"""Batches of files over HTTP: one URL tells a mixed batch's progress (SQLite and Redis
registries alike); pages travel in every wire format."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer, wait_until
from tests.files.samples import SAMPLES, pdf_sample
from tests.integration.test_files import QUESTIONS, indexed, upload
from tests.integration.workers.helpers import scaled_server

BROKEN_PDF = b"%PDF-1.5\n" + b"\x00\x13 not a pdf" * 100


def mixed_batch(c: httpx.Client, **fields: str) -> httpx.Response:
    files = [("file", (name, make())) for name, make in SAMPLES.values()]
    files.append(("file", ("broken.pdf", BROKEN_PDF)))
    return c.post("/v1/documents/batch", files=files, data=fields)


def finished_batch(c: httpx.Client, batch_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = c.get(f"/v1/batches/{batch_id}").json()
        return body if body["status"] != "in_progress" else None

    result: dict[str, Any] = wait_until(done, timeout=90, interval=0.1)
    return result


def check_mixed_batch(live: LiveServer) -> None:
    with live.client() as c:
        r = mixed_batch(c, collection="batch", metadata='{"run": 7}')
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["batch_id"].startswith("bat_") and len(body["documents"]) == 7
        batch = finished_batch(c, body["batch_id"])
        events = c.get(f"/v1/batches/{body['batch_id']}/events").text
        answer = c.post(
            "/v1/query", json={"question": QUESTIONS["pptx"][0], "collection": "batch"}
        ).json()
        listed = c.get("/v1/documents", params={"collection": "batch"}).json()["documents"]
    assert batch["status"] == "completed" and batch["completed_at"] >= batch["created_at"]
    counts = {"total": 7, "queued": 0, "running": 0, "completed": 6, "failed": 1}
    assert batch["counts"] == counts
    frames = [line for line in events.splitlines() if line.startswith("event:")]
    assert frames[-1] == "event: done" and events.rstrip().endswith("data: [DONE]")
    assert answer["sources"][0]["metadata"] == {"run": 7} and answer["sources"][0]["page"] == 2
    assert batch["chunks"] == sum(d["chunks"] for d in listed) > 0
    broken = hashlib.sha256(BROKEN_PDF).hexdigest()
    assert len({d["sha256"] for d in listed}) == 7 and broken in {d["sha256"] for d in listed}


def test_a_mixed_batch_ends_completed_with_its_failures_counted(server: LiveServer) -> None:
    check_mixed_batch(server)


def test_a_mixed_batch_on_the_redis_registry(redis_server: Any, make_server: Any) -> None:
    live: LiveServer = scaled_server(make_server, redis_server.url)
    check_mixed_batch(live)


def test_a_json_batch_has_a_batch_id_too(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/v1/documents/batch", json={"documents": [{"text": "one"}, {"text": "two"}]})
        batch = finished_batch(c, r.json()["batch_id"])
    assert batch["counts"]["completed"] == 2 and batch["counts"]["total"] == 2


def test_batch_routes_refuse_what_they_do_not_know(server: LiveServer) -> None:
    with server.client() as c:
        missing = c.get("/v1/batches/bat_" + "0" * 24)
        cancel = c.post("/v1/batches/bat_" + "0" * 24 + "/cancel")
        bad = c.get("/v1/batches/nope")
        named = c.post("/v1/documents/batch", files=[("file", ("a.md", b"# A"))], data={"id": "x"})
    assert missing.status_code == cancel.status_code == 404
    assert bad.status_code == 422
    assert named.status_code == 400 and "on its own" in named.json()["detail"]


def test_cancel_fails_what_is_still_queued(make_server: Any) -> None:
    # One parser process and a pipeline that admits one job at a time: most jobs still wait.
    live: LiveServer = make_server(max_inflight_jobs=1, parse_workers=1)
    files = [("file", (f"n{i}.md", f"# Note {i}\n\nBody {i}.".encode())) for i in range(40)]
    with live.client() as c:
        batch_id = c.post("/v1/documents/batch", files=files).json()["batch_id"]
        cancelled = c.post(f"/v1/batches/{batch_id}/cancel").json()
        final = wait_until(
            lambda: (b := c.get(f"/v1/batches/{batch_id}").json())["counts"]["running"] == 0 and b
        )
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["queued"] == 0
    assert final["counts"]["failed"] > 0 and final["status"] == "cancelled"
    assert final["counts"]["completed"] + final["counts"]["failed"] == 40


@pytest.fixture
def paged(server: LiveServer) -> LiveServer:
    with server.client() as c:
        indexed(server, upload(c, "landforms.pdf", pdf_sample()))
    return server


def test_pages_travel_in_every_wire_format(paged: LiveServer) -> None:
    question = QUESTIONS["pdf"][0]
    expected = {"page": 2, "page_end": None, "page_label": "iv", "section": "Chapter Two"}
    with paged.client() as c:
        search = c.post("/v1/search", json={"query": question}).json()["results"][0]
        sse = c.post("/v1/query", json={"question": question, "stream": True}).text
        ui = c.post(
            "/api/chat",
            json={
                "id": "c",
                "trigger": "submit-message",
                "messages": [
                    {"id": "m", "role": "user", "parts": [{"type": "text", "text": question}]}
                ],
            },
        ).text
        data = c.post("/api/chat?protocol=data", json={
            "messages": [{"role": "user", "content": question}]}).text  # fmt: skip
    frame = sse.split("event: sources\n", 1)[1].split("\n\n", 1)[0]
    sources = json.loads(next(x[6:] for x in frame.splitlines() if x.startswith("data: ")))
    chunks = [json.loads(x[6:]) for x in ui.splitlines() if x.startswith("data: {")]
    meta = next(ch for ch in chunks if ch["type"] == "source-document")["providerMetadata"]
    tool = next(json.loads(x[2:]) for x in data.splitlines() if x.startswith("a:"))
    client = openai.OpenAI(base_url=paged.url + "/v1", api_key="unused")
    done = client.chat.completions.create(
        model="citeline", messages=[{"role": "user", "content": question}]
    )
    citation = (done.choices[0].message.model_extra or {})["citations"][0]
    for got in (search, sources["sources"][0], meta["citeline"], tool["result"]["sources"][0],
                citation):  # fmt: skip
        assert {k: got[k] for k in expected} == expected, got

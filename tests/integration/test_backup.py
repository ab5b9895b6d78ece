"""`python -m service backup DIR` while the service serves and indexes, then `restore` into an
empty data dir: the restored service has the same documents and the same search results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_until
from tests.files.samples import pdf_sample
from tests.integration.corpus import DOCS, post_all

REPO = Path(__file__).resolve().parents[2]
TOKEN = "backup-test-token"
QUERIES = ["active volcano in Sicily", "glacier valleys", "wild yeast starter", "mineral7"]


def cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env.update({f"CITELINE_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def documents(live: Any) -> list[tuple[Any, ...]]:
    with live.client() as c:
        page = c.get("/v1/documents", params={"limit": 1000}).json()
    keys = ("document_id", "version", "chunks", "state", "title", "job_id")
    return sorted(tuple(d[k] for k in keys) for d in page["documents"])


def results(live: Any) -> list[list[tuple[str, str, float]]]:
    with live.client() as c:
        out = []
        for q in QUERIES:  # none has tied scores at the cut
            hits = c.post("/v1/search", json={"query": q, "max_results": 5}).json()["results"]
            out.append([(h["document_id"], h["chunk_id"], round(h["score"], 5)) for h in hits])
        return out


def all_done(live: Any, total: int) -> None:
    def check() -> bool:
        with live.client() as c:
            jobs = c.get("/readyz").json()["jobs"]
        return bool(jobs.get("completed", 0) == total)

    wait_until(check, timeout=120, interval=0.1)


def test_backup_while_serving_then_restore_serves_the_same(
    make_server: Any, tmp_path: Path
) -> None:
    live = make_server(metrics_token=TOKEN)
    post_all(live)
    with live.client() as c:  # an uploaded file: its original and text are backed up too
        pdf = c.post("/v1/documents", files={"file": ("landforms.pdf", pdf_sample())}).json()
        wait_until(lambda: c.get(f"/v1/jobs/{pdf['job_id']}").json()["status"] == "completed")
        pdf_text = c.get(f"/v1/documents/{pdf['document_id']}/content").text
    batch = [
        {"id": f"rock{i}", "text": "granite basalt line. " * 3000 + f"Here mineral{i} occurs."}
        for i in range(40)
    ]
    searched: list[int] = []
    stop = threading.Event()

    def search_meanwhile() -> None:
        with httpx.Client(base_url=live.url, timeout=30) as c:
            while not stop.is_set():
                searched.append(c.post("/v1/search", json={"query": "volcano"}).status_code)

    searcher = threading.Thread(target=search_meanwhile)
    searcher.start()
    with live.client() as c:
        assert c.post("/v1/documents/batch", json={"documents": batch}).status_code == 202
    target = tmp_path / "backup"
    try:
        taken = cli("backup", str(target), "--url", live.url, metrics_token=TOKEN)
    finally:
        stop.set()
        searcher.join(30)
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads(taken.stdout)
    assert manifest["store_kind"] == "qdrant-edge" and manifest["registry"] == "registry.sqlite3"
    assert manifest["bytes"] > 0 and manifest["writes_paused_s"] >= 0
    assert (target / "manifest.json").is_file() and (target / "registry.sqlite3").is_file()
    assert (target / "qdrant-edge" / "edge_config.json").is_file()
    assert manifest["files"] == "files" and any((target / "files").rglob("*.orig"))
    assert searched and set(searched) == {200}, "searches failed during the backup"
    assert not list((live.settings.data_dir / ".backups").iterdir()), "temporary files left"

    total = len(DOCS) + len(batch) + 1
    all_done(live, total)
    expected_docs, expected_results = documents(live), results(live)
    assert len(expected_docs) == total and all(expected_results)

    restored_dir = tmp_path / "restored"
    put = cli("restore", str(target), data_dir=str(restored_dir))
    assert put.returncode == 0, put.stderr
    restored = make_server(data_dir=restored_dir)
    all_done(restored, total)  # jobs still queued or running at backup time run again here
    assert documents(restored) == expected_docs
    assert results(restored) == expected_results
    with restored.client() as c:
        assert c.get(f"/v1/documents/{pdf['document_id']}/content").text == pdf_text
        assert c.get(f"/v1/documents/{pdf['document_id']}/file").content == pdf_sample()

    again = cli("restore", str(target), data_dir=str(restored_dir))
    assert again.returncode == 1 and "not empty" in again.stderr


def test_backup_cli_says_why_it_cannot(make_server: Any, tmp_path: Path) -> None:
    live = make_server(metrics_token=TOKEN)
    wrong = cli("backup", str(tmp_path / "b1"), "--url", live.url, metrics_token="nope")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    down = cli("backup", str(tmp_path / "b2"), "--url", "http://127.0.0.1:9", metrics_token=TOKEN)
    assert down.returncode == 1 and "is the service running" in down.stderr
    not_a_backup = cli("restore", str(tmp_path), data_dir=str(tmp_path / "d"))
    assert not_a_backup.returncode == 1 and "not a citeline backup" in not_a_backup.stderr
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()

"""A file job on a `python -m workers` process: it reads the original from the shared
CITELINE_FILES_DIR, parses it in its own parser processes and writes pages into the store."""

from __future__ import annotations

import hashlib
from pathlib import Path

from service.catalog.base import NewDocument, content_version, document_id_of
from service.clients import build_store
from service.config import Settings
from service.embeddings.sparse import Bm25Encoder
from service.files import ORIGINAL, TEXT, FileStore
from tests.files.samples import pdf_sample
from tests.integration.workers.helpers import (
    SCOPE,
    start_worker,
    stop,
    submit,
    wait_jobs,
    worker_env,
)
from tests.redis_server import RedisServer


def pdf_document(data: bytes) -> NewDocument:
    return NewDocument(
        SCOPE, None, "", None, "landforms.pdf", {}, 512, 64, media_type="application/pdf",
        filename="landforms.pdf", file_sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip


def test_a_worker_parses_the_original_from_the_shared_files_dir(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    data = pdf_sample()
    doc = pdf_document(data)
    doc_id, version = document_id_of(doc), content_version(doc)
    shared = FileStore(tmp_path / "shared-files")
    shared.write(SCOPE, doc_id, version, ORIGINAL, data, durable=True)  # what the API does
    client = redis_server.client()
    (accepted,) = submit(redis_server.url, [doc])
    env = worker_env(redis_server.url, tmp_path / "worker", files_dir=shared.root)
    worker = start_worker(env, client)
    try:
        (row,) = wait_jobs(client, [accepted.job_id])
    finally:
        stop(worker)
    assert row["status"] == "completed", row
    assert row["pages"] == "3" and row["pages_without_text"] == "[3]"
    text = shared.read(SCOPE, doc_id, version, TEXT)
    assert text is not None and b"Basalt columns form" in text
    store = build_store(Settings(data_dir=tmp_path / "worker"))
    try:
        query = Bm25Encoder().encode_query("basalt columns lava")
        (hit,) = store.search(SCOPE, sparse=query, limit=1)
    finally:
        store.close()
    assert (hit.page, hit.page_label, hit.section) == (2, "iv", "Chapter Two")
    assert text.decode()[hit.start : hit.end] == hit.text


def test_a_worker_that_does_not_see_the_original_fails_the_job_saying_so(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    doc = pdf_document(pdf_sample())
    client = redis_server.client()
    (accepted,) = submit(redis_server.url, [doc])  # no original written where it looks
    env = worker_env(redis_server.url, tmp_path / "worker", files_dir=tmp_path / "elsewhere")
    worker = start_worker(env, client)
    try:
        (row,) = wait_jobs(client, [accepted.job_id])
    finally:
        stop(worker)
    assert row["status"] == "failed" and "CITELINE_FILES_DIR" in row["error"], row

"""SIGKILL a worker at random moments: every accepted document still ends indexed exactly once."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.workers.helpers import (
    SCOPE,
    expected_chunk_ids,
    jobs,
    make_doc,
    start_worker,
    stop,
    stored_chunk_ids,
    submit,
    wait_jobs,
    worker_env,
)
from tests.redis_server import RedisServer
from tests.stubs.openai_stub import StubServer

DIM = 16


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


def test_sigkill_three_times_then_every_document_is_indexed_exactly_once(
    redis_server: RedisServer, stub: StubServer, tmp_path: Path
) -> None:
    seed = int(os.environ.get("CITELINE_TEST_SEED", time.time_ns() % 100_000))
    print(f"kill moments drawn with seed {seed} (set CITELINE_TEST_SEED to replay)")
    rng = random.Random(seed)
    client = redis_server.client()
    # A remote embedder taking 80 ms per call of 8 chunks makes the 20 jobs last seconds.
    stub.faults.stall(0.08, endpoint="embeddings")
    dense = {
        "embedding_base_url": stub.base_url,
        "embedding_model": "stub-embed",
        "embedding_dimension": DIM,
    }
    env = worker_env(
        redis_server.url,
        tmp_path,
        **dense,
        embed_batch_size=8,
        worker_max_jobs=6,
        job_max_tries=6,  # room for the three crashes
    )
    docs = [make_doc(f"rock{i:02d}", 170) for i in range(20)]
    worker = start_worker(env, client)
    try:
        accepted = submit(redis_server.url, docs)
        job_ids = [a.job_id for a in accepted]
        unfinished_at_kill: list[int] = []
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 4.0))  # the random moment is the condition under test
            worker.kill()
            worker.wait(10)
            rows = jobs(client, job_ids)
            unfinished_at_kill.append(sum(r["status"] != "completed" for r in rows))
            worker = start_worker(env, client)
        rows = wait_jobs(client, job_ids, timeout=120)
    finally:
        exit_code = stop(worker)
    print(f"unfinished jobs at each kill: {unfinished_at_kill}")
    assert exit_code == 0
    assert unfinished_at_kill[0] > 0, "the first kill came after all the work: nothing tested"
    assert [r["status"] for r in rows] == ["completed"] * len(docs), [r.get("error") for r in rows]
    assert all(int(r["chunks_done"]) == int(r["chunks_total"]) > 0 for r in rows)
    versions = {a.document_id: a.version for a in accepted}
    active = client.hgetall(f"cl:active:{SCOPE.tenant}\x1f{SCOPE.collection}")
    assert active == versions

    stored = stored_chunk_ids(tmp_path, **dense)
    expected = expected_chunk_ids(docs, versions)
    assert len(expected) >= 400
    assert sum(int(r["chunks_total"]) for r in rows) == len(expected)
    missing, stale = expected - set(stored), set(stored) - expected
    duplicates = len(stored) - len(set(stored))
    assert (len(missing), duplicates, len(stale)) == (0, 0, 0)

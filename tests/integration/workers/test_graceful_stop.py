"""SIGTERM: a short job finishes within the wait window, a long one is re-queued and finishes
on the next worker, and the worker exits within its window."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.workers.helpers import (
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
WAIT_S = 4  # CITELINE_JOB_COMPLETION_WAIT_S


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


def test_sigterm_lets_the_short_job_finish_and_requeues_the_long_one(
    redis_server: RedisServer, stub: StubServer, tmp_path: Path
) -> None:
    client = redis_server.client()
    stub.faults.stall(1.5, endpoint="embeddings")  # every embedding call takes 1.5 s
    dense = {
        "embedding_base_url": stub.base_url,
        "embedding_model": "stub-embed",
        "embedding_dimension": DIM,
    }
    env = worker_env(
        redis_server.url,
        tmp_path,
        **dense,
        embed_batch_size=4,
        job_completion_wait_s=WAIT_S,
    )
    short, long = make_doc("short", 3), make_doc("long", 150)  # 1 call vs ~5 calls of 1.5 s
    worker = start_worker(env, client)
    try:
        (short_job,) = submit(redis_server.url, [short])

        def running(job_id: str) -> bool:
            return jobs(client, [job_id])[0]["stage"] in ("embedding", "upserting")

        wait_until(lambda: running(short_job.job_id), timeout=10)
        (long_job,) = submit(redis_server.url, [long])
        wait_until(lambda: running(long_job.job_id), timeout=10)
        assert jobs(client, [short_job.job_id])[0]["status"] == "running"

        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(WAIT_S + 10)
        took = time.monotonic() - signalled
    finally:
        stop(worker)
    assert exit_code == 0
    assert took < WAIT_S + 3, f"the worker took {took:.1f} s to exit"
    done, interrupted = jobs(client, [short_job.job_id, long_job.job_id])
    assert (done["status"], done["tries"]) == ("completed", "1")
    assert (interrupted["status"], interrupted["tries"]) == ("queued", "1")
    assert "interrupted" in interrupted["error"]

    stub.faults.clear()
    worker = start_worker(env, client)
    try:
        finished = wait_jobs(client, [long_job.job_id], timeout=60)[0]
    finally:
        assert stop(worker) == 0
    assert (finished["status"], finished["tries"]) == ("completed", "2")
    assert "error" not in finished

    stored = stored_chunk_ids(tmp_path, **dense)
    versions = {"short": short_job.version, "long": long_job.version}
    assert sorted(stored) == sorted(expected_chunk_ids([short, long], versions))

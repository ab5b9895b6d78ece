"""Which configurations start, which are refused, and the worker's health probe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SettingsError, load_settings
from tests.integration.workers.helpers import REPO, start_worker, stop, worker_env
from tests.redis_server import RedisServer


def test_external_workers_with_an_embedded_store_are_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(
            queue="arq", worker="external", redis_url="redis://127.0.0.1:1/0", qdrant_url=None
        )
    message = str(refused.value)
    assert "CITELINE_WORKER=external" in message and "CITELINE_QDRANT_URL" in message
    with pytest.raises(SettingsError, match="CITELINE_REDIS_URL"):
        load_settings(queue="arq", worker="external", qdrant_url="http://127.0.0.1:6333")
    settings = load_settings(
        queue="arq", worker="external", redis_url="redis://r", qdrant_url="http://q"
    )
    assert settings.worker == "external"


def test_the_queue_is_chosen_explicitly() -> None:
    """A Redis URL alone (e.g. for the resume buffer) keeps the embedded queue."""
    assert load_settings(redis_url="redis://r").queue == "embedded"
    with pytest.raises(SettingsError, match="CITELINE_QUEUE=arq needs CITELINE_REDIS_URL"):
        load_settings(queue="arq")
    with pytest.raises(SettingsError) as refused:
        load_settings(worker="embedded", redis_url="redis://r")  # the queue is still embedded
    assert "CITELINE_WORKER=embedded" in str(refused.value)
    assert "CITELINE_QUEUE=arq" in str(refused.value)


def test_worker_needs_redis_and_reports_its_health(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = worker_env(redis_server.url, tmp_path)
    no_redis = {k: v for k, v in env.items() if k != "CITELINE_REDIS_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "workers"], env=no_redis, cwd=REPO, capture_output=True, timeout=60
    )
    assert run.returncode != 0 and b"CITELINE_REDIS_URL" in run.stderr
    assert b"Traceback" not in run.stderr
    no_queue = {k: v for k, v in env.items() if k != "CITELINE_QUEUE"}
    run = subprocess.run(
        [sys.executable, "-m", "workers"], env=no_queue, cwd=REPO, capture_output=True, timeout=60
    )
    assert run.returncode == 2 and b"CITELINE_QUEUE=arq" in run.stderr

    def check() -> int:
        args = [sys.executable, "-m", "workers", "--check"]
        return subprocess.run(args, env=env, cwd=REPO, capture_output=True, timeout=60).returncode

    assert check() == 1  # no worker yet
    worker = start_worker(env, redis_server.client())
    try:
        assert check() == 0
    finally:
        assert stop(worker) == 0
    assert check() == 1  # a clean exit removes the health key

"""`python -m workers`: one arq worker process; `--check` exits 0 while it is healthy.

A worker ends when Redis goes away (arq does not reconnect) and on SIGTERM, after letting jobs
finish for CITELINE_JOB_COMPLETION_WAIT_S; a supervisor (systemd, Docker's restart policy,
Kubernetes) must start it again. Exit status: 0 after a signal, 1 when Redis was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from arq.connections import RedisSettings
from arq.worker import Worker, async_check_health
from redis.exceptions import RedisError

from service.config import load_settings
from service.jobs.arq_names import health_check_key
from service.redis_keys import QUEUE_NAME
from service.telemetry import logs

log = logging.getLogger("citeline.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 0 if this host's worker is up")
    args = parser.parse_args(argv)
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if settings.queue != "arq":
        print(
            "citeline worker: set CITELINE_QUEUE=arq and CITELINE_REDIS_URL (the queue's Redis)",
            file=sys.stderr,
        )
        return 2
    assert settings.redis_url is not None  # Settings checks it for CITELINE_QUEUE=arq
    if args.check:
        dsn = RedisSettings.from_dsn(settings.redis_url)
        return asyncio.run(async_check_health(dsn, health_check_key(), QUEUE_NAME))
    # Imported here, not above: the health probe must start fast.
    from prometheus_client import start_http_server

    from service.jobs.arq_job import worker_options
    from service.jobs.arq_queue import arq_redis
    from service.telemetry import tracing
    from service.telemetry.metrics import REGISTRY
    from workers.resources import WORKER_REDIS_TIMEOUT_S, shutdown, startup

    tracing.setup(settings.otel_enabled, settings.otel_capture_content)
    if settings.worker_metrics_port is not None:  # Prometheus text on /metrics of this port
        start_http_server(settings.worker_metrics_port, registry=REGISTRY)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = Worker(
        **worker_options(settings),
        redis_pool=arq_redis(settings.redis_url, timeout_s=WORKER_REDIS_TIMEOUT_S),
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings},
    )
    try:
        worker.run()
    except (RedisError, OSError) as exc:
        log.error("worker.redis_lost: %r; exiting so that the supervisor restarts me", exc)
        return 1
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`GET /metrics` (Prometheus) and `POST /v1/admin/backup` (a consistent backup, as a tar)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import Metric
from starlette.background import BackgroundTask

from service.catalog.base import JobRegistry, RegistryUnavailable
from service.deps import (
    QueueDep,
    RegistryDep,
    RunsDep,
    SettingsDep,
    StoreDep,
    admin_access,
    metrics_access,
)
from service.errors import Unavailable, problem_responses
from service.jobs.base import JobQueue
from service.ops import backup
from service.streams.resume import Runs
from service.telemetry import metrics

metrics_router = APIRouter(tags=["operations"])
admin_router = APIRouter(tags=["operations"])
log = logging.getLogger("citeline.ops")

BACKUP_DIR = ".backups"  # inside the data dir: same filesystem, cheap to copy into
_backups_running: set[Path] = set()  # data dirs with a backup in progress


async def _sampled(registry: JobRegistry, queue: JobQueue, runs: Runs) -> list[Metric]:
    """The values that live elsewhere, read for this scrape."""
    families = [
        metrics.gauge(
            "citeline_pipeline_backlog",
            "Waiting before each pipeline stage of this process (jobs, chunks, batches)",
            "stage",
            queue.backlog(),
        ),
        metrics.gauge(
            "citeline_resumable_runs",
            "Answer runs in the resume buffer that are still being produced here",
            "state",
            {"active": runs.active},
        ),
    ]
    try:
        counts = await registry.counts()
    except RegistryUnavailable:  # Redis is down: the rest of the scrape still answers
        return families
    families.append(
        metrics.gauge("citeline_jobs", "Indexing jobs by status (the catalog)", "status", counts)
    )
    families.append(
        metrics.gauge(
            "citeline_queue_depth",
            "Jobs waiting to run",
            "queue",
            {"index": counts.get("queued", 0)},
        )
    )
    return families


@metrics_router.get(
    "/metrics",
    dependencies=[Depends(metrics_access)],
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **problem_responses(401),
    },
)
async def prometheus(registry: RegistryDep, queue: QueueDep, runs: RunsDep) -> Response:
    """Every metric in the Prometheus text format (needs the token when one is set)."""
    text = metrics.render(await _sampled(registry, queue, runs))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@admin_router.post(
    "/v1/admin/backup",
    dependencies=[Depends(admin_access)],
    response_class=FileResponse,
    responses={
        200: {
            "description": "the backup directory as a tar (manifest.json, registry, store)",
            "content": {"application/x-tar": {}},
        },
        **problem_responses(401, 403, 503),
    },
)
async def take_backup(
    settings: SettingsDep,
    registry: RegistryDep,
    store: StoreDep,
    queue: QueueDep,
) -> FileResponse:
    """A consistent backup taken while serving; `python -m service backup DIR` fetches it."""
    if settings.data_dir in _backups_running:
        raise Unavailable("a backup is being taken; retry when it is done", retry_after=10)
    _backups_running.add(settings.data_dir)
    name = f"backup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    work = settings.data_dir / BACKUP_DIR / name
    try:
        manifest = await backup.take(settings, registry, store, queue, work)
        tar_path = await asyncio.to_thread(backup.archive, work)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, work, True)
        raise
    finally:
        _backups_running.discard(settings.data_dir)
    log.info(
        "backup.taken",
        extra={k: manifest[k] for k in ("bytes", "seconds", "writes_paused_s", "store_kind")},
    )
    return FileResponse(
        tar_path,
        media_type="application/x-tar",
        filename=f"citeline-{name}.tar",
        background=BackgroundTask(_remove, tar_path),
    )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

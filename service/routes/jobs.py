"""Job status, as one JSON body or as a stream of progress events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path

from schemas.jobs import JobOut
from service.deps import RuntimeDep, TenantDep
from service.errors import NotFound, Unavailable
from service.indexing.registry_sql import JobRow
from service.runtime import Runtime
from service.streams.live import LiveResponse, sse_frame
from service.streams.sse import sse_response

router = APIRouter(prefix="/v1", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{24}$")]

# The events stream polls the registry (SQLite or Redis alike) this often while a job runs.
EVENTS_POLL_S = 0.25


def job_out(job: JobRow, runtime: Runtime) -> JobOut:
    return JobOut(
        job_id=job.job_id,
        document_id=job.document_id,
        collection=job.collection,
        version=job.version,
        status=job.status,
        stage=job.stage,
        chunks_total=job.chunks_total,
        chunks_done=job.chunks_done,
        embedding_tokens=job.embedding_tokens,
        cost_usd=runtime.embedding_cost(job.embedding_tokens),
        tries=job.tries,
        error=job.error,
        superseded_by=job.superseded_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: JobId, runtime: RuntimeDep, tenant: TenantDep) -> JobOut:
    job = await runtime.registry.job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job_out(job, runtime)


@router.get("/jobs/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: JobId, runtime: RuntimeDep, tenant: TenantDep) -> LiveResponse:
    """`progress` events (a JobOut) whenever the job changes, then `done` with its final
    state (completed or failed), then `data: [DONE]`."""
    job = await runtime.registry.job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return sse_response(_events(runtime, job, tenant), runtime.settings.sse_ping_interval_s)


async def _events(runtime: Runtime, job: JobRow, tenant: str) -> AsyncIterator[bytes]:
    seq, last = 0, ""
    while True:
        body = job_out(job, runtime).model_dump_json()
        final = job.status in ("completed", "failed")
        if body != last:
            seq += 1
            yield sse_frame(body, event="done" if final else "progress", id=str(seq))
            last = body
        if final:
            break
        await asyncio.sleep(EVENTS_POLL_S)
        try:
            polled = await runtime.registry.job(job.job_id, tenant)
        except Unavailable as exc:
            seq += 1
            error = json.dumps({"message": exc.detail, "status": exc.status})
            yield sse_frame(error, event="error", id=str(seq))
            break
        if polled is None:  # cannot happen: job rows are never removed
            break
        job = polled
    yield sse_frame("[DONE]")

"""Job status, as one JSON body or as a stream of progress events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path

from schemas.jobs import JobOut
from service.auth.principal import Principal
from service.catalog.base import JobRegistry, RegistryUnavailable
from service.catalog.rows import JobRow
from service.deps import PricingDep, ReadAccess, RegistryDep, SettingsDep, StreamsDep
from service.errors import NotFound, problem_responses
from service.pricing import Pricing
from service.streams.live import LiveResponse, sse_frame
from service.streams.sse import SSE_RESPONSE, sse_response

router = APIRouter(prefix="/v1", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{24}$")]

# The events stream polls the registry (SQLite or Redis alike) this often while a job runs.
EVENTS_POLL_S = 0.25


def job_out(job: JobRow, pricing: Pricing) -> JobOut:
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
        cost_usd=pricing.embedding_cost(job.embedding_tokens),
        tries=job.tries,
        error=job.error,
        superseded_by=job.superseded_by,
        pages=job.pages,
        pages_without_text=list(job.pages_without_text),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


async def visible_job(registry: JobRegistry, job_id: str, caller: Principal) -> JobRow:
    """The caller's job; another tenant's, or one of a collection outside the key's list, is
    as unknown as a job that never existed (404, no existence oracle)."""
    job = await registry.job(job_id, caller.tenant)
    if job is None or not caller.can_read(job.collection):
        raise NotFound(f"no job {job_id!r}")
    return job


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problem_responses(404, 503))
async def get_job(
    job_id: JobId, registry: RegistryDep, pricing: PricingDep, caller: ReadAccess
) -> JobOut:
    return job_out(await visible_job(registry, job_id, caller), pricing)


@router.get(
    "/jobs/{job_id}/events",
    responses={**SSE_RESPONSE, **problem_responses(404, 503)},
)
async def job_events(
    job_id: JobId,
    registry: RegistryDep,
    pricing: PricingDep,
    settings: SettingsDep,
    caller: ReadAccess,
    streams: StreamsDep,
) -> LiveResponse:
    """`progress` events (a JobOut) whenever the job changes, then `done` with its final
    state (completed or failed), then `data: [DONE]`."""
    job = await visible_job(registry, job_id, caller)
    frames = _events(registry, pricing, job, caller.tenant)
    slot = streams.take(caller)
    return sse_response(frames, settings.sse_ping_interval_s, on_close=slot.release)


async def _events(
    registry: JobRegistry, pricing: Pricing, job: JobRow, tenant: str
) -> AsyncIterator[bytes]:
    seq, last = 0, ""
    while True:
        body = job_out(job, pricing).model_dump_json()
        final = job.status in ("completed", "failed")
        if body != last:
            seq += 1
            yield sse_frame(body, event="done" if final else "progress", id=str(seq))
            last = body
        if final:
            break
        await asyncio.sleep(EVENTS_POLL_S)
        try:
            polled = await registry.job(job.job_id, tenant)
        except RegistryUnavailable as exc:
            seq += 1
            error = json.dumps({"message": exc.detail, "status": 503})
            yield sse_frame(error, event="error", id=str(seq))
            break
        if polled is None:  # cannot happen: job rows are never removed
            break
        job = polled
    yield sse_frame("[DONE]")

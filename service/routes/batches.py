"""Batch status: one cheap read to poll, a stream of its changes, and cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path

from schemas.batches import BatchCounts, BatchOut
from service.auth.principal import Principal
from service.catalog.base import BATCH_STATUSES, BatchRow, RegistryUnavailable
from service.deps import DocumentsDep, ReadAccess, SettingsDep, WriteAccess
from service.documents import Documents
from service.errors import NotFound, problem_responses
from service.streams.live import LiveResponse, sse_frame
from service.streams.sse import SSE_RESPONSE, sse_response

router = APIRouter(prefix="/v1", tags=["batches"])

BatchId = Annotated[str, Path(pattern=r"^bat_[0-9a-f]{24}$")]
EVENTS_POLL_S = 0.25  # as the job events stream


def batch_out(row: BatchRow) -> BatchOut:
    c = row.counts
    return BatchOut(
        id=row.batch_id,
        status=row.status,
        counts=BatchCounts(total=row.total, **{s: c[s] for s in BATCH_STATUSES}),
        chunks=row.chunks,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


async def visible_batch(documents: Documents, batch_id: str, caller: Principal) -> BatchRow:
    """The caller's batch; another tenant's, or one with documents in a collection outside the
    key's list, is as unknown as a batch that never existed (404, no existence oracle)."""
    row = await documents.batch(caller.tenant, batch_id)
    if not all(caller.can_read(c) for c in row.collections):
        raise NotFound(f"no batch {batch_id!r}")
    return row


@router.get("/batches/{batch_id}", response_model=BatchOut, responses=problem_responses(404, 503))
async def get_batch(batch_id: BatchId, documents: DocumentsDep, caller: ReadAccess) -> BatchOut:
    return batch_out(await visible_batch(documents, batch_id, caller))


@router.post(
    "/batches/{batch_id}/cancel", response_model=BatchOut, responses=problem_responses(404, 503)
)
async def cancel_batch(batch_id: BatchId, documents: DocumentsDep, caller: WriteAccess) -> BatchOut:
    """Queued jobs of the batch fail as cancelled; running ones finish."""
    await visible_batch(documents, batch_id, caller)
    return batch_out(await documents.cancel_batch(caller.tenant, batch_id))


@router.get("/batches/{batch_id}/events", responses={**SSE_RESPONSE, **problem_responses(404, 503)})
async def batch_events(
    batch_id: BatchId, documents: DocumentsDep, settings: SettingsDep, caller: ReadAccess
) -> LiveResponse:
    """`progress` events (a BatchOut) whenever the counts change, then `done` once no job is
    queued or running, then `data: [DONE]`."""
    row = await visible_batch(documents, batch_id, caller)
    return sse_response(_events(documents, caller.tenant, row), settings.sse_ping_interval_s)


async def _events(documents: Documents, tenant: str, row: BatchRow) -> AsyncIterator[bytes]:
    seq, last = 0, ""
    while True:
        body = batch_out(row).model_dump_json()
        final = row.open == 0
        if body != last:
            seq += 1
            yield sse_frame(body, event="done" if final else "progress", id=str(seq))
            last = body
        if final:
            break
        await asyncio.sleep(EVENTS_POLL_S)
        try:
            row = await documents.batch(tenant, row.batch_id)
        except RegistryUnavailable as exc:
            seq += 1
            error = json.dumps({"message": exc.detail, "status": 503})
            yield sse_frame(error, event="error", id=str(seq))
            break
    yield sse_frame("[DONE]")

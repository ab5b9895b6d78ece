"""Job status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from schemas.jobs import JobOut
from service.deps import RuntimeDep, TenantDep
from service.errors import NotFound

router = APIRouter(prefix="/v1", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{24}$")]


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: JobId, runtime: RuntimeDep, tenant: TenantDep) -> JobOut:
    job = await runtime.registry.job(job_id, tenant)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return JobOut(
        job_id=job.job_id,
        document_id=job.document_id,
        collection=job.collection,
        version=job.version,
        status=job.status,
        stage=job.stage,
        chunks_total=job.chunks_total,
        chunks_done=job.chunks_done,
        tries=job.tries,
        error=job.error,
        superseded_by=job.superseded_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )

"""Evaluation runs: cases in, per-case results and aggregates out (`make eval` uses them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from schemas.evaluations import EvaluationIn, EvaluationOut
from service.deps import EvaluationsDep, WriteAccess
from service.errors import NotFound, problem_responses

router = APIRouter(prefix="/v1", tags=["evaluations"])

EvaluationId = Annotated[str, Path(pattern=r"^eval_[0-9a-f]{24}$")]


@router.post(
    "/evaluations", status_code=202, response_model=EvaluationOut, responses=problem_responses(403)
)
async def start_evaluation(
    body: EvaluationIn, evaluations: EvaluationsDep, caller: WriteAccess
) -> EvaluationOut:
    """Runs every case through retrieval, abstention and the answerer, as `/v1/query` does;
    poll `GET /v1/evaluations/{id}` until `status` is `completed`."""
    caller.scope_of(body.collection)  # the key must reach the collection
    return evaluations.start(caller.tenant, body)


@router.get(
    "/evaluations/{evaluation_id}", response_model=EvaluationOut, responses=problem_responses(404)
)
async def get_evaluation(
    evaluation_id: EvaluationId, evaluations: EvaluationsDep, caller: WriteAccess
) -> EvaluationOut:
    run = evaluations.get(caller.tenant, evaluation_id)
    if run is None or not caller.can_read(run.collection):  # no existence oracle
        raise NotFound(f"no evaluation {evaluation_id!r}")
    return run

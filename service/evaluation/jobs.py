"""Evaluation runs as background tasks of this process, kept in memory (the latest few).

A run answers its cases one after another (one run at a time per process, so an evaluation
never takes the whole machine from live queries); `GET /v1/evaluations/{id}` reads its state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from schemas.evaluations import CaseResult, EvaluationIn, EvaluationOut, EvaluationStatus
from service.evaluation.runner import RunSettings, aggregate, run_case
from service.query.ask import Asker
from service.store.base import Scope

log = logging.getLogger("citeline.evaluation")

KEEP_RUNS = 100


@dataclass(slots=True)
class _Run:
    id: str
    tenant: str
    request: EvaluationIn
    settings: RunSettings
    max_results: int
    min_relevance: float
    status: EvaluationStatus = "queued"
    results: list[CaseResult] = field(default_factory=list)
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def out(self) -> EvaluationOut:
        done = self.status == "completed"
        cases = self.request.cases
        return EvaluationOut(
            id=self.id,
            status=self.status,
            collection=self.request.collection,
            cases_total=len(cases),
            cases_done=len(self.results),
            settings=self.settings.record(),
            aggregates=aggregate(self.results, cases, self.max_results) if done else None,
            results=list(self.results) if done else None,
            error=self.error,
            created_at=self.created_at,
            finished_at=self.finished_at,
        )


class Evaluations:
    def __init__(self, asker: Asker, base_settings: dict[str, object]) -> None:
        self.asker = asker
        self.base_settings = base_settings
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._one_at_a_time = asyncio.Lock()

    def start(self, tenant: str, request: EvaluationIn) -> EvaluationOut:
        max_results = request.max_results or self.asker.default_max_results
        floor = self.asker.retriever.min_relevance
        min_relevance = floor if request.min_relevance is None else request.min_relevance
        values = {**self.base_settings, "max_results": max_results, "min_relevance": min_relevance}
        run = _Run(
            id=f"eval_{secrets.token_hex(12)}",
            tenant=tenant,
            request=request,
            settings=RunSettings(values),
            max_results=max_results,
            min_relevance=min_relevance,
        )
        self._runs[run.id] = run
        finished = [r.id for r in self._runs.values() if r.finished_at is not None]
        for old in finished[: max(0, len(self._runs) - KEEP_RUNS)]:
            del self._runs[old]
        task = asyncio.create_task(self._run(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run.out()

    def get(self, tenant: str, run_id: str) -> EvaluationOut | None:
        run = self._runs.get(run_id)
        return run.out() if run is not None and run.tenant == tenant else None

    async def _run(self, run: _Run) -> None:
        scope = Scope(run.tenant, run.request.collection)
        async with self._one_at_a_time:
            run.status = "running"
            try:
                for case in run.request.cases:
                    result = await run_case(
                        self.asker, scope, case, run.max_results, run.min_relevance
                    )
                    run.results.append(result)
                run.status = "completed"
            except Exception as exc:  # a store or model failure ends the run, reported
                log.warning("evaluation.failed", extra={"id": run.id, "error": str(exc)})
                run.status, run.error = "failed", "the evaluation failed; the server log has why"
            finally:
                run.finished_at = time.time()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

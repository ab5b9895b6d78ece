"""An evaluation run: each case through the same retrieval, abstention and answerer as
`POST /v1/query`, then scored (see `metrics`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.evaluations import CaseResult, EvaluationCase
from schemas.query import Source
from service.evaluation import metrics
from service.query.ask import Asker
from service.query.events import AnswerEvent, DoneEvent, ErrorEvent, SourcesEvent
from service.store.base import Scope

RANK_DEPTH = 10  # documents ranked per case for hit@k, recall@10, MRR and nDCG@10


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What decides an evaluation's outcome; `values` are recorded with a hash of them."""

    values: dict[str, Any]

    @property
    def digest(self) -> str:
        text = json.dumps(self.values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        return {"hash": self.digest, **self.values}


@dataclass(slots=True)
class _Answer:
    text: str = ""
    sources: list[Source] = field(default_factory=list)
    error: str | None = None


async def _fold(events: AsyncIterator[AnswerEvent]) -> _Answer:
    out = _Answer()
    async for event in events:
        match event:
            case SourcesEvent():
                out.sources = event.sources
            case ErrorEvent():
                out.error = event.message
            case DoneEvent():
                out.text = event.answer
    return out


async def run_case(
    asker: Asker, scope: Scope, case: EvaluationCase, max_results: int, min_relevance: float
) -> CaseResult:
    """One case: the documents retrieval ranks first, then the answer as `/v1/query` gives it."""
    ranked_hits = await asker.retriever.search(scope, case.question, RANK_DEPTH)
    ranked = list(dict.fromkeys(h.document_id for h in ranked_hits))
    events = await asker.ask(scope, case.question, max_results, min_relevance=min_relevance)
    answer = await _fold(events)
    answerable = case.is_answerable()
    expected = set(case.expected_document_ids)
    sources = list(dict.fromkeys(s.document_id for s in answer.sources))
    abstained = not answer.sources
    judged = answerable and bool(expected)
    wanted = case.expected_answer if answerable else None
    return CaseResult(
        question=case.question,
        answerable=answerable,
        abstained=abstained,
        answer=answer.text if answer.error is None else f"(error: {answer.error})",
        ranked_document_ids=ranked,
        source_document_ids=sources,
        top_relevance=ranked_hits[0].relevance if ranked_hits else None,
        hit=bool(expected & set(sources)) if judged else None,
        reciprocal_rank=metrics.reciprocal_rank(ranked, expected) if judged else None,
        ndcg_at_10=metrics.ndcg_at(ranked, expected) if judged else None,
        citations_valid=metrics.citations_valid(answer.text, {s.n: s.text for s in answer.sources}),
        exact_match=None if wanted is None else metrics.exact_match(answer.text, wanted),
        token_f1=None if wanted is None else round(metrics.token_f1(answer.text, wanted), 4),
        answer_contains_expected=None if wanted is None else metrics.contains(answer.text, wanted),
    )


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def aggregate(
    results: Sequence[CaseResult], cases: Sequence[EvaluationCase], k: int
) -> dict[str, float | int | None]:
    """Rates over the cases each applies to (None when none does)."""
    judged = [(r, set(c.expected_document_ids)) for r, c in zip(results, cases, strict=True)]
    judged = [(r, e) for r, e in judged if r.answerable and e]
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    abstained = [r for r in results if r.abstained]
    answered = [r for r in results if not r.abstained]
    with_answer = [r for r in answerable if r.exact_match is not None]
    right_abstentions = sum(1 for r in abstained if not r.answerable)

    def rate(rows: Sequence[CaseResult], pick: Callable[[CaseResult], bool]) -> float | None:
        return _mean([float(pick(r)) for r in rows])

    return {
        "cases": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        f"hit@{k}": _mean([float(bool(e & set(r.ranked_document_ids[:k]))) for r, e in judged]),
        "recall@10": _mean([metrics.recall_at(r.ranked_document_ids, e, 10) for r, e in judged]),
        "mrr": _mean([r.reciprocal_rank or 0.0 for r, _ in judged]),
        "ndcg@10": _mean([r.ndcg_at_10 or 0.0 for r, _ in judged]),
        "answered": rate(answerable, lambda r: not r.abstained),
        "expected_document_in_sources": rate([r for r, _ in judged], lambda r: bool(r.hit)),
        "abstained_when_unanswerable": rate(unanswerable, lambda r: r.abstained),
        "abstention_precision": _mean([float(not r.answerable) for r in abstained]),
        "abstention_recall": (
            round(right_abstentions / len(unanswerable), 4) if unanswerable else None
        ),
        "citation_validity": rate(answered, lambda r: r.citations_valid),
        "exact_match": rate(with_answer, lambda r: bool(r.exact_match)),
        "token_f1": _mean([r.token_f1 or 0.0 for r in with_answer]),
        "answer_contains_expected": rate(with_answer, lambda r: bool(r.answer_contains_expected)),
        # The same over the cases whose expected document was among the sources: what the
        # answerer made of the right passage, apart from retrieval's misses and abstentions.
        "answer_contains_expected_when_found": rate(
            [r for r in with_answer if r.hit], lambda r: bool(r.answer_contains_expected)
        ),
    }

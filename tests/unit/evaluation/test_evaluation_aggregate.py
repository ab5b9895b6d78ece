"""The evaluation's aggregates: each rate over the cases it applies to."""

from __future__ import annotations

from schemas.evaluations import CaseResult, EvaluationCase
from service.evaluation.runner import aggregate


def _case(expected: str, hit: bool, contains: bool) -> tuple[CaseResult, EvaluationCase]:
    result = CaseResult(
        question="q",
        answerable=True,
        abstained=False,
        answer="a [1]",
        ranked_document_ids=[expected if hit else "other"],
        source_document_ids=[expected if hit else "other"],
        top_relevance=0.5,
        hit=hit,
        reciprocal_rank=1.0 if hit else 0.0,
        ndcg_at_10=1.0 if hit else 0.0,
        citations_valid=True,
        exact_match=False,
        token_f1=0.1,
        answer_contains_expected=contains,
    )
    return result, EvaluationCase(
        question="q", expected_document_ids=[expected], expected_answer="x"
    )


def test_the_answer_rate_given_the_right_passage_leaves_out_retrievals_misses() -> None:
    rows = [_case("d1", True, True), _case("d2", True, False), _case("d3", False, True)]
    results, cases = [r for r, _ in rows], [c for _, c in rows]
    agg = aggregate(results, cases, 5)
    assert agg["answer_contains_expected"] == round(2 / 3, 4)
    assert agg["answer_contains_expected_when_found"] == 0.5
    assert agg["expected_document_in_sources"] == round(2 / 3, 4)


def test_no_case_with_the_right_passage_gives_no_rate() -> None:
    result, case = _case("d1", False, False)
    assert aggregate([result], [case], 5)["answer_contains_expected_when_found"] is None

"""Relevance on every hit, the per-request threshold, and evaluation runs over REST."""

from __future__ import annotations

from typing import Any

import pytest

from service.query.answering import NOT_FOUND
from tests.conftest import wait_until
from tests.integration.corpus import post_all

ETNA = "Which volcano in Sicily is among the most active?"
UNRELATED = "Who composed the Brandenburg concertos for harpsichord?"


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server)
    return server


def test_every_hit_has_a_relevance_in_0_1_and_the_threshold_filters(loaded: Any) -> None:
    with loaded.client() as c:
        query = "etna volcano glacier"
        results = c.post("/v1/search", json={"query": query}).json()["results"]
        # Three terms of equal IDF: the volcano passage holds two, the glacier passage one.
        relevance = {r["document_id"]: r["relevance"] for r in results}
        assert relevance == {"volcano": pytest.approx(2 / 3, abs=1e-3), "glacier": 0.3333}
        kept = c.post("/v1/search", json={"query": query, "min_relevance": 0.5})
        assert [r["document_id"] for r in kept.json()["results"]] == ["volcano"]
        openai_shape = {"query": "etna glacier", "ranking_options": {"score_threshold": 1.0}}
        assert c.post("/v1/search", json=openai_shape).json()["results"] == []
        bad = c.post("/v1/search", json={"query": "etna", "min_relevance": 1.5})
        assert bad.status_code == 422


def test_query_abstains_under_the_threshold_and_answers_over_it(loaded: Any) -> None:
    with loaded.client() as c:
        answered = c.post("/v1/query", json={"question": ETNA}).json()
        assert answered["answer"] != NOT_FOUND and answered["sources"]
        assert answered["sources"][0]["document_id"] == "volcano"
        unrelated = c.post("/v1/query", json={"question": UNRELATED}).json()
        assert unrelated["answer"] == NOT_FOUND and unrelated["sources"] == []
        strict = c.post("/v1/query", json={"question": ETNA, "min_relevance": 1.0}).json()
        assert strict["answer"] == NOT_FOUND and strict["sources"] == []
        lenient = c.post("/v1/query", json={"question": "etna glacier", "min_relevance": 0.0})
        assert len(lenient.json()["sources"]) == 2


def run(c: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/v1/evaluations", json=body)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]

    def finished() -> dict[str, Any] | None:
        out: dict[str, Any] = c.get(f"/v1/evaluations/{run_id}").json()
        return out if out["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(finished, timeout=30)
    assert result["status"] == "completed", result
    return result


def test_evaluation_scores_retrieval_abstention_citations_and_answers(loaded: Any) -> None:
    cases = [
        {"question": ETNA, "expected_document_ids": ["volcano"], "expected_answer": "Mount Etna"},
        {"question": "What do glaciers carve?", "expected_document_ids": ["glacier"]},
        {"question": UNRELATED, "answerable": False},
    ]
    with loaded.client() as c:
        result = run(c, {"cases": cases})
        again = run(c, {"cases": cases})
        stricter = run(c, {"cases": cases, "min_relevance": 1.0})
        missing = c.get("/v1/evaluations/eval_" + "0" * 24)
    agg = result["aggregates"]
    assert (agg["cases"], agg["answerable"], agg["unanswerable"]) == (3, 2, 1)
    assert agg["ndcg@10"] == 1.0 and agg["mrr"] == 1.0 and agg["recall@10"] == 1.0
    assert agg["answered"] == 1.0 and agg["expected_document_in_sources"] == 1.0
    assert agg["abstention_recall"] == 1.0 and agg["abstention_precision"] == 1.0
    assert agg["citation_validity"] == 1.0 and agg["answer_contains_expected"] == 1.0
    first = result["results"][0]
    assert first["ranked_document_ids"][0] == "volcano" and not first["abstained"]
    assert result["results"][2]["abstained"] and result["results"][2]["answer"] == NOT_FOUND
    # The same settings give the same hash; another threshold is another configuration.
    assert result["settings"]["hash"] == again["settings"]["hash"]
    assert stricter["settings"]["min_relevance"] == 1.0
    assert stricter["settings"]["hash"] != result["settings"]["hash"]
    # Only the glacier question has all its terms ("glacier", "carve") in one passage.
    assert stricter["aggregates"]["answered"] == 0.5
    assert missing.status_code == 404

"""Per-case evaluation scores."""

from __future__ import annotations

import math

import pytest

from service.evaluation import metrics


def test_ranking_metrics() -> None:
    ranked = ["a", "b", "c", "d"]
    assert metrics.reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(ranked, {"z"}) == 0.0
    assert metrics.recall_at(ranked, {"a", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert metrics.ndcg_at(ranked, {"a"}) == 1.0
    assert metrics.ndcg_at(ranked, {"b"}) == pytest.approx(1 / math.log2(3))
    assert metrics.ndcg_at(ranked, {"a", "b"}, k=1) == 1.0
    assert metrics.ndcg_at(ranked, set()) == 0.0


def test_answer_metrics_use_squad_normalisation() -> None:
    assert metrics.exact_match("The Normans.", "normans")
    assert not metrics.exact_match("Normans of France", "normans")
    assert metrics.token_f1("the Normans of France", "Normans") == pytest.approx(0.5)  # P 1/3, R 1
    assert metrics.token_f1("", "x") == 0.0
    assert metrics.contains("It was John Myhill's definition [1]", "John Myhill")
    assert not metrics.contains("It was Rollo [1]", "John Myhill")
    assert not metrics.contains("anything", "")


def test_citations_are_valid_only_when_verbatim_in_their_source() -> None:
    sources = {1: "Mount Etna is in   Sicily. It erupts.", 2: "Glaciers carve valleys."}
    assert metrics.citations_valid(
        "Mount Etna is in Sicily. [1] Glaciers carve valleys. [2]", sources
    )
    assert not metrics.citations_valid("Mount Etna is in Spain. [1]", sources)
    assert not metrics.citations_valid("Glaciers carve valleys. [3]", sources)
    assert metrics.citations_valid("No citation at all.", sources)
    assert metrics.cited_spans("A. [1] B [2]") == [(1, "A."), (2, "B")]

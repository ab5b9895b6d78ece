"""The calibrated relevance: scale-free lexical coverage, mapped cosine, their mean."""

from __future__ import annotations

import math

import pytest

from service.query import relevance


def test_lexical_is_the_idf_weighted_share_of_the_question_in_the_chunk() -> None:
    idf = {1: 3.0, 2: 1.0}
    assert relevance.lexical([1, 2], idf, {1, 2, 9}) == pytest.approx(1.0)
    assert relevance.lexical([1, 2], idf, {1}) == pytest.approx(0.75)
    assert relevance.lexical([1, 2], idf, {2}) == pytest.approx(0.25)
    assert relevance.lexical([1, 2], idf, set()) == 0.0
    assert relevance.lexical([], {}, {1}) == 0.0


def test_lexical_does_not_grow_with_the_collection() -> None:
    # The same match in a 10-chunk and a 1M-chunk collection: raw IDF grows, the share does not.
    def idf(n_chunks: int, df: int) -> float:
        return math.log(1 + (n_chunks - df + 0.5) / (df + 0.5))

    small = relevance.lexical([1, 2], {1: idf(10, 1), 2: idf(10, 10)}, {1, 2})
    large = relevance.lexical([1, 2], {1: idf(10**6, 1), 2: idf(10**6, 10**6)}, {1, 2})
    assert small == large == pytest.approx(1.0)


def test_semantic_maps_cosine_linearly_and_clamps() -> None:
    assert relevance.semantic(relevance.DENSE_FLOOR) == 0.0
    assert relevance.semantic(relevance.DENSE_CEILING) == 1.0
    middle = (relevance.DENSE_FLOOR + relevance.DENSE_CEILING) / 2
    assert relevance.semantic(middle) == pytest.approx(0.5)
    assert relevance.semantic(-1.0) == 0.0 and relevance.semantic(1.0) == 1.0


def test_combined_is_the_mean_of_the_legs_present() -> None:
    assert relevance.combined(0.4, None) == pytest.approx(0.4)
    assert relevance.combined(None, relevance.DENSE_CEILING) == pytest.approx(1.0)
    assert relevance.combined(0.4, relevance.DENSE_CEILING) == pytest.approx(0.7)
    assert relevance.combined(None, None) == 0.0

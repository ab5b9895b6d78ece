"""Estimated cost from per-model prices."""

from __future__ import annotations

import pytest

from service.pricing import ModelPrice, estimate_cost

PRICES = {
    "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60),
    "text-embedding-3-small": ModelPrice(embedding=0.02),
}


def test_chat_and_embedding_tokens() -> None:
    cost = estimate_cost(
        "gpt-4o-mini",
        1_000_000,
        500_000,
        2_000_000,
        PRICES,
        embedding_model="text-embedding-3-small",
    )
    assert cost == pytest.approx(0.15 + 0.30 + 0.04)


def test_unknown_model_has_no_cost_unless_nothing_was_spent() -> None:
    assert estimate_cost("mystery", 10, 10, 0, PRICES) is None
    assert estimate_cost("extractive", 0, 0, 0, PRICES) == 0.0
    assert estimate_cost("gpt-4o-mini", 10, 0, 5, PRICES, embedding_model="mystery") is None
    assert estimate_cost("gpt-4o-mini", 0, 0, 5, PRICES) == 0.0  # its embedding price is 0


def test_prices_are_validated() -> None:
    with pytest.raises(ValueError):
        ModelPrice(prompt=-1)

"""Estimated cost of answers and indexing, from per-model prices in US dollars per 1M tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelPrice", "Pricing", "estimate_cost"]

_PER = 1_000_000


class ModelPrice(BaseModel):
    """Prices of one model per 1M tokens, e.g. {"prompt": 0.15, "completion": 0.6}."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)
    embedding: float = Field(default=0.0, ge=0)


def estimate_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    embedding_tokens: int,
    prices: Mapping[str, ModelPrice],
    *,
    embedding_model: str | None = None,
) -> float | None:
    """Dollars for the tokens, or None when some tokens were spent on a model with no price.

    Embedding tokens are priced as `embedding_model`'s (default: `model`'s). Tokens that were
    not spent need no price, so an extractive answer without dense retrieval costs 0.0.
    """
    cost = 0.0
    chat = prices.get(model)
    if prompt_tokens or completion_tokens:
        if chat is None:
            return None
        cost += prompt_tokens * chat.prompt + completion_tokens * chat.completion
    if embedding_tokens:
        embed = prices.get(embedding_model) if embedding_model is not None else chat
        if embed is None:
            return None
        cost += embedding_tokens * embed.embedding
    return cost / _PER


@dataclass(frozen=True)
class Pricing:
    """What this deployment's tokens cost. Work done in-process has no per-token price: models
    in `free_models` (the extractive answerer) and, with `embedding_model` None, embeddings."""

    prices: Mapping[str, ModelPrice]
    embedding_model: str | None
    free_models: frozenset[str] = field(default_factory=frozenset)

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, embedding_tokens: int
    ) -> float | None:
        if model in self.free_models:
            prompt_tokens = completion_tokens = 0
        if self.embedding_model is None:
            embedding_tokens = 0
        return estimate_cost(
            model, prompt_tokens, completion_tokens, embedding_tokens, self.prices,
            embedding_model=self.embedding_model,
        )  # fmt: skip

    def embedding_cost(self, tokens: int) -> float | None:
        """Estimated dollars for indexing `tokens` with the dense embedder."""
        if not tokens or self.embedding_model is None:
            return 0.0
        return estimate_cost(
            self.embedding_model, 0, 0, tokens, self.prices, embedding_model=self.embedding_model
        )

"""Backoff with jitter, shared by the pipeline's in-process retries and the arq job retries."""

from __future__ import annotations

import asyncio
import logging
import random

from service.embeddings.dense import DenseEmbedder, TransientEmbeddingError

log = logging.getLogger("citeline.retry")


def backoff_s(
    attempt: int, *, base: float, cap: float = 60.0, retry_after: float | None = None
) -> float:
    """Delay before retry `attempt` (1-based): base·2^(attempt-1), ±50 % jitter, capped, and
    never shorter than what the server asked for with Retry-After."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap) * random.uniform(0.5, 1.5)
    return float(max(retry_after or 0.0, delay))


async def embed_with_retries(
    dense: DenseEmbedder, texts: list[str], budget_s: float, base_s: float = 0.5
) -> list[list[float]]:
    """Retry transient failures with exponential backoff and jitter inside a time budget;
    raises the last TransientEmbeddingError once the next wait would overrun it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    attempt = 0
    while True:
        try:
            return await dense.embed_documents(texts)
        except TransientEmbeddingError as exc:
            attempt += 1
            wait = backoff_s(attempt, base=base_s, cap=30.0, retry_after=exc.retry_after)
            if loop.time() + wait > deadline:
                raise
            log.warning("embedding.retry", extra={"wait_s": wait, "error": str(exc)})
            await asyncio.sleep(wait)

"""The dense-embedding step of the pipeline: one batch of chunks in, vectors or refusals out.

Transient failures (429, 5xx, timeouts) are retried with `backoff_s` inside a time budget; a
batch that still fails fails every job in it, to be retried as a whole. A permanent refusal of a
batch that mixes documents is narrowed down to the documents the provider refuses, one by one,
so one bad document does not fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.embeddings.dense import (
    DenseEmbedder,
    EmbeddingError,
    PermanentEmbeddingError,
    TransientEmbeddingError,
)
from service.indexing.chunking import Chunk
from service.indexing.units import _Job
from service.telemetry import tracing
from service.upstream import backoff_s

log = logging.getLogger("citeline.pipeline")

Item = tuple[_Job, Chunk]
Contexts = Callable[[Sequence[Item]], list[str]]


def _texts(items: Sequence[Item]) -> list[str]:
    return [c.text for _, c in items]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A job the embedder would not serve, and whether trying again later may help."""

    job: _Job
    error: str
    transient: bool
    retry_after: float | None = None


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


async def embed_items(
    dense: DenseEmbedder, items: list[Item], budget_s: float, texts: Contexts = _texts
) -> tuple[list[Item], list[list[float]], list[Refusal]]:
    """Vectors for `items` (of `texts(items)`): the items kept (in order), their vectors, and
    the refused jobs."""
    with tracing.embedding_span(dense, sum(c.tokens for _, c in items)):
        return await _embed_items(dense, items, budget_s, texts)


async def _embed_items(
    dense: DenseEmbedder, items: list[Item], budget_s: float, texts: Contexts
) -> tuple[list[Item], list[list[float]], list[Refusal]]:
    jobs = list(dict.fromkeys(j for j, _ in items))
    try:
        return items, await embed_with_retries(dense, texts(items), budget_s), []
    except TransientEmbeddingError as exc:
        _log_failure(exc, jobs)
        reason = f"embedding failed after retries: {exc}"
        return [], [], [Refusal(j, reason, True, exc.retry_after) for j in jobs]
    except PermanentEmbeddingError as exc:
        _log_failure(exc, jobs)
        if len(jobs) == 1:
            return [], [], [Refusal(jobs[0], f"embedding failed: {exc}", False)]
    return await _one_by_one(dense, items, jobs, budget_s, texts)


def _log_failure(exc: EmbeddingError, jobs: list[_Job]) -> None:
    """What the embedder said, under the jobs' ids: job errors keep only what failed."""
    log.warning(
        "embedding.failed",
        extra={"jobs": [j.row.job_id for j in jobs], "error": str(exc), "detail": exc.detail},
    )


async def _one_by_one(
    dense: DenseEmbedder, items: list[Item], jobs: list[_Job], budget_s: float, texts: Contexts
) -> tuple[list[Item], list[list[float]], list[Refusal]]:
    """Several documents share the batch and one of them was refused: find which."""
    kept: list[Item] = []
    vectors: list[list[float]] = []
    refused: list[Refusal] = []
    for job in jobs:
        mine = [(j, c) for j, c in items if j is job]
        try:
            vectors += await embed_with_retries(dense, texts(mine), budget_s)
        except PermanentEmbeddingError as exc:
            refused.append(Refusal(job, f"embedding failed: {exc}", False))
            continue
        except TransientEmbeddingError as exc:
            refused.append(Refusal(job, f"embedding failed: {exc}", True, exc.retry_after))
            continue
        kept += mine
    return kept, vectors, refused

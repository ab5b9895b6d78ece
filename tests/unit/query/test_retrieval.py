"""The retriever drops chunks of versions that are no longer live and still returns `limit`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.embeddings.sparse import Bm25Encoder
from service.query.retrieval import Retriever
from service.store.base import Hit, Scope

SCOPE = Scope("t", "c")


def _hit(n: int, version: str) -> Hit:
    return Hit(
        chunk_id=f"c{n}-{version}", document_id=f"d{n}", version=version, chunk_index=0,
        text="granite cliffs", start=0, end=14, score=1.0 / (n + 1), title=None, source=None,
        metadata={},
    )  # fmt: skip


class _Store:
    """Ranks `stale` chunks of old versions first, then live ones; records each limit asked."""

    def __init__(self, stale: int, live: int) -> None:
        self.ranked = [_hit(i, "old") for i in range(stale)]
        self.ranked += [_hit(stale + i, "new") for i in range(live)]
        self.limits: list[int] = []

    def search(
        self, scope: Scope, *, sparse: Any, dense: Any, limit: int, filters: Any
    ) -> list[Hit]:
        self.limits.append(limit)
        return self.ranked[:limit]

    def term_idf(self, scope: Scope, terms: Sequence[int]) -> dict[int, float | None]:
        return {t: 1.0 for t in terms}


class _Registry:
    async def active_versions(self, scope: Scope, ids: Sequence[str]) -> dict[str, str]:
        return dict.fromkeys(ids, "new")


def _retriever(store: _Store) -> Retriever:
    return Retriever(store, Bm25Encoder(), None, _Registry())  # type: ignore[arg-type]


async def test_without_stale_chunks_one_search_of_the_limit_is_enough() -> None:
    store = _Store(stale=0, live=50)
    hits = await _retriever(store).search(SCOPE, "granite cliffs", 10)
    assert [h.document_id for h in hits] == [f"d{i}" for i in range(10)]
    assert store.limits == [10]


async def test_stale_chunks_are_dropped_and_the_search_goes_deeper() -> None:
    store = _Store(stale=12, live=50)
    hits = await _retriever(store).search(SCOPE, "granite cliffs", 10)
    assert [h.document_id for h in hits] == [f"d{i}" for i in range(12, 22)]
    assert all(h.version == "new" for h in hits)
    assert store.limits == [10, 40]


async def test_deepening_is_bounded() -> None:
    store = _Store(stale=1000, live=5)
    hits = await _retriever(store).search(SCOPE, "granite cliffs", 10)
    assert hits == [] and store.limits == [10, 40, 160]

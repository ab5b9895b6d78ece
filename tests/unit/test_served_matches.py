"""Delete-by-filter's scan (`ServedMatches`): a loop of calls, each deleting what the previous
one took, checks about every chunk once (a model of the store's cost), and ends only once
nothing matches, documents indexed meanwhile behind where scans resume included (on a real
Edge store)."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from schemas.filters import ComparisonFilter
from service import served_matches
from service.served_matches import ServedMatches
from service.store import edge
from service.store.base import ChunkPoint, Scope, SparseVector, VersionsPage
from service.store.edge import EdgeStore

SCOPE = Scope("acme", "docs")
RED = ComparisonFilter(type="eq", key="colour", value="red")
PAGE = 8


class Served:
    """The registry's served versions (all the scan asks of it)."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}

    async def active_versions(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        assert scope == SCOPE
        return {d: v for d in document_ids if (v := self.active.get(d)) is not None}


class Scanned:
    """A store's filtered scroll as Qdrant runs it on an unindexed field: from the start
    point on, every chunk is checked in turn until a page of matching ones is full."""

    def __init__(self, chunks: list[tuple[str, str, str]]) -> None:
        self.chunks = sorted(chunks)  # (point id, document id, colour), in point id order
        self.checked = 0

    def document_versions(self, scope: Scope, filters: Any, start: str | None) -> VersionsPage:
        page: list[tuple[str, str, str]] = []
        at = 0 if start is None else bisect.bisect_left(self.chunks, (start,))
        for point, document_id, colour in self.chunks[at:]:
            if len(page) == PAGE:
                return VersionsPage(page, point)
            self.checked += 1
            if colour == "red":
                page.append((point, document_id, "v1"))
        return VersionsPage(page, None)

    def delete_documents(self, scope: Scope, document_ids: Sequence[str]) -> None:
        gone = set(document_ids)
        self.chunks = [c for c in self.chunks if c[1] not in gone]


async def delete_all_red(matches: ServedMatches, store: Any, served: Served) -> list[str]:
    """What a client does: delete by filter, 5 a call, while more match."""
    deleted, more = [], True
    while more:
        taken, more = await matches.take(SCOPE, RED, 5)
        store.delete_documents(SCOPE, taken)
        for d in taken:
            del served.active[d]
        deleted += taken
    return deleted


def colours(red: int, blue: int) -> list[tuple[str, str, str]]:
    """Documents of two chunks each, their points spread at random (ids are hashes)."""
    rng = random.Random(0)
    docs = [(f"red{i}", "red") for i in range(red)] + [(f"blue{i}", "blue") for i in range(blue)]
    return [(f"{rng.getrandbits(64):016x}", d, colour) for d, colour in docs for _ in range(2)]


@pytest.mark.parametrize("resume_max", [served_matches.RESUME_MAX, 0])
async def test_a_delete_loop_checks_each_chunk_about_once(
    resume_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served_matches, "RESUME_MAX", resume_max)
    store, served = Scanned(colours(red=100, blue=300)), Served()
    served.active.update((d, "v1") for _, d, _ in store.chunks)
    total = len(store.chunks)

    deleted = await delete_all_red(ServedMatches(store, served), store, served)  # type: ignore[arg-type]

    assert sorted(deleted) == sorted(f"red{i}" for i in range(100))
    assert len(store.chunks) == 600 and len(served.active) == 300
    # One pass, what each call's last page checked past where it stopped (a page of red
    # chunks, about 3 blue ones each between them), and a last pass over everything (1,534
    # checks here); calls that all start from the first chunk check those before the red
    # ones left again and again (4,723).
    calls = 100 // 5 + 1
    resumed = store.checked <= 2 * total + calls * 4 * PAGE
    assert resumed == (resume_max > 0), store.checked


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdgeStore]:
    monkeypatch.setattr(edge, "_SCROLL_PAGE", 4)
    opened = EdgeStore(tmp_path / "shard")
    yield opened
    opened.close()


def index(store: EdgeStore, served: Served, ids: Sequence[str], colour: str) -> None:
    store.upsert(
        SCOPE,
        [
            ChunkPoint(
                document_id=d, version="v1", chunk_index=0, text=d, start=0, end=len(d),
                sparse=SparseVector([1], [1.0]), metadata={"colour": colour},
            )
            for d in ids
        ],
    )  # fmt: skip
    served.active.update((d, "v1") for d in ids)


def red_from(store: EdgeStore, start: str | None) -> set[str]:
    """The documents with a red chunk from the point `start` on, in the scan's order."""
    page = store.document_versions(SCOPE, RED, start)
    found = {d for _, d, _ in page.chunks}
    while page.next_start is not None:
        page = store.document_versions(SCOPE, RED, page.next_start)
        found |= {d for _, d, _ in page.chunks}
    return found


async def test_documents_indexed_behind_where_scans_resume_are_found_before_no_more(
    store: EdgeStore,
) -> None:
    served = Served()
    index(store, served, [f"red{i}" for i in range(20)], "red")
    index(store, served, [f"blue{i}" for i in range(40)], "blue")
    matches = ServedMatches(store, served)  # type: ignore[arg-type]
    first, more = await matches.take(SCOPE, RED, 5)
    assert more and len(first) == 5
    store.delete_documents(SCOPE, first)
    for d in first:
        del served.active[d]
    (resume_at,) = matches._resume.values()
    late = [f"late{i}" for i in range(20)]
    index(store, served, late, "red")
    behind = red_from(store, None) - red_from(store, resume_at)
    assert behind & set(late), "some must lie where no scan resumes"

    deleted = await delete_all_red(matches, store, served)

    assert sorted(first + deleted) == sorted([f"red{i}" for i in range(20)] + late)
    assert red_from(store, None) == set()

"""EdgeStore specifics: persistence across reopen, concurrent use, maintenance."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from service.store import edge
from service.store.base import Scope, point_id
from service.store.edge import EdgeStore
from tests.unit.store.test_contract import ACME, COMMON, OTHER_TENANT, chunk, query


def test_reopen_after_close_keeps_data_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    store = EdgeStore(path, dense_dim=8)
    store.upsert(ACME, [chunk("doc", i, metadata={"n": i}) for i in range(3)])
    store.upsert(OTHER_TENANT, [chunk("theirs")])
    store.delete_document(ACME, "doc", keep_version="v2")  # deletes must persist too
    store.upsert(ACME, [chunk("doc", i, version="v2", dense=[1.0] * 8) for i in range(2)])
    store.close()

    reopened = EdgeStore(path, dense_dim=8)
    try:
        assert sorted(reopened.chunk_ids(ACME)) == sorted(
            point_id(ACME, "doc", "v2", i) for i in range(2)
        )
        hits = reopened.search(ACME, sparse=query(COMMON), dense=[1.0] * 8)
        assert {(h.version, h.chunk_index) for h in hits} == {("v2", 0), ("v2", 1)}
        assert reopened.chunk_ids(OTHER_TENANT) == [point_id(OTHER_TENANT, "theirs", "v1", 0)]
        assert set(reopened._shard.info().payload_schema) >= {"tenant", "collection"}
    finally:
        reopened.close()


def test_reopen_with_another_dense_size_fails(tmp_path: Path) -> None:
    EdgeStore(tmp_path / "shard", dense_dim=8).close()
    # qdrant_edge raises a bare Exception here; its message is the only distinguishing mark.
    with pytest.raises(Exception, match="incompatible"):
        EdgeStore(tmp_path / "shard", dense_dim=16)


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    store.close()
    store.close()


def test_searches_in_threads_while_another_thread_upserts(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    store.upsert(ACME, [chunk("seed", i, terms={7: 1.0}) for i in range(50)])
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: list[int] = []

    def writer() -> None:
        try:
            for batch in range(10):
                points = [chunk(f"w{batch}", i, terms={7: 1.0}) for i in range(100)]
                store.upsert(ACME, points)
                store.upsert(Scope("other", "docs"), points)
        except BaseException as exc:  # a failure in the thread must fail the test
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                hits = store.search(ACME, sparse=query(7), limit=20)
                assert len(hits) == 20
                seen.append(len(store.chunk_ids(ACME)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors, errors
        assert seen and all(50 <= n <= 1050 for n in seen)
        assert len(store.chunk_ids(ACME)) == 1050
    finally:
        store.close()


class _CountingShard:
    """Delegates to the real shard, counting optimize() calls."""

    def __init__(self, shard: Any) -> None:
        self.shard, self.optimized = shard, 0

    def optimize(self) -> bool:
        self.optimized += 1
        return bool(self.shard.optimize())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)


def test_maintain_compacts_only_after_enough_deletions(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    spy = _CountingShard(store._shard)
    store._shard = spy  # type: ignore[assignment]
    try:
        store.upsert(ACME, [chunk(f"d{i % 40}", i, terms={10 + i % 7: 1.0}) for i in range(4000)])
        store.delete_document(ACME, "d3")  # 100 deleted: not worth a process-wide pause
        store.maintain()
        assert spy.optimized == 0

        for doc in range(4, 14):  # 1000 more: now 1100 deleted of 2900 live
            store.delete_document(ACME, f"d{doc}")
        store.delete_document(ACME, "no-such-doc")
        before = {h.chunk_id: h.score for h in store.search(ACME, sparse=query(12), limit=500)}
        store.maintain()
        assert spy.optimized == 1
        after = {h.chunk_id: h.score for h in store.search(ACME, sparse=query(12), limit=500)}
        assert after == pytest.approx(before) and len(after) > 0
        assert len(store.chunk_ids(ACME)) == 2900

        store.maintain()  # the deletions were compacted: nothing to do
        assert spy.optimized == 1
    finally:
        store.close()


def test_a_compaction_cut_short_is_finished_or_dropped_at_open(tmp_path: Path) -> None:
    """A crash during `compact`: an unfinished copy is dropped (the old shard stands); a
    complete one is swapped in, even half way through the swap. Other entries stay."""
    from service.store import edge_compact
    from service.store.base import ChunkPoint, Scope, SparseVector

    scope = Scope("t", "c")
    point = ChunkPoint("d", "v1", 0, "text", 0, 4, SparseVector([1], [1.0]))
    store = EdgeStore(tmp_path)
    store.upsert(scope, [point])
    (tmp_path / "citeline_embedding.json").write_text("{}")
    store.close()

    (tmp_path / edge_compact.NEW).mkdir()  # a copy that never finished
    (tmp_path / edge_compact.NEW / "segments").mkdir()
    reopened = EdgeStore(tmp_path)
    assert reopened.chunk_ids(scope) and not (tmp_path / edge_compact.NEW).exists()
    edge_compact.copy_live(
        reopened._shard, tmp_path / edge_compact.NEW, edge._config(None), edge._index_fields
    )
    reopened.upsert(scope, [ChunkPoint("later", "v1", 0, "x", 0, 1, SparseVector([1], [1.0]))])
    reopened.close()
    (tmp_path / "segments").rename(tmp_path / "segments-moved-aside")  # a swap half done
    (tmp_path / edge_compact.OLD).mkdir()
    (tmp_path / "segments-moved-aside").rename(tmp_path / edge_compact.OLD / "segments")
    swapped = EdgeStore(tmp_path)
    assert swapped.chunk_ids(scope, "d")  # the complete copy, which holds "d"
    assert (tmp_path / "citeline_embedding.json").exists()
    assert not (tmp_path / edge_compact.NEW).exists() and not (tmp_path / edge_compact.OLD).exists()
    swapped.close()

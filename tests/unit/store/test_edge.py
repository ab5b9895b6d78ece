"""EdgeStore specifics: persistence across reopen, concurrent use, maintenance."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from service.store import edge, edge_optimize
from service.store.base import Scope, StoreError, point_id
from service.store.edge import EdgeStore
from tests.conftest import wait_until
from tests.unit.store.test_contract import ACME, COMMON, OTHER_TENANT, chunk, query


def test_reopen_after_close_keeps_data_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    store = EdgeStore(path, dense_dim=8)
    store.upsert(ACME, [chunk("doc", i, metadata={"n": i}) for i in range(3)])
    store.upsert(OTHER_TENANT, [chunk("theirs")])
    store.delete_documents(ACME, ["doc"], keep_version="v2")  # deletes must persist too
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


def _bulk(store: EdgeStore, n: int, docs: int = 40) -> None:
    store.upsert(ACME, [chunk(f"d{i % docs}", i, terms={10 + i % 7: 1.0}) for i in range(n)])


def test_maintain_rebuilds_in_a_child_process_once_enough_changed(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    spy = _CountingShard(store._shard)
    store._shard = spy  # type: ignore[assignment]
    try:
        _bulk(store, 4000)
        store.maintain()  # 4,000 written: under the threshold, nothing to do
        assert store._shard is spy

        _bulk(store, 2000)  # 6,000 changes now (the same 2,000 points written twice)
        store.delete_documents(ACME, ["d3"])
        before = {h.chunk_id: h.score for h in store.search(ACME, sparse=query(12), limit=1000)}
        ids = sorted(store.chunk_ids(ACME))
        store.maintain()
        assert store._shard is not spy  # swapped for the optimised copy...
        assert spy.optimized == 0  # ...which was optimised in another process
        after = {h.chunk_id: h.score for h in store.search(ACME, sparse=query(12), limit=1000)}
        assert after == pytest.approx(before) and len(after) > 0
        assert sorted(store.chunk_ids(ACME)) == ids and len(ids) == 3900
        assert not (tmp_path / "shard" / edge_optimize.NEW).exists()

        current = store._shard
        store.maintain()  # nothing changed since: nothing to do
        assert store._shard is current
    finally:
        store.close()
    reopened = EdgeStore(tmp_path / "shard")
    try:
        assert sorted(reopened.chunk_ids(ACME)) == ids
    finally:
        reopened.close()


def test_writes_while_the_copy_is_optimised_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upserts, deletes and a re-upsert of a deleted document, made while the child runs,
    all reach the shard that is swapped in."""
    go = tmp_path / "go"
    real = edge_optimize.child_command

    def held_child(copy: Path, dense_dim: int | None, rewrite: bool) -> list[str]:
        wait = (
            f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)"
        )
        command = real(copy, dense_dim, rewrite)
        return [command[0], "-c", f"{wait}\nimport runpy, sys\nsys.argv = {command[2:]!r}\n"
                "runpy.run_module('service.store.edge_optimize', run_name='__main__')"]  # fmt: skip

    monkeypatch.setattr(edge_optimize, "child_command", held_child)
    store = EdgeStore(tmp_path / "shard")
    errors: list[BaseException] = []

    def maintain() -> None:
        try:
            store.maintain()
        except BaseException as exc:
            errors.append(exc)

    try:
        _bulk(store, 6000)
        runner = threading.Thread(target=maintain)
        runner.start()
        wait_until(lambda: store._log is not None, timeout=30)  # files copied, child waiting
        store.upsert(ACME, [chunk("late", i, terms={99: 1.0}) for i in range(50)])
        store.delete_documents(ACME, ["d1", "d2"])  # one filter, on both ids, to replay
        store.upsert(ACME, [chunk("d2", i, version="v9", terms={98: 1.0}) for i in range(3)])
        expected = sorted(store.chunk_ids(ACME))
        old = store._shard
        go.touch()
        runner.join(timeout=120)
        assert not runner.is_alive() and not errors, errors
        assert store._shard is not old
        assert sorted(store.chunk_ids(ACME)) == expected
        assert len(store.search(ACME, sparse=query(99), limit=100)) == 50
        assert {h.version for h in store.search(ACME, sparse=query(98), limit=10)} == {"v9"}
        assert store._log is None
        # The deletes replayed into the copy left it holding deleted points: once writes pause,
        # it is rebuilt again without them, although far fewer than 1,000 points changed.
        assert not (tmp_path / "shard" / edge.IDF_EXACT).exists()
        monkeypatch.setattr(edge_optimize, "child_command", real)
        rebuilt = store._shard
        store.maintain()  # changed since the previous call: writes may still be going on
        assert store._shard is rebuilt
        store.maintain()
        assert store._shard is not rebuilt and (tmp_path / "shard" / edge.IDF_EXACT).exists()
        assert sorted(store.chunk_ids(ACME)) == expected
    finally:
        store.close()


def test_a_failed_child_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = [sys.executable, "-c", "import sys; sys.exit('no optimising today')"]
    monkeypatch.setattr(edge_optimize, "child_command", lambda copy, dim, rewrite: failing)
    store = EdgeStore(tmp_path / "shard")
    try:
        _bulk(store, 6000)
        old = store._shard
        with pytest.raises(StoreError, match="optimising a copy"):
            store.maintain()
        assert store._shard is old and store._log is None
        assert not (tmp_path / "shard" / edge_optimize.NEW).exists()
        _bulk(store, 10)  # still writable
        assert len(store.chunk_ids(ACME)) == 6000
    finally:
        store.close()


def test_close_gives_up_a_maintain_run_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forever = [sys.executable, "-c", "import time; time.sleep(600)"]
    monkeypatch.setattr(edge_optimize, "child_command", lambda copy, dim, rewrite: forever)
    store = EdgeStore(tmp_path / "shard")
    _bulk(store, 6000)
    errors: list[BaseException] = []

    def maintain() -> None:
        try:
            store.maintain()
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=maintain)
    runner.start()
    wait_until(lambda: store._log is not None, timeout=30)
    store.close()  # returns once the run has given up (the child is killed)
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert [type(e) for e in errors] == [edge.MaintenanceStopped]
    reopened = EdgeStore(tmp_path / "shard")  # the old shard stands; the copy is dropped
    try:
        assert len(reopened.chunk_ids(ACME)) == 6000
        assert not (tmp_path / "shard" / edge_optimize.NEW).exists()
    finally:
        reopened.close()


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
        reopened._shard, tmp_path / edge_compact.NEW, edge.edge_config(None), edge.index_fields
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


# The IDF corpus (see edge_census): with every chunk in one scope, or in one collection, the
# search skips the scope filter on IDF. Each case compares scores and IDF with a fresh store
# holding only the searched scope's live chunks: what the filtered corpus gives.
def _acme_chunks() -> list[Any]:
    return [chunk(f"d{i}", terms={5: 1.0} if i % 3 else {6: 1.0}) for i in range(12)]


def _scores(store: EdgeStore) -> tuple[list[tuple[str, float]], dict[int, float | None]]:
    hits = store.search(ACME, sparse=query(5, 6, COMMON), limit=20)
    return sorted((h.document_id, round(h.score, 5)) for h in hits), store.term_idf(ACME, [5, 6])


def _reference(tmp_path: Path, keep: list[Any]) -> Any:
    fresh = EdgeStore(tmp_path / "reference")
    try:
        fresh.upsert(ACME, keep)
        return _scores(fresh)
    finally:
        fresh.close()


def test_idf_over_the_scope_with_other_tenants_in_the_same_collection(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    store.upsert(ACME, _acme_chunks())
    store.upsert(OTHER_TENANT, [chunk(f"x{i}", terms={5: 1.0}) for i in range(30)])
    assert _scores(store) == _reference(tmp_path, _acme_chunks())
    store.close()


def test_idf_ignores_deleted_chunks_until_and_after_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    store = EdgeStore(path)
    assert (path / edge.IDF_EXACT).exists()  # a new shard holds no deleted point
    store.upsert(ACME, _acme_chunks())
    for i in range(6):
        store.delete_documents(ACME, [f"d{i}"])
    assert not (path / edge.IDF_EXACT).exists()
    expected = _reference(tmp_path, _acme_chunks()[6:])
    assert _scores(store) == expected  # the engine's unfiltered counts still hold d0-d5

    store.close()
    store = EdgeStore(path)  # nor does a reopen forget it
    assert _scores(store) == expected
    store.compact()
    assert (path / edge.IDF_EXACT).exists()
    assert _scores(store) == expected
    store.close()


def test_idf_after_a_deleted_tenant_and_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    store = EdgeStore(path)
    store.upsert(ACME, _acme_chunks())
    store.upsert(OTHER_TENANT, [chunk(f"x{i}", terms={5: 1.0, 6: 1.0}) for i in range(30)])
    store.delete_collection(OTHER_TENANT)
    store.close()
    store = EdgeStore(path)
    assert _scores(store) == _reference(tmp_path, _acme_chunks())
    store.close()


def test_deleted_points_earn_a_rebuild_under_the_threshold_once_writes_pause(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shard"
    store = EdgeStore(path)
    try:
        _bulk(store, 3000)  # under the threshold, and nothing deleted: never worth a rebuild
        store.maintain()
        store.maintain()
        assert (path / edge.IDF_EXACT).exists()
        first = store._shard
        store.delete_documents(ACME, ["d3"])  # now the shard holds deleted points
        store.maintain()  # something changed since the previous call: writes may go on
        assert store._shard is first and not (path / edge.IDF_EXACT).exists()
        store.maintain()  # nothing since: rebuilt without them
        assert store._shard is not first and (path / edge.IDF_EXACT).exists()
        assert store.chunk_count(ACME) == 3000 - 75
        rebuilt = store._shard
        store.maintain()
        store.maintain()
        assert store._shard is rebuilt
    finally:
        store.close()


def test_a_rebuild_after_deletes_rewrites_the_copy_so_idf_is_exact_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, rewrites = edge_optimize.child_command, []

    def recorded(copy: Path, dense_dim: int | None, rewrite: bool) -> list[str]:
        rewrites.append(rewrite)
        return real(copy, dense_dim, rewrite)

    monkeypatch.setattr(edge_optimize, "child_command", recorded)
    path = tmp_path / "shard"
    store = EdgeStore(path)
    _bulk(store, 6000)
    store.delete_documents(ACME, ["d3"])
    store.maintain()
    assert rewrites == [True] and (path / edge.IDF_EXACT).exists()
    live = [chunk(f"d{i % 40}", i, terms={10 + i % 7: 1.0}) for i in range(6000) if i % 40 != 3]
    fresh = EdgeStore(tmp_path / "reference")
    fresh.upsert(ACME, live)
    assert store.chunk_count(ACME) == fresh.chunk_count(ACME) == 5850
    got = sorted(
        (h.chunk_id, round(h.score, 5))
        for h in store.search(ACME, sparse=query(12, 13), limit=2000)
    )
    want = sorted(
        (h.chunk_id, round(h.score, 5))
        for h in fresh.search(ACME, sparse=query(12, 13), limit=2000)
    )
    assert got == want and store.term_idf(ACME, [12, 13]) == pytest.approx(
        fresh.term_idf(ACME, [12, 13])
    )
    _bulk(store, 6000)  # no delete since: the next rebuild needs no rewrite
    store.maintain()
    assert rewrites == [True, False]
    store.close()
    fresh.close()

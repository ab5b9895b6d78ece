"""EdgeStore specifics: persistence across reopen, concurrent use, maintenance."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

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
            for batch in range(20):
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
        assert seen and all(50 <= n <= 2050 for n in seen)
        assert len(store.chunk_ids(ACME)) == 2050
    finally:
        store.close()


def test_maintain_keeps_results(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard")
    try:
        store.upsert(ACME, [chunk(f"d{i}", terms={10 + i % 7: 1.0}) for i in range(500)])
        store.delete_document(ACME, "d3")
        before = [(h.chunk_id, h.score) for h in store.search(ACME, sparse=query(12), limit=100)]
        store.maintain()
        store.maintain()  # nothing left to do: must be quick and harmless
        after = [(h.chunk_id, h.score) for h in store.search(ACME, sparse=query(12), limit=100)]
        assert dict(after) == pytest.approx(dict(before))
        assert len(after) == len(before) > 0
        assert len(store.chunk_ids(ACME)) == 499
    finally:
        store.close()

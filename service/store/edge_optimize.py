"""Optimising a Qdrant Edge shard without stopping the process that serves it.

`EdgeShard.optimize()` holds the GIL for its whole run (80-120 us per point: 8-12 s at 100k
BM25 points, minutes with dense vectors), so run in the serving process it freezes every
request. Yet a shard that a long ingestion wrote answers searches several times slower than
the same data reopened or optimised (100k BM25 chunks, measured here: p50 33 ms as written, 9 ms
reopened, 8.5 ms optimised). So `EdgeStore.maintain` does it elsewhere:

1. writers wait while the shard is flushed and its files copied to `NEW` (readers go on);
   from then on the store logs which point ids it writes and which filters it deletes by;
2. a child process (`python -m service.store.edge_optimize NEW DENSE_DIM [rewrite]`) loads
   the copy, optimises it and flushes it (its exit status says whether it did); with
   `rewrite` (the shard held deleted points) it first rewrites the copy with its live points
   only, as a compaction does, since `optimize()` vacuums a segment only past Qdrant's
   thresholds and BM25 statistics over the whole shard count deleted points (`edge_census`);
3. the store opens the optimised copy and replays the log into it from its own shard, in
   rounds while writes go on, the last round with writers held; only then is the copy marked
   `edge_compact.COMPLETE` and swapped in with `edge_compact`'s crash-safe swap.

A crash before the copy is marked complete leaves the old shard standing (the copy is
dropped at the next open); after, the copy holds every write and the swap is finished at the
next open, as for a compaction.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from service.store import edge_compact

NEW = ".optimize-new"  # a dot: never a model slug (see `naming`)
_PAGE = 256


@dataclass
class WriteLog:
    """What was written to the serving shard since its files were copied: enough to bring the
    copy to the same state, since the serving shard itself holds the points' current values."""

    ids: set[Any] = field(default_factory=set)
    deletes: list[qe.Filter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids) + len(self.deletes)


def replay(log: WriteLog, retrieve: Callable[[list[Any]], list[qe.Record]], copy: Any) -> None:
    """Make `copy` agree with the serving shard on everything `log` names: deletes by filter
    in their order, then each logged id as it is now (upserted if present, else deleted)."""
    for flt in log.deletes:
        copy.update(qe.UpdateOperation.delete_points_by_filter(flt))
    ids = list(log.ids)
    for start in range(0, len(ids), _PAGE):
        page = ids[start : start + _PAGE]
        records = retrieve(page)
        present = {str(r.id) for r in records}
        gone = [i for i in page if str(i) not in present]
        if records:
            points = [qe.Point(r.id, r.vector or {}, r.payload) for r in records]
            copy.update(qe.UpdateOperation.upsert_points(points))
        if gone:
            copy.update(qe.UpdateOperation.delete_points(gone))


def child_command(copy: Path, dense_dim: int | None, rewrite: bool) -> list[str]:
    command = [sys.executable, "-m", "service.store.edge_optimize", str(copy), str(dense_dim or 0)]
    return [*command, "rewrite"] if rewrite else command


# Edge's own entries in a shard directory; the rest (model shards, the embedding record) is
# not the shard's.
EDGE_ENTRIES = ("edge_config.json", "segments", "wal")


def copy_shard_files(source: Path, target: Path) -> None:
    """Copy a flushed shard's files (nothing may write them meanwhile)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in EDGE_ENTRIES:
        entry = source / name
        if entry.is_dir():
            shutil.copytree(entry, target / name)
        elif entry.exists():
            shutil.copy2(entry, target / name)


def main(argv: list[str]) -> int:
    """The child: optimise the copy at argv[1] (dense size argv[2], 0 for none), rewritten
    with its live points first when argv[3] is `rewrite`."""
    # The store's own config and indexes, not a second copy of them.
    from service.store.edge import edge_config, index_fields

    # The serving process comes first: at the lowest priority the child takes what searches
    # leave idle. Hybrid 100k, searches during a rewrite-and-optimise child on 2 cores, p50/p99:
    # 17.8/42.6 ms at nice 10, 14.7/24.6 ms at nice 19 (12.4/20.7 with no child), child 149 vs
    # 154 s.
    os.nice(19)
    copy, config = Path(argv[1]), edge_config(int(argv[2]) or None)
    shard = qe.EdgeShard.load(str(copy), config)
    if argv[3:] == ["rewrite"]:
        try:
            edge_compact.copy_live(shard, copy / edge_compact.NEW, config, index_fields)
        finally:
            shard.close()
        edge_compact.swap_in(copy)
        shard = qe.EdgeShard.load(str(copy), config)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

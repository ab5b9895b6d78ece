"""Compaction of a Qdrant Edge shard by rewriting it: only live points survive, on disk too.

Deleting points only marks them; `optimize()` vacuums a segment only past Qdrant's thresholds
(1000 vectors, 20 % deleted) and the write-ahead log keeps every upsert, text included, until
its 32 MB segment is recycled. So a deleted document's text stays in the shard directory.
`rewrite` copies the live points into a new shard beside the old one, then swaps Edge's own
entries (`edge_config.json`, `segments`, `wal`, ...) in; other entries of the directory (the
embedding record, the shards of other models) are left alone.

A crash at any step leaves either the old shard (the copy is incomplete: it is deleted at the
next open) or a complete copy marked `COMPLETE` (the swap is finished at the next open).
Cost: every point is read and written once; the caller holds off other use of the shard.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qdrant_edge as qe

NEW = ".compact-new"  # a dot: never a model slug (see `naming`)
OLD = ".compact-old"
COMPLETE = "COMPLETE"
_PAGE = 512


def copy_live(
    shard: qe.EdgeShard, target: Path, config: qe.EdgeConfig, prepare: Callable[[Any], None]
) -> None:
    """Write every point of `shard` into a new shard at `target`, then mark it complete."""
    shutil.rmtree(target, ignore_errors=True)
    copy = qe.EdgeShard.create(str(target), config)
    try:
        prepare(copy)
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=_PAGE, with_payload=True, with_vector=True
            )
            records, offset = shard.scroll(request)
            points = [qe.Point(r.id, r.vector or {}, r.payload) for r in records]
            if points:
                copy.update(qe.UpdateOperation.upsert_points(points))
            if offset is None:
                break
        copy.flush()
    finally:
        copy.close()
    (target / COMPLETE).touch()


def swap_in(path: Path, name: str = NEW) -> None:
    """Put the entries of the complete copy `path/name` in place of the old shard's
    (idempotent); drop a copy that is not complete."""
    new, old = path / name, path / OLD
    if not (new / COMPLETE).exists():
        shutil.rmtree(new, ignore_errors=True)  # an unfinished copy: the old shard stands
        shutil.rmtree(old, ignore_errors=True)
        return
    old.mkdir(exist_ok=True)
    for entry in [e for e in new.iterdir() if e.name != COMPLETE]:
        current = path / entry.name
        if current.exists():
            current.rename(old / entry.name)
        entry.rename(current)
    stale = path / "temp_segments"  # the optimizer's scratch space belongs to the old shard
    if stale.exists():
        stale.rename(old / "temp_segments.old")
    shutil.rmtree(new)
    shutil.rmtree(old)

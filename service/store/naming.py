"""Physical collections: one per embedding model, each recording the model it was built with.

Vectors of two embedding models live in unrelated spaces (even at the same dimension), so each
(model, dimension) gets its own physical collection:

    dense retrieval off      <data_dir>/qdrant-edge           <qdrant_collection>
    model M, dimension D     <data_dir>/qdrant-edge/<slug>    <qdrant_collection>__<slug>

with slug = M lower-cased to [a-z0-9-], D, and 8 hex digits of BLAKE2b(M), for instance
`all-minilm-l6-v2-384d-3a0d9bd6`: readable, and distinct for names that fold to the same text.
The BM25-only names are the ones used before models were recorded, so that data keeps working;
Edge's own entries in a shard directory (`wal`, `segments`, `edge_config.json`) can never be a
slug, so model shards sit safely inside the BM25-only one.

Each physical collection also records its model and dimension, and opening it for another one
raises `EmbeddingMismatchError` naming the settings, instead of answering queries with vectors
from another space:

- Edge: `citeline_embedding.json` inside the shard directory, written once it is open.
- Qdrant server: the collection's `metadata` (Qdrant >= 1.16; qdrant-client 1.20 has it, and
  so does its local mode), given at creation. Metadata is shown by every collection-info call
  and touches no query; a marker point would have to be kept out of every search, scroll and
  count, and a name cannot hold an arbitrary model name.

A collection made before records existed is checked by its dense vector size and then adopted:
the record is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.store.base import DENSE_VECTOR

if TYPE_CHECKING:
    from service.store.edge import EdgeStore

EDGE_DIR = "qdrant-edge"
RECORD_FILE = "citeline_embedding.json"
_EDGE_CONFIG = "edge_config.json"  # Qdrant Edge's own file in a shard directory
_MODEL_KEY = "citeline_embedding_model"
_DIMENSION_KEY = "citeline_embedding_dimension"
_SETTINGS = "CITELINE_EMBEDDING_MODEL / CITELINE_EMBEDDING_DIMENSION"


class EmbeddingMismatchError(ValueError):
    """A physical collection was built with another embedding model or dimension."""


@dataclass(frozen=True, slots=True)
class EmbeddingRecord:
    """The dense model a physical collection holds vectors of; both None for BM25 only."""

    model: str | None
    dimension: int | None

    def __post_init__(self) -> None:
        if (self.model is None) != (self.dimension is None):
            raise ValueError("model and dimension are given together or not at all")
        if self.dimension is not None and self.dimension < 1:
            raise ValueError(f"dimension must be positive, got {self.dimension}")

    def metadata(self) -> dict[str, Any]:
        return {_MODEL_KEY: self.model, _DIMENSION_KEY: self.dimension}

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any] | None) -> EmbeddingRecord | None:
        """The record in `data`, or None when it holds none; ValueError when it is malformed."""
        if not data or _MODEL_KEY not in data:
            return None
        model, dimension = data[_MODEL_KEY], data.get(_DIMENSION_KEY)
        if not (model is None or isinstance(model, str)) or not (
            dimension is None or (isinstance(dimension, int) and not isinstance(dimension, bool))
        ):
            raise ValueError(f"malformed embedding record: {dict(data)!r}")
        return cls(model, dimension)

    def describe(self) -> str:
        if self.model is None:
            return "no embedding model (BM25 only)"
        return f"embedding model {self.model!r} ({self.dimension} dimensions)"


def slug(model: str, dimension: int) -> str:
    """The name part of (model, dimension)'s physical collection; [a-z0-9-] only."""
    readable = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:48].strip("-") or "model"
    digest = hashlib.blake2b(model.encode(), digest_size=4).hexdigest()
    return f"{readable}-{dimension}d-{digest}"


def edge_shard_path(data_dir: Path, record: EmbeddingRecord) -> Path:
    root = data_dir / EDGE_DIR
    if record.model is None or record.dimension is None:
        return root
    return root / slug(record.model, record.dimension)


def server_collection(base: str, record: EmbeddingRecord) -> str:
    if record.model is None or record.dimension is None:
        return base
    return f"{base}__{slug(record.model, record.dimension)}"


def check_recorded(
    where: str, recorded: Mapping[str, Any] | None, dense_size: int | None, want: EmbeddingRecord
) -> bool:
    """Whether `where` already records `want`: True if so, False if it records nothing and its
    dense size agrees (adopt it); EmbeddingMismatchError if it belongs to another model."""
    try:
        have = EmbeddingRecord.from_metadata(recorded)
    except ValueError as exc:
        raise EmbeddingMismatchError(f"{where}: {exc}; cannot tell which model built it") from None
    if have is None and dense_size == want.dimension:
        return False
    if have == want:
        return True
    found = (
        have.describe()
        if have is not None
        else f"{dense_size}-dimensional vectors of an unrecorded embedding model"
        if dense_size is not None
        else "no dense vectors"
    )
    raise EmbeddingMismatchError(
        f"{where} holds {found}, but the service is configured for {want.describe()} "
        f"({_SETTINGS}). Vectors of different models cannot be searched together: set "
        f"{_SETTINGS} back to the collection's, or point the service at another collection "
        "and index the documents again"
    )


def open_edge_store(data_dir: Path, record: EmbeddingRecord) -> EdgeStore:
    """The Edge shard for `record` under `data_dir`, checked against (or given) its record."""
    from service.store.edge import EdgeStore

    path = edge_shard_path(data_dir, record)
    recorded: bool | None = None  # None: a new shard
    if (path / _EDGE_CONFIG).exists():
        where = f"Qdrant Edge shard {path}"
        recorded = check_recorded(where, _read_json(path / RECORD_FILE), _edge_dense_size(path),
                                  record)  # fmt: skip
    store = EdgeStore(path, dense_dim=record.dimension)
    if not recorded:
        _write_json(path / RECORD_FILE, record.metadata())
    return store


def _edge_dense_size(path: Path) -> int | None:
    """The dense vector size in Edge's own config file (None without a dense vector)."""
    config = _read_json(path / _EDGE_CONFIG) or {}
    dense = (config.get("vectors") or {}).get(DENSE_VECTOR) or {}
    size = dense.get("size")
    return size if isinstance(size, int) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EmbeddingMismatchError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` to `path` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(dict(data), f, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

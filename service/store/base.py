"""The vector-store contract: every read and write is scoped to one tenant and collection.

Errors: a store raises `StoreError` when its engine or server fails (a refused write, an
unreachable server, a timeout); input it cannot take (a malformed vector) is a ValueError.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from schemas.filters import Filter

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
# Hybrid fusion: weighted reciprocal rank fusion of the sparse (BM25) and dense legs. Qdrant
# scores a hit at 0-based rank r in a leg of weight w as 1 / (k + (r + 1) / w - 1). On
# squad2-dev (per-leg rankings from `make eval`'s data, fused offline) k=2 with the dense leg at
# half weight gave nDCG@10 0.912, against 0.902 for BM25 alone, 0.809 for local MiniLM alone
# and 0.895 for plain RRF (k=60, equal weights); a low k trusts each leg's first hits.
RRF_K = 2
RRF_WEIGHTS = (1.0, 0.5)  # sparse, dense: the order of the prefetches

# Payload fields the store filters on; each gets a keyword payload index.
INDEXED_FIELDS = ("tenant", "collection", "document_id", "version")

_POINT_NAMESPACE = uuid.UUID("6f1c2b0e-3f7e-4d51-9a57-2c1e4b8f0a11")
_MIN_PREFETCH = 50


class StoreError(Exception):
    """The store's engine or server failed; the operation may succeed later."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data an operation touches. There is no unscoped read or write."""

    tenant: str
    collection: str


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]
    values: list[float]


def point_id(scope: Scope, document_id: str, version: str, chunk_index: int) -> str:
    """Deterministic point id: the same document version and chunk always map to the same id."""
    key = f"{scope.tenant}\x1f{scope.collection}\x1f{document_id}\x1f{version}\x1f{chunk_index}"
    return str(uuid.uuid5(_POINT_NAMESPACE, key))


@dataclass(slots=True)
class ChunkPoint:
    """One chunk to write: its text, exact span in the document, and its vectors."""

    document_id: str
    version: str
    chunk_index: int
    text: str
    start: int
    end: int
    sparse: SparseVector
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    dense: list[float] | None = None
    page: int | None = None  # files: 1-based page (slide) the chunk starts on
    page_end: int | None = None  # the last page, when it spans pages
    page_label: str | None = None  # the printed label of `page`, where the file has them
    section: str | None = None  # heading path, e.g. "5. Basics › 5.6 debian/rules"
    start_utf16: int | None = None  # the span in UTF-16 code units (JavaScript indices)
    end_utf16: int | None = None


# Where a chunk stands in its file, and its span in UTF-16 units: stored only when set.
PLACE_FIELDS = ("page", "page_end", "page_label", "section", "start_utf16", "end_utf16")


@dataclass(slots=True)
class Hit:
    """One retrieved chunk."""

    chunk_id: str
    document_id: str
    version: str
    chunk_index: int
    text: str
    start: int
    end: int
    score: float
    title: str | None
    source: str | None
    metadata: dict[str, Any]
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    section: str | None = None
    start_utf16: int | None = None
    end_utf16: int | None = None
    # The chunk's sparse term ids (its stored BM25 vector's indices), when the store returned it.
    terms: frozenset[int] | None = None
    # Cosine similarity of the chunk to the dense query, when the search had one (any mode).
    similarity: float | None = None
    # The calibrated relevance in [0, 1] the retriever gives it (see service.query.relevance).
    relevance: float | None = None


@dataclass(frozen=True, slots=True)
class VersionsPage:
    """A page of a scan over chunks, in point id order: each chunk's (point id, document id,
    version); and where the next page starts (None after the last)."""

    chunks: list[tuple[str, str, str]]
    next_start: str | None


class VectorStore(Protocol):
    """Synchronous store contract; callers run it off the event loop where it may block.

    The store adds the tenant/collection filter itself. Writes are idempotent: upserting the
    same points twice leaves one copy of each.
    """

    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None: ...

    def search(
        self,
        scope: Scope,
        *,
        sparse: SparseVector | None,
        dense: Sequence[float] | None = None,
        limit: int = 10,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """Top `limit` chunks; sparse and dense prefetches fused with RRF when both are given."""
        ...

    def term_idf(self, scope: Scope, terms: Sequence[int]) -> dict[int, float | None]:
        """The engine's IDF of each sparse term over the scope's chunks (the weight its BM25
        scores use); None for a term no chunk holds."""
        ...

    def chunk_count(self, scope: Scope) -> int:
        """How many chunks the scope holds (BM25's N)."""
        ...

    def delete_documents(
        self, scope: Scope, document_ids: Sequence[str], *, keep_version: str | None = None
    ) -> None:
        """Delete the documents' chunks, all of them or all but those of `keep_version`, in
        one call."""
        ...

    def delete_collection(self, scope: Scope) -> None:
        """Delete every chunk of the scope."""
        ...

    def chunk_ids(self, scope: Scope, document_id: str | None = None) -> list[str]:
        """Ids of every stored chunk in scope (of one document when given)."""
        ...

    def document_versions(
        self, scope: Scope, filters: Filter | None, start: str | None = None
    ) -> VersionsPage:
        """One page of the chunks in scope that match `filters`, in point id order from the
        point `start` on (a point deleted since may be named): which document versions they
        belong to. A document's chunks may lie on several pages, and be of several versions
        (a superseded one may still be stored for a moment)."""
        ...

    def maintain(self) -> None:
        """Background index maintenance (segment optimisation); never on a request path."""
        ...

    def snapshot(self, target: Path) -> None:
        """A consistent copy of the stored chunks into the new directory `target`, for backups;
        the caller pauses writes meanwhile (reads may go on)."""
        ...

    def compact(self) -> None:
        """Remove deleted points from storage for good, so no trace of a deleted document's
        text stays on disk. May block the store for a while: run it off the request path,
        when its cost is acceptable (the caller decides when)."""
        ...

    def close(self) -> None: ...


def chunk_payload(scope: Scope, point: ChunkPoint) -> dict[str, Any]:
    """The payload both backends store for a chunk; `metadata` stays nested for filters."""
    place = {k: v for k in PLACE_FIELDS if (v := getattr(point, k)) is not None}
    return {
        **place,
        "tenant": scope.tenant,
        "collection": scope.collection,
        "document_id": point.document_id,
        "version": point.version,
        "chunk_index": point.chunk_index,
        "text": point.text,
        "start": point.start,
        "end": point.end,
        "title": point.title,
        "source": point.source,
        "metadata": point.metadata,
    }


def versions_page(chunks: Iterable[tuple[Any, dict[str, Any]]], next_start: Any) -> VersionsPage:
    """The page of (point id, payload) pairs, in point id order; each payload holds at least
    `document_id` and `version`."""
    versions = [(str(pid), p["document_id"], p["version"]) for pid, p in chunks]
    return VersionsPage(versions, None if next_start is None else str(next_start))


def all_ids(page: Callable[[Any], tuple[Sequence[Any], Any]]) -> list[str]:
    """Every point id a scan yields, `page(start)` returning (records, next start or None)."""
    out: list[str] = []
    records, start = page(None)
    while True:
        out.extend(str(r.id) for r in records)
        if start is None:
            return out
        records, start = page(start)


def idf(chunks: int, with_term: int) -> float:
    """BM25's IDF as Qdrant's IDF modifier computes it: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    return math.log(1.0 + (chunks - with_term + 0.5) / (with_term + 0.5))


def probed_idf(term: int, score: float, indices: Sequence[int], values: Sequence[float]) -> float:
    """A term's IDF from a one-term probe (query weight 1.0): the engine scored the point
    idf * weight, and the point's stored sparse vector (`indices`, `values`) holds the weight."""
    weight = dict(zip(indices, values, strict=True)).get(term, 0.0)
    if weight <= 0:
        raise ValueError(f"the probed point does not hold term {term}")
    return score / weight


def hits_with_evidence(
    found: Sequence[tuple[str, float, dict[str, Any]]],
    sparse_terms: Sequence[Sequence[int] | None],
    dense_query: Sequence[float] | None,
    fused: bool,
    dense_vectors: Callable[[], Sequence[Sequence[float] | None]],
) -> list[Hit]:
    """Hits from (id, score, payload), with what relevance is judged on: each hit's stored
    sparse terms and, with a dense query, its cosine (the score itself when dense alone ran)."""
    hits = [hit_from_payload(pid, score, payload) for pid, score, payload in found]
    for hit, terms in zip(hits, sparse_terms, strict=True):
        if terms is not None:
            hit.terms = frozenset(terms)
    if dense_query is not None:
        sims: list[float | None] = (
            cosines(dense_query, dense_vectors()) if fused else [h.score for h in hits]
        )
        for hit, sim in zip(hits, sims, strict=True):
            hit.similarity = sim
    return hits


def cosines(
    query: Sequence[float], vectors: Sequence[Sequence[float] | None]
) -> list[float | None]:
    """Cosine similarity of `query` to each of `vectors` (None for a missing vector, 0 for an
    all-zero one)."""
    q = np.asarray(query, dtype=np.float64)
    q_norm = float(np.linalg.norm(q))
    out: list[float | None] = []
    for v in vectors:
        if v is None:
            out.append(None)
            continue
        m = np.asarray(v, dtype=np.float64)
        norm = float(np.linalg.norm(m)) * q_norm
        out.append(float(m @ q) / norm if norm > 0 else 0.0)
    return out


def hit_from_payload(chunk_id: str, score: float, payload: dict[str, Any]) -> Hit:
    """A `Hit` from a stored payload (see `chunk_payload`)."""
    return Hit(
        chunk_id=chunk_id,
        document_id=payload["document_id"],
        version=payload["version"],
        chunk_index=payload["chunk_index"],
        text=payload["text"],
        start=payload["start"],
        end=payload["end"],
        score=score,
        title=payload.get("title"),
        source=payload.get("source"),
        metadata=payload.get("metadata") or {},
        page=payload.get("page"),
        page_end=payload.get("page_end"),
        page_label=payload.get("page_label"),
        section=payload.get("section"),
        start_utf16=payload.get("start_utf16"),
        end_utf16=payload.get("end_utf16"),
    )


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a search: a sparse (BM25) or a dense query vector, already checked."""

    using: str  # SPARSE_VECTOR or DENSE_VECTOR
    sparse: SparseVector | None = None
    dense: list[float] | None = None


def search_legs(
    sparse: SparseVector | None, dense: Sequence[float] | None, dense_dim: int | None
) -> list[Leg]:
    """The legs a search runs, sparse first (the order RRF_WEIGHTS refers to); an empty sparse
    vector (a question of stopwords only) is no leg."""
    legs = []
    if sparse is not None and check_sparse(sparse).indices:
        legs.append(Leg(SPARSE_VECTOR, sparse=sparse))
    if dense is not None:
        legs.append(Leg(DENSE_VECTOR, dense=check_dense(dense, dense_dim)))
    return legs


def prefetch_depth(limit: int) -> int:
    """How many hits each leg brings to the fusion of a hybrid search."""
    return max(limit * 4, _MIN_PREFETCH)


def check_dense(dense: Sequence[float], dense_dim: int | None) -> list[float]:
    """`dense` as a list if it fits a store of `dense_dim` dimensions, else ValueError."""
    if dense_dim is None:
        raise ValueError("this store has no dense vector (dense_dim is None)")
    if len(dense) != dense_dim:
        raise ValueError(f"dense vector has {len(dense)} dimensions, expected {dense_dim}")
    return list(dense)


def check_sparse(vector: SparseVector) -> SparseVector:
    """`vector` if well-formed, else ValueError.

    Qdrant Edge 0.9 panics on an indices/values length mismatch and the bad write stays in its
    WAL, so every later write, and even reopening the shard, panics too: check before writing.
    """
    if len(vector.indices) != len(vector.values):
        raise ValueError(
            f"sparse vector has {len(vector.indices)} indices but {len(vector.values)} values"
        )
    if len(set(vector.indices)) != len(vector.indices):
        raise ValueError("sparse vector indices must be unique")
    if vector.indices and (min(vector.indices) < 0 or max(vector.indices) >= 2**32):
        raise ValueError("sparse vector indices must fit in an unsigned 32-bit integer")
    return vector

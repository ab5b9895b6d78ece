"""Which tenants and collection names an Edge shard may hold, so that a BM25 search can take
its IDF over the cheapest corpus that is provably its own scope.

IDF over a filtered corpus costs the engine a filter check on every posting of every query
term: at 100k chunks about 8 ms of a 9 ms search (tenant and collection), 3 ms with the tenant
alone, under 1 ms with no filter. The census is a superset of what the shard holds (writes add
to it, deletes never take away; a reopen counts again), so when it says that every chunk is in
the searched scope, the unfiltered corpus is that scope.

Unfiltered statistics still count deleted points until a rebuild drops them, so the cheap
corpus is used only while the shard holds none: the file `IDF_EXACT` in the shard directory
says so. A new shard, a compacted one and a rebuilt one (rewritten with its live points when it held
deleted ones) with no deletes replayed into it get it; the first delete removes it (before
the delete is applied, so a crash errs on the safe side).
"""

from __future__ import annotations

from pathlib import Path

import qdrant_edge as qe

from service.store.base import Scope
from service.store.filters import edge_filter

IDF_EXACT = "IDF_EXACT"
# More distinct values than this and the census gives up on the field (searches then filter).
_FACET_LIMIT = 10_000


class ScopeCensus:
    def __init__(self, path: Path, tenants: set[str] | None, collections: set[str] | None) -> None:
        self._marker = path / IDF_EXACT
        self._exact = self._marker.exists()
        self._tenants = tenants  # None: too many to keep
        self._collections = collections

    @classmethod
    def of(cls, shard: qe.EdgeShard, path: Path) -> ScopeCensus:
        """Counted from the shard's payload indexes (exact facets: tens of ms per 100k points)."""
        return cls(path, _values(shard, "tenant"), _values(shard, "collection"))

    @property
    def exact(self) -> bool:
        """Whether the shard holds no deleted point."""
        return self._exact

    def add(self, scope: Scope) -> None:
        """Called before a write of `scope`'s points becomes visible."""
        if self._tenants is not None:
            self._tenants.add(scope.tenant)
        if self._collections is not None:
            self._collections.add(scope.collection)

    def deleting(self) -> None:
        """Called before points are deleted: unfiltered statistics will count them."""
        self._exact = False
        self._marker.unlink(missing_ok=True)

    def rebuilt(self) -> None:
        """Called once the shard was rewritten with no deleted point in it."""
        self._marker.touch()
        self._exact = True

    def idf_params(self, scope: Scope) -> qe.SearchParams | None:
        """The search parameters that take IDF over `scope` (None: the whole shard is it)."""
        one_collection = self._collections is not None and self._collections <= {scope.collection}
        if self._exact and one_collection:
            if self._tenants is not None and self._tenants <= {scope.tenant}:
                return None
            # Every chunk is in this collection: the tenant alone is the scope.
            tenant = qe.FieldCondition("tenant", match=qe.MatchValue(scope.tenant))
            return qe.SearchParams(idf=qe.IdfParams(corpus=qe.Filter(must=[tenant])))
        return qe.SearchParams(idf=qe.IdfParams(corpus=edge_filter(scope)))


def _values(shard: qe.EdgeShard, field: str) -> set[str] | None:
    found = shard.facet(qe.FacetRequest(field, limit=_FACET_LIMIT, exact=True))
    if len(found.hits) >= _FACET_LIMIT:
        return None
    return {str(hit.value) for hit in found.hits}

"""Which documents a delete-by-filter call takes: those with a chunk of their served version
that matches the filter (a superseded version still stored may match while the served one
does not; a document not indexed yet has no served version, so it matches once indexed).

The store's matching chunks are scanned a page at a time, in point id order, only until one
more document than the call deletes is found. A client deletes N documents by calling again
while more match; were every call to scan from the first chunk, each would check again every
chunk before the first match left (the filter is on metadata, which has no index: the store
checks each chunk in turn), and read again those matching only by a superseded version:
O(N²) in all. So a scan starts where the previous one of the same scope and filter stopped
(the chunk of the one more document: everything before it was taken or does not match), and
goes back to the start when the rest holds too few: "no more" is only said after a scan of
everything, which finds what was indexed meanwhile behind that point.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from schemas.filters import Filter
from service.catalog.base import JobRegistry
from service.store.base import Scope, VectorStore

RESUME_MAX = 256  # scans remembered (scope and filter), the least recent forgotten first


class ServedMatches:
    def __init__(self, store: VectorStore, registry: JobRegistry) -> None:
        self.store, self.registry = store, registry
        self._resume: OrderedDict[tuple[Scope, str], str] = OrderedDict()

    async def take(self, scope: Scope, filters: Filter, limit: int) -> tuple[list[str], bool]:
        """Up to `limit` matching documents, and whether more match."""
        key = (scope, filters.model_dump_json())
        start = self._resume.pop(key, None)
        found, stopped_at = await self._scan(scope, filters, limit + 1, start)
        if stopped_at is None and start is not None:  # began midway, found too few
            found, stopped_at = await self._scan(scope, filters, limit + 1, None)
        if stopped_at is not None:
            self._resume[key] = stopped_at
            while len(self._resume) > RESUME_MAX:
                self._resume.popitem(last=False)
        return found[:limit], stopped_at is not None

    async def _scan(
        self, scope: Scope, filters: Filter, enough: int, start: str | None
    ) -> tuple[list[str], str | None]:
        """The matching documents in the order the scan from the point `start` finds them,
        until `enough`; and the point of the chunk that made them enough (None: the end came
        first)."""
        found: dict[str, None] = {}
        served: dict[str, str | None] = {}  # of every document the scan met so far
        while True:
            page = await asyncio.to_thread(self.store.document_versions, scope, filters, start)
            unseen = sorted({d for _, d, _ in page.chunks} - served.keys())
            active = await self.registry.active_versions(scope, unseen)
            served.update((d, active.get(d)) for d in unseen)
            for point, document_id, version in page.chunks:
                if served[document_id] == version and document_id not in found:
                    found[document_id] = None
                    if len(found) == enough:
                        return list(found), point
            if page.next_start is None:
                return list(found), None
            start = page.next_start

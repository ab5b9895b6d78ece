"""Metadata filters (`schemas.filters.Filter`) and the tenant/collection scope, per backend.

One translator walks the filter tree and a small builder per backend makes the objects, so Qdrant
Edge and qdrant-client get the same semantics:

- eq: strings and booleans match exactly (a boolean never matches 0/1); numbers compare
  numerically (a range with gte == lte), so 3 matches a stored 3.0.
- ne / nin: `must_not`, so a chunk whose metadata lacks the key matches them.
- gt / gte / lt / lte: numbers only; any other value is a ValueError.
- in: any of the values; and: all sub-filters; or: at least one sub-filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

import numpy as np
import qdrant_edge as qe
from qdrant_client import models as qm

from schemas.filters import ComparisonFilter, CompoundFilter, Filter, FilterValue
from service.store.base import Scope

if TYPE_CHECKING:
    from qdrant_edge import ConditionType as EdgeCondition

C = TypeVar("C")

_RANGE_OPS = ("gt", "gte", "lt", "lte")


class _Builder(Protocol, Generic[C]):
    def match(self, key: str, value: str | bool) -> C: ...
    def match_any(self, key: str, values: list[str]) -> C: ...
    def range(self, key: str, **bounds: float) -> C: ...
    def all_of(self, conditions: list[C]) -> C: ...
    def any_of(self, conditions: list[C]) -> C: ...
    def none_of(self, conditions: list[C]) -> C: ...


class _EdgeBuilder:
    def match(self, key: str, value: str | bool) -> EdgeCondition:
        # qdrant_edge 0.9 turns a Python bool into the integer 1/0 (bool subclasses int), which
        # then never matches a stored boolean; a numpy bool is extracted as a real boolean.
        scalar = cast(bool, np.bool_(value)) if isinstance(value, bool) else value
        return qe.FieldCondition(key, match=qe.MatchValue(scalar))

    def match_any(self, key: str, values: list[str]) -> EdgeCondition:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def range(self, key: str, **bounds: float) -> EdgeCondition:
        return qe.FieldCondition(key, range=qe.RangeFloat(**bounds))

    def all_of(self, conditions: list[EdgeCondition]) -> EdgeCondition:
        return qe.Filter(must=list(conditions))

    def any_of(self, conditions: list[EdgeCondition]) -> EdgeCondition:
        return qe.Filter(should=list(conditions))

    def none_of(self, conditions: list[EdgeCondition]) -> EdgeCondition:
        return qe.Filter(must_not=list(conditions))


class _QdrantBuilder:
    def match(self, key: str, value: str | bool) -> qm.Condition:
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))

    def match_any(self, key: str, values: list[str]) -> qm.Condition:
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=values))

    def range(self, key: str, **bounds: float) -> qm.Condition:
        return qm.FieldCondition(key=key, range=qm.Range(**bounds))

    def all_of(self, conditions: list[qm.Condition]) -> qm.Condition:
        return qm.Filter(must=conditions)

    def any_of(self, conditions: list[qm.Condition]) -> qm.Condition:
        return qm.Filter(should=conditions)

    def none_of(self, conditions: list[qm.Condition]) -> qm.Condition:
        return qm.Filter(must_not=conditions)


def _payload_key(key: str) -> str:
    # The grammar allows dots (nested metadata) but a path with an empty segment is not one.
    if any(part == "" for part in key.split(".")):
        raise ValueError(f"filter key {key!r} is not a valid metadata path")
    return f"metadata.{key}"


def _number(op: str, key: str, value: FilterValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"filter {op!r} on {key!r} needs a number, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"filter {op!r} on {key!r} needs a finite number, got {value!r}")
    return value


def _equals(b: _Builder[C], op: str, key: str, path: str, value: FilterValue) -> C:
    if isinstance(value, str | bool):
        return b.match(path, value)
    number = _number(op, key, value)
    # A two-sided range rather than a match: match only takes integers and would not see 3.0.
    return b.range(path, gte=number, lte=number)


def _comparison(b: _Builder[C], f: ComparisonFilter) -> C:
    path = _payload_key(f.key)
    if f.type in ("in", "nin"):
        values: Sequence[FilterValue] = f.value if isinstance(f.value, list) else [f.value]
        if not values:
            raise ValueError(f"filter {f.type!r} on {f.key!r} needs at least one value")
        strings = [v for v in values if isinstance(v, str)]
        parts = [_equals(b, f.type, f.key, path, v) for v in values if not isinstance(v, str)]
        if strings:
            parts.insert(0, b.match_any(path, strings))
        any_of = parts[0] if len(parts) == 1 else b.any_of(parts)
        return any_of if f.type == "in" else b.none_of([any_of])
    if isinstance(f.value, list):
        raise ValueError(f"filter {f.type!r} on {f.key!r} takes one value, not a list")
    if f.type in _RANGE_OPS:
        return b.range(path, **{f.type: _number(f.type, f.key, f.value)})
    equals = _equals(b, f.type, f.key, path, f.value)
    return equals if f.type == "eq" else b.none_of([equals])


def _translate(b: _Builder[C], f: Filter) -> C:
    if isinstance(f, CompoundFilter):
        if not f.filters:  # an empty `should` would match everything
            raise ValueError(f"filter {f.type!r} needs at least one sub-filter")
        parts = [_translate(b, sub) for sub in f.filters]
        return b.all_of(parts) if f.type == "and" else b.any_of(parts)
    return _comparison(b, f)


def _scoped(
    b: _Builder[C], scope: Scope, document_ids: Sequence[str] | None, filters: Filter | None
) -> list[C]:
    conditions = [b.match("tenant", scope.tenant), b.match("collection", scope.collection)]
    if document_ids is not None:
        conditions.append(b.match_any("document_id", list(document_ids)))
    if filters is not None:
        conditions.append(_translate(b, filters))
    return conditions


def edge_filter(
    scope: Scope,
    *,
    document_ids: Sequence[str] | None = None,
    filters: Filter | None = None,
    exclude_version: str | None = None,
) -> qe.Filter:
    """Edge filter for `scope` (and some documents, metadata filters, a version to spare)."""
    b = _EdgeBuilder()
    must_not = [b.match("version", exclude_version)] if exclude_version is not None else None
    return qe.Filter(must=_scoped(b, scope, document_ids, filters), must_not=must_not)


def qdrant_filter(
    scope: Scope,
    *,
    document_ids: Sequence[str] | None = None,
    filters: Filter | None = None,
    exclude_version: str | None = None,
) -> qm.Filter:
    """qdrant-client filter for `scope` (and some documents, metadata filters, a version to
    spare)."""
    b = _QdrantBuilder()
    must_not = [b.match("version", exclude_version)] if exclude_version is not None else None
    return qm.Filter(must=_scoped(b, scope, document_ids, filters), must_not=must_not)

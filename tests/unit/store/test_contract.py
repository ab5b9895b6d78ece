"""The `VectorStore` contract, run against every implementation (see conftest `make_store`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from schemas.filters import ComparisonFilter, CompoundFilter, Filter
from service.store.base import (
    ChunkPoint,
    Scope,
    SparseVector,
    VectorStore,
    VersionsPage,
    idf,
    point_id,
)
from tests.unit.store.conftest import KINDS, StoreFactory, open_store

ACME = Scope("acme", "docs")
OTHER_TENANT = Scope("globex", "docs")
OTHER_COLLECTION = Scope("acme", "wiki")

COMMON = 1  # a term every chunk has, so a query on it returns everything in scope


def chunk(
    document_id: str,
    chunk_index: int = 0,
    *,
    version: str = "v1",
    terms: dict[int, float] | None = None,
    metadata: dict[str, Any] | None = None,
    dense: list[float] | None = None,
    text: str | None = None,
) -> ChunkPoint:
    terms = {COMMON: 1.0, **(terms or {})}
    body = text if text is not None else f"{document_id} {version} chunk {chunk_index}"
    return ChunkPoint(
        document_id=document_id,
        version=version,
        chunk_index=chunk_index,
        text=body,
        start=chunk_index * 100,
        end=chunk_index * 100 + len(body),
        sparse=SparseVector(indices=sorted(terms), values=[terms[i] for i in sorted(terms)]),
        title=f"Title of {document_id}",
        source=f"https://example.com/{document_id}",
        metadata=metadata or {},
        dense=dense,
    )


def query(*terms: int) -> SparseVector:
    return SparseVector(indices=sorted(terms), values=[1.0] * len(terms))


def docs(store: VectorStore, scope: Scope, filters: Filter | None = None) -> set[str]:
    hits = store.search(scope, sparse=query(COMMON), limit=100, filters=filters)
    return {h.document_id for h in hits}


def test_upsert_then_search_returns_the_exact_chunk(store: VectorStore) -> None:
    meta = {"lang": "en", "year": 2024, "ratio": 0.25, "draft": False, "tags": {"a": "b"}}
    target = chunk("doc-1", 3, terms={42: 2.0}, metadata=meta, text="the exact text")
    store.upsert(ACME, [chunk("doc-1", 0), target, chunk("doc-2", 0)])

    hits = store.search(ACME, sparse=query(42))

    assert len(hits) == 1
    hit = hits[0]
    assert hit.chunk_id == point_id(ACME, "doc-1", "v1", 3)
    assert (hit.document_id, hit.version, hit.chunk_index) == ("doc-1", "v1", 3)
    assert (hit.text, hit.start, hit.end) == ("the exact text", 300, 314)
    assert (hit.title, hit.source) == ("Title of doc-1", "https://example.com/doc-1")
    assert hit.metadata == meta
    assert type(hit.metadata["year"]) is int and type(hit.metadata["draft"]) is bool
    assert hit.score > 0


def test_rarer_term_ranks_higher(store: VectorStore) -> None:
    # Term 7 is in one chunk, term 8 in three: with IDF the chunk matching 7 comes first.
    store.upsert(
        ACME,
        [
            chunk("rare", terms={7: 1.0, 8: 1.0}),
            chunk("common-a", terms={8: 1.0}),
            chunk("common-b", terms={8: 1.0}),
            chunk("other", terms={9: 1.0}),
        ],
    )
    hits = store.search(ACME, sparse=query(7, 8), limit=10)
    assert hits[0].document_id == "rare"
    assert {h.document_id for h in hits} == {"rare", "common-a", "common-b"}


def test_other_tenants_do_not_change_scores(store: VectorStore) -> None:
    # IDF is computed over the tenant's collection: another tenant making term 5 common must
    # change neither the ranking nor the scores here.
    store.upsert(ACME, [chunk("a", terms={5: 1.0}), chunk("b", terms={6: 1.0}), chunk("c")])
    before = [(h.document_id, h.score) for h in store.search(ACME, sparse=query(5, 6))]
    store.upsert(OTHER_TENANT, [chunk(f"x{i}", terms={5: 1.0}) for i in range(20)])
    store.upsert(OTHER_COLLECTION, [chunk(f"y{i}", terms={5: 1.0}) for i in range(20)])
    after = [(h.document_id, h.score) for h in store.search(ACME, sparse=query(5, 6))]
    assert [d for d, _ in after] == [d for d, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])


def test_limit_is_respected(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", i) for i in range(7)])
    assert len(store.search(ACME, sparse=query(COMMON), limit=3)) == 3
    assert store.search(ACME, sparse=query(COMMON), limit=0) == []


def test_upsert_twice_keeps_one_copy_and_the_latest_payload(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", i) for i in range(3)])
    store.upsert(ACME, [chunk("doc", i, text=f"rewritten {i}") for i in range(3)])

    ids = store.chunk_ids(ACME)
    assert sorted(ids) == sorted(point_id(ACME, "doc", "v1", i) for i in range(3))
    hits = store.search(ACME, sparse=query(COMMON), limit=10)
    assert sorted(h.text for h in hits) == ["rewritten 0", "rewritten 1", "rewritten 2"]


def test_empty_or_missing_query_vector_returns_nothing(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc")])
    assert store.search(ACME, sparse=SparseVector(indices=[], values=[])) == []
    assert store.search(ACME, sparse=None) == []
    assert store.search(ACME, sparse=query(999)) == []  # a term no chunk has


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 2], [1.0], "2 indices but 1 values"),
        ([1, 1], [1.0, 1.0], "unique"),
        ([-1], [1.0], "32-bit"),
        ([2**32], [1.0], "32-bit"),
    ],
)
def test_malformed_sparse_vector_is_rejected_before_any_write(
    store: VectorStore, indices: list[int], values: list[float], message: str
) -> None:
    bad = chunk("bad", 300)
    bad.sparse = SparseVector(indices=indices, values=values)
    with pytest.raises(ValueError, match=message):
        store.upsert(ACME, [*(chunk("good", i) for i in range(300)), bad])
    with pytest.raises(ValueError, match=message):
        store.search(ACME, sparse=SparseVector(indices=indices, values=values))
    assert store.chunk_ids(ACME) == []  # nothing of the rejected call was written
    store.upsert(ACME, [chunk("after")])  # and the store still takes writes
    assert docs(store, ACME) == {"after"}


def test_tenants_are_isolated(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("shared-id", 0), chunk("acme-only", 0)])
    store.upsert(OTHER_TENANT, [chunk("shared-id", 0, text="globex text")])

    assert docs(store, ACME) == {"shared-id", "acme-only"}
    assert [h.text for h in store.search(OTHER_TENANT, sparse=query(COMMON))] == ["globex text"]
    assert store.chunk_ids(OTHER_TENANT) == [point_id(OTHER_TENANT, "shared-id", "v1", 0)]

    store.delete_documents(ACME, ["shared-id"])
    assert docs(store, ACME) == {"acme-only"}
    assert docs(store, OTHER_TENANT) == {"shared-id"}
    assert store.chunk_ids(Scope("nobody", "docs")) == []


def test_collections_are_isolated(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", 0)])
    store.upsert(OTHER_COLLECTION, [chunk("doc", 0), chunk("wiki-page", 0)])

    assert docs(store, ACME) == {"doc"}
    assert docs(store, OTHER_COLLECTION) == {"doc", "wiki-page"}
    store.delete_documents(OTHER_COLLECTION, ["doc"])
    assert docs(store, ACME) == {"doc"}
    assert docs(store, OTHER_COLLECTION) == {"wiki-page"}


def test_delete_document_removes_every_chunk_of_every_version(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", i, version=v) for v in ("v1", "v2") for i in range(3)])
    store.upsert(ACME, [chunk("keep", 0)])

    store.delete_documents(ACME, ["doc"])

    assert store.chunk_ids(ACME, "doc") == []
    assert store.chunk_ids(ACME) == [point_id(ACME, "keep", "v1", 0)]


def test_delete_document_keep_version_leaves_exactly_that_version(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", i, version="v1") for i in range(4)])
    store.upsert(ACME, [chunk("doc", i, version="v2") for i in range(2)])
    store.upsert(ACME, [chunk("other", 0, version="v1")])

    store.delete_documents(ACME, ["doc"], keep_version="v2")

    assert sorted(store.chunk_ids(ACME, "doc")) == sorted(
        point_id(ACME, "doc", "v2", i) for i in range(2)
    )
    assert store.chunk_ids(ACME, "other") == [point_id(ACME, "other", "v1", 0)]
    assert {h.version for h in store.search(ACME, sparse=query(COMMON), limit=50)} == {"v1", "v2"}


def test_delete_collection_removes_the_scope_only(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("a", 0), chunk("b", 0)])
    store.upsert(OTHER_COLLECTION, [chunk("a", 0)])
    store.upsert(OTHER_TENANT, [chunk("a", 0)])

    store.delete_collection(ACME)

    assert store.chunk_ids(ACME) == []
    assert docs(store, OTHER_COLLECTION) == {"a"} and docs(store, OTHER_TENANT) == {"a"}


def test_delete_documents_removes_exactly_those_documents_of_the_scope(
    store: VectorStore,
) -> None:
    for scope in (ACME, OTHER_TENANT, OTHER_COLLECTION):
        store.upsert(
            scope, [chunk(d, i, version=v) for d in "abc" for v in ("v1", "v2") for i in range(2)]
        )

    store.delete_documents(ACME, ["a", "b", "never-stored"])

    assert {point_id(ACME, "c", v, i) for v in ("v1", "v2") for i in range(2)} == set(
        store.chunk_ids(ACME)
    )
    assert docs(store, OTHER_TENANT) == docs(store, OTHER_COLLECTION) == {"a", "b", "c"}
    assert len(store.chunk_ids(OTHER_TENANT)) == len(store.chunk_ids(OTHER_COLLECTION)) == 12
    store.delete_documents(ACME, [])  # nothing named: nothing deleted
    assert len(store.chunk_ids(ACME)) == 4


def test_delete_documents_keep_version_spares_it_in_each(store: VectorStore) -> None:
    store.upsert(ACME, [chunk(d, 0, version=v) for d in "abc" for v in ("v1", "v2")])

    store.delete_documents(ACME, ["a", "b"], keep_version="v2")

    assert set(store.chunk_ids(ACME)) == {
        point_id(ACME, "a", "v2", 0), point_id(ACME, "b", "v2", 0),
        point_id(ACME, "c", "v1", 0), point_id(ACME, "c", "v2", 0),
    }  # fmt: skip


def test_document_versions_follow_the_filter_grammar_in_scope(store: VectorStore) -> None:
    store.upsert(
        ACME,
        [
            chunk("old", 0, metadata={"year": 2019}),
            chunk("new", 0, version="v1", metadata={"year": 2024}),
            chunk("new", 1, version="v1", metadata={"year": 2024}),
            chunk("new", 0, version="v2", metadata={"year": 2025}),
        ],
    )
    store.upsert(OTHER_TENANT, [chunk("theirs", 0, metadata={"year": 2024})])
    recent = ComparisonFilter(type="gte", key="year", value=2024)
    new = [("new", "v1", 0), ("new", "v1", 1), ("new", "v2", 0)]
    assert store.document_versions(ACME, recent) == VersionsPage(
        sorted((point_id(ACME, d, v, i), d, v) for d, v, i in new), None
    )
    everything = [*new, ("old", "v1", 0)]
    assert store.document_versions(ACME, None) == VersionsPage(
        sorted((point_id(ACME, d, v, i), d, v) for d, v, i in everything), None
    )
    assert store.document_versions(Scope("nobody", "docs"), None) == VersionsPage([], None)


def test_document_versions_page_through_every_matching_chunk_once_in_order(
    store: VectorStore,
) -> None:
    store.upsert(ACME, [chunk(f"d{i}", 0, metadata={"even": i % 2 == 0}) for i in range(2500)])
    store.upsert(OTHER_TENANT, [chunk(f"d{i}", 0, metadata={"even": True}) for i in range(10)])
    even = ComparisonFilter(type="eq", key="even", value=True)
    pages = [store.document_versions(ACME, even)]
    while pages[-1].next_start is not None:
        pages.append(store.document_versions(ACME, even, pages[-1].next_start))

    chunks = [c for page in pages for c in page.chunks]
    assert len(pages) > 1
    assert chunks == sorted(
        (point_id(ACME, f"d{i}", "v1", 0), f"d{i}", "v1") for i in range(0, 2500, 2)
    )
    # A page may start at a point deleted since: the scan goes on from where it was.
    store.delete_documents(ACME, [pages[1].chunks[0][1]])
    assert store.document_versions(ACME, even, pages[0].next_start).chunks[0] == pages[1].chunks[1]


def test_compact_keeps_every_live_point(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("doc", i, terms={7: 1.0}) for i in range(40)])
    store.upsert(ACME, [chunk("gone", i) for i in range(40)])
    store.delete_documents(ACME, ["gone"])
    before = sorted(store.chunk_ids(ACME))

    store.compact()

    assert sorted(store.chunk_ids(ACME)) == before and len(before) == 40
    assert [h.chunk_index for h in store.search(ACME, sparse=query(7), limit=3)]
    store.upsert(ACME, [chunk("after", 0)])  # still writable
    assert "after" in docs(store, ACME)


def test_chunk_ids_pages_past_one_scroll_page(store: VectorStore) -> None:
    store.upsert(ACME, [chunk("big", i) for i in range(1100)])
    ids = store.chunk_ids(ACME, "big")
    assert len(ids) == len(set(ids)) == 1100


def test_point_ids_are_deterministic() -> None:
    a = point_id(ACME, "doc", "v1", 0)
    assert a == point_id(Scope("acme", "docs"), "doc", "v1", 0)
    others = {
        point_id(OTHER_TENANT, "doc", "v1", 0),
        point_id(OTHER_COLLECTION, "doc", "v1", 0),
        point_id(ACME, "doc", "v2", 0),
        point_id(ACME, "doc", "v1", 1),
    }
    assert a not in others and len(others) == 4


def test_dense_vector_without_dense_config_is_rejected(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="no dense vector"):
        store.upsert(ACME, [chunk("doc", dense=[1.0] * 8)])
    with pytest.raises(ValueError, match="no dense vector"):
        store.search(ACME, sparse=query(COMMON), dense=[1.0] * 8)


# -- metadata filters ------------------------------------------------------------------------

DATASET: dict[str, dict[str, Any]] = {
    "d1": {"lang": "en", "year": 2020, "score": 0.5, "draft": False, "my-key": "v"},
    "d2": {"lang": "de", "year": 2021, "score": 1.5, "draft": True},
    "d3": {"lang": "en", "year": 2022, "score": 2.5, "draft": True, "nested": {"x": 1}},
    "d4": {"lang": "fr", "year": 2023.0, "score": 3, "draft": 1},
    "d5": {"lang": "it", "year": "2021"},
}


def eq(key: str, value: Any, op: str = "eq") -> ComparisonFilter:
    return ComparisonFilter(type=op, key=key, value=value)  # type: ignore[arg-type]


FILTER_CASES: list[tuple[str, Filter, set[str]]] = [
    ("eq str", eq("lang", "en"), {"d1", "d3"}),
    ("eq bool is not 1", eq("draft", True), {"d2", "d3"}),
    ("eq 1 is not true", eq("draft", 1), {"d4"}),
    ("eq false", eq("draft", False), {"d1"}),
    ("eq int matches float", eq("year", 2023), {"d4"}),
    ("eq number is not str", eq("year", 2021), {"d2"}),
    ("eq str is not number", eq("year", "2021"), {"d5"}),
    ("eq float", eq("score", 1.5), {"d2"}),
    ("eq nested key", eq("nested.x", 1), {"d3"}),
    ("eq hyphen key", eq("my-key", "v"), {"d1"}),
    ("eq missing key", eq("absent", "x"), set()),
    ("ne str (missing key matches)", eq("lang", "en", "ne"), {"d2", "d4", "d5"}),
    ("ne bool", eq("draft", True, "ne"), {"d1", "d4", "d5"}),
    ("ne number", eq("year", 2021, "ne"), {"d1", "d3", "d4", "d5"}),
    ("gt int", eq("year", 2021, "gt"), {"d3", "d4"}),
    ("gte int", eq("year", 2021, "gte"), {"d2", "d3", "d4"}),
    ("lt int", eq("year", 2021, "lt"), {"d1"}),
    ("lte int", eq("year", 2021, "lte"), {"d1", "d2"}),
    ("gt float", eq("score", 1.5, "gt"), {"d3", "d4"}),
    ("lt float", eq("score", 1.0, "lt"), {"d1"}),
    ("gte float on int", eq("score", 3.0, "gte"), {"d4"}),
    ("in str", eq("lang", ["en", "fr"], "in"), {"d1", "d3", "d4"}),
    ("in numbers", eq("year", [2020, 2023], "in"), {"d1", "d4"}),
    ("in mixed types", eq("year", [2021, "2021"], "in"), {"d2", "d5"}),
    ("in bool", eq("draft", [True], "in"), {"d2", "d3"}),
    ("nin str", eq("lang", ["en", "fr"], "nin"), {"d2", "d5"}),
    ("nin numbers", eq("year", [2020, 2021], "nin"), {"d3", "d4", "d5"}),
    (
        "and",
        CompoundFilter(type="and", filters=[eq("lang", "en"), eq("year", 2021, "gte")]),
        {"d3"},
    ),
    (
        "or",
        CompoundFilter(type="or", filters=[eq("lang", "fr"), eq("draft", False)]),
        {"d1", "d4"},
    ),
    (
        "nested and(or, ne)",
        CompoundFilter(
            type="and",
            filters=[
                CompoundFilter(type="or", filters=[eq("lang", "de"), eq("lang", "fr")]),
                eq("draft", True, "ne"),
            ],
        ),
        {"d4"},
    ),
    (
        "nested or(and, and)",
        CompoundFilter(
            type="or",
            filters=[
                CompoundFilter(type="and", filters=[eq("lang", "en"), eq("draft", True)]),
                CompoundFilter(type="and", filters=[eq("score", 1, "lt"), eq("year", 2020)]),
            ],
        ),
        {"d1", "d3"},
    ),
]


@pytest.fixture(scope="module", params=KINDS)
def filter_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VectorStore]:
    """DATASET in ACME, and again in another tenant; shared by the read-only filter tests."""
    store = open_store(request, request.param, tmp_path_factory.mktemp("filters") / "shard")
    store.upsert(ACME, [chunk(doc, metadata=meta) for doc, meta in DATASET.items()])
    # The same documents in another tenant must never leak through a filter.
    store.upsert(OTHER_TENANT, [chunk(doc, metadata=meta) for doc, meta in DATASET.items()])
    yield store
    store.close()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [pytest.param(f, e, id=name) for name, f, e in FILTER_CASES],
)
def test_filter_returns_exactly_the_expected_documents(
    filter_store: VectorStore, filters: Filter, expected: set[str]
) -> None:
    assert docs(filter_store, ACME, filters) == expected


@pytest.mark.parametrize(
    ("op", "key", "value", "message"),
    [
        ("gt", "year", "2021", "needs a number"),
        ("lte", "draft", True, "needs a number"),
        ("eq", "lang", ["en"], "takes one value"),
        ("eq", "a..b", 1, "not a valid metadata path"),
        ("in", "lang", [], "at least one value"),
    ],
)
def test_invalid_filter_is_a_value_error(
    filter_store: VectorStore, op: str, key: str, value: Any, message: str
) -> None:
    # The schema rejects most of these already; the store must not rely on it.
    unchecked = ComparisonFilter.model_construct(type=op, key=key, value=value)
    with pytest.raises(ValueError, match=message):
        filter_store.search(ACME, sparse=query(COMMON), filters=unchecked)


def test_empty_compound_filter_is_a_value_error(filter_store: VectorStore) -> None:
    unchecked = CompoundFilter.model_construct(type="or", filters=[])
    with pytest.raises(ValueError, match="at least one sub-filter"):
        filter_store.search(ACME, sparse=query(COMMON), filters=unchecked)


# -- hybrid ----------------------------------------------------------------------------------


def unit(i: int, dim: int = 8) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(dim)]


def test_hybrid_fuses_sparse_and_dense(make_store: StoreFactory) -> None:
    store = make_store(dense_dim=8)
    near, away = [0.9, 0.1, 0, 0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0, 0, 0, 0]
    store.upsert(
        ACME,
        [
            chunk("both", terms={5: 3.0}, dense=near),  # 1st sparse, 2nd dense
            chunk("sparse-2nd", terms={5: 1.0}, dense=away),  # 2nd sparse, last dense
            chunk("dense-best", terms={6: 1.0}, dense=unit(0)),  # no sparse match
            chunk("neither", terms={6: 1.0}, dense=unit(6)),  # 3rd dense
        ],
    )
    store.upsert(OTHER_TENANT, [chunk("intruder", terms={5: 9.0}, dense=unit(0))])
    sparse_q, dense_q = SparseVector(indices=[5], values=[1.0]), unit(0)

    sparse_only = [h.document_id for h in store.search(ACME, sparse=sparse_q)]
    dense_only = [h.document_id for h in store.search(ACME, sparse=None, dense=dense_q, limit=2)]
    fused = store.search(ACME, sparse=sparse_q, dense=dense_q, limit=3)

    assert sparse_only == ["both", "sparse-2nd"]
    assert dense_only == ["dense-best", "both"]
    # RRF: ranks 1+2 > 2+4 > 1 alone > 3 alone; "dense-best" gets in only through the dense leg.
    assert [h.document_id for h in fused] == ["both", "sparse-2nd", "dense-best"]
    assert fused[0].score > fused[1].score > fused[2].score > 0
    assert fused[0].text == "both v1 chunk 0"

    filtered = store.search(
        ACME, sparse=sparse_q, dense=dense_q, limit=10, filters=eq("absent", "x", "ne")
    )
    assert {h.document_id for h in filtered} == {"both", "sparse-2nd", "dense-best", "neither"}
    none = store.search(ACME, sparse=sparse_q, dense=dense_q, filters=eq("absent", "x"))
    assert none == []


def test_hybrid_store_rejects_a_wrong_sized_dense_vector(make_store: StoreFactory) -> None:
    store = make_store(dense_dim=8)
    with pytest.raises(ValueError, match="expected 8"):
        store.upsert(ACME, [chunk("doc", dense=[1.0] * 4)])
    with pytest.raises(ValueError, match="expected 8"):
        store.search(ACME, sparse=None, dense=[1.0] * 3)


def test_hybrid_store_accepts_chunks_without_dense_vector(make_store: StoreFactory) -> None:
    store = make_store(dense_dim=8)
    store.upsert(ACME, [chunk("sparse-only"), chunk("with-dense", dense=unit(1))])
    assert docs(store, ACME) == {"sparse-only", "with-dense"}
    dense_hits = store.search(ACME, sparse=None, dense=unit(1))
    assert [h.document_id for h in dense_hits] == ["with-dense"]


def test_term_idf_is_the_engines_idf_over_the_scope(store: VectorStore) -> None:
    # 4 chunks in scope: term 7 in one, COMMON in all, 99 in none; other tenants do not count.
    store.upsert(ACME, [chunk(f"d{i}", terms={7: 0.8} if i == 0 else {}) for i in range(4)])
    store.upsert(OTHER_TENANT, [chunk(f"x{i}", terms={7: 1.0, 99: 1.0}) for i in range(5)])

    found = store.term_idf(ACME, [7, COMMON, 99, 7])

    assert found.keys() == {7, COMMON, 99}
    assert found[7] == pytest.approx(idf(4, 1), rel=1e-4)
    assert found[COMMON] == pytest.approx(idf(4, 4), rel=1e-4)
    assert found[99] is None
    assert store.term_idf(ACME, []) == {}
    assert store.chunk_count(ACME) == 4 and store.chunk_count(OTHER_COLLECTION) == 0


def test_hits_carry_their_cosine_to_the_dense_query(make_store: StoreFactory) -> None:
    store = make_store(dense_dim=8)
    store.upsert(
        ACME,
        [
            chunk("same", terms={5: 1.0}, dense=unit(0)),
            chunk("orthogonal", terms={5: 1.0}, dense=unit(1)),
            chunk("no-dense", terms={5: 1.0}),
        ],
    )
    sparse_q = SparseVector(indices=[5], values=[1.0])

    fused = {
        h.document_id: h.similarity for h in store.search(ACME, sparse=sparse_q, dense=unit(0))
    }
    dense = {h.document_id: h.similarity for h in store.search(ACME, sparse=None, dense=unit(0))}
    sparse = store.search(ACME, sparse=sparse_q)

    assert fused["same"] == pytest.approx(1.0) and fused["orthogonal"] == pytest.approx(0.0)
    assert fused["no-dense"] is None
    assert dense["same"] == pytest.approx(1.0)
    assert all(h.similarity is None for h in sparse)
    # Every hit brings its stored terms (for its relevance), in every mode.
    assert all(h.terms == frozenset({COMMON, 5}) for h in sparse)
    hybrid = store.search(ACME, sparse=sparse_q, dense=unit(0))
    assert all(h.terms == frozenset({COMMON, 5}) for h in hybrid)

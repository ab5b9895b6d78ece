"""Physical collections per embedding model, and the model each one records."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

import service.store.qdrant as qdrant_module
from service.clients import build_store
from service.config import Settings
from service.store import naming
from service.store.edge import EdgeStore
from service.store.naming import EmbeddingMismatchError, EmbeddingRecord
from service.store.qdrant import QdrantStore
from tests.unit.store.test_contract import ACME, chunk

BM25 = EmbeddingRecord(None, None)
MINI = EmbeddingRecord("all-MiniLM-L6-v2", 8)
OTHER = EmbeddingRecord("text-embedding-3-small", 8)
SETTINGS_NAMED = "CITELINE_EMBEDDING_MODEL / CITELINE_EMBEDDING_DIMENSION"


def test_slug_is_readable_safe_and_tells_models_apart() -> None:
    assert naming.slug("all-MiniLM-L6-v2", 384) == naming.slug("all-MiniLM-L6-v2", 384)
    assert naming.slug("all-MiniLM-L6-v2", 384).startswith("all-minilm-l6-v2-384d-")
    names = [
        naming.slug(m, d)
        for m, d in [("a/b", 8), ("a-b", 8), ("A-B", 8), ("a/b", 16), ("/opt/m", 8), ("…", 8)]
    ]
    assert len(set(names)) == len(names)  # case, punctuation and dimension all count
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]*", n) for n in names)
    assert len(naming.slug("x" * 500, 4096)) < 80


def test_bm25_only_keeps_the_plain_names(tmp_path: Path) -> None:
    assert naming.edge_shard_path(tmp_path, BM25) == tmp_path / "qdrant-edge"
    assert naming.server_collection("citeline_chunks", BM25) == "citeline_chunks"
    slug = naming.slug("all-MiniLM-L6-v2", 8)
    assert naming.edge_shard_path(tmp_path, MINI) == tmp_path / "qdrant-edge" / slug
    assert naming.server_collection("citeline_chunks", MINI) == f"citeline_chunks__{slug}"


def test_record_needs_model_and_dimension_together() -> None:
    with pytest.raises(ValueError, match="together"):
        EmbeddingRecord("m", None)
    with pytest.raises(ValueError, match="positive"):
        EmbeddingRecord("m", 0)
    assert EmbeddingRecord.from_metadata(MINI.metadata()) == MINI
    assert EmbeddingRecord.from_metadata(BM25.metadata()) == BM25
    assert EmbeddingRecord.from_metadata({"other": 1}) is None
    with pytest.raises(ValueError, match="malformed"):
        EmbeddingRecord.from_metadata({"citeline_embedding_model": 3})


def test_check_recorded_accepts_adopts_or_refuses() -> None:
    assert naming.check_recorded("c", MINI.metadata(), 8, MINI) is True
    assert naming.check_recorded("c", None, 8, MINI) is False  # unrecorded, same size: adopt
    assert naming.check_recorded("c", {}, None, BM25) is False
    with pytest.raises(EmbeddingMismatchError) as err:
        naming.check_recorded("Qdrant collection 'c'", MINI.metadata(), 8, OTHER)
    message = str(err.value)
    assert "'all-MiniLM-L6-v2' (8 dimensions)" in message
    assert "'text-embedding-3-small' (8 dimensions)" in message
    assert SETTINGS_NAMED in message and "Qdrant collection 'c'" in message
    with pytest.raises(EmbeddingMismatchError, match="16-dimensional vectors of an unrecorded"):
        naming.check_recorded("c", None, 16, MINI)
    with pytest.raises(EmbeddingMismatchError, match="cannot tell which model"):
        naming.check_recorded("c", {"citeline_embedding_model": ["x"]}, 8, MINI)


# -- Qdrant Edge -------------------------------------------------------------------------------


def test_edge_shard_records_its_model_and_reopens(tmp_path: Path) -> None:
    store = naming.open_edge_store(tmp_path, MINI)
    store.upsert(ACME, [chunk("doc", dense=[1.0] * 8)])
    store.close()
    path = naming.edge_shard_path(tmp_path, MINI)
    assert json.loads((path / naming.RECORD_FILE).read_text()) == MINI.metadata()
    reopened = naming.open_edge_store(tmp_path, MINI)
    try:
        assert len(reopened.chunk_ids(ACME)) == 1
    finally:
        reopened.close()


def test_each_model_gets_its_own_edge_shard(tmp_path: Path) -> None:
    """Open side by side, even nested in the BM25-only shard directory."""
    stores = {r: naming.open_edge_store(tmp_path, r) for r in (BM25, MINI, OTHER)}
    try:
        stores[MINI].upsert(ACME, [chunk("mini", dense=[1.0] * 8)])
        stores[BM25].upsert(ACME, [chunk("plain")])
        assert len(stores[MINI].chunk_ids(ACME)) == 1
        assert len(stores[BM25].chunk_ids(ACME)) == 1
        assert stores[OTHER].chunk_ids(ACME) == []
    finally:
        for store in stores.values():
            store.close()
    assert len({naming.edge_shard_path(tmp_path, r) for r in stores}) == 3


def test_edge_shard_recorded_for_another_model_is_refused(tmp_path: Path) -> None:
    naming.open_edge_store(tmp_path, MINI).close()
    # A shard copied or renamed to another model's place: its record still tells.
    naming.edge_shard_path(tmp_path, MINI).rename(naming.edge_shard_path(tmp_path, OTHER))
    with pytest.raises(EmbeddingMismatchError, match="'all-MiniLM-L6-v2' \\(8 dimensions\\)"):
        naming.open_edge_store(tmp_path, OTHER)


def test_unrecorded_bm25_shard_is_adopted_with_its_data(tmp_path: Path) -> None:
    legacy = EdgeStore(tmp_path / "qdrant-edge")  # as written before records existed
    legacy.upsert(ACME, [chunk("old")])
    legacy.close()
    store = naming.open_edge_store(tmp_path, BM25)
    try:
        assert len(store.chunk_ids(ACME)) == 1
    finally:
        store.close()
    recorded = json.loads((tmp_path / "qdrant-edge" / naming.RECORD_FILE).read_text())
    assert recorded == BM25.metadata()


def test_unrecorded_dense_shard_at_the_plain_name_is_refused(tmp_path: Path) -> None:
    EdgeStore(tmp_path / "qdrant-edge", dense_dim=8).close()  # dense data from before records
    with pytest.raises(EmbeddingMismatchError) as err:
        naming.open_edge_store(tmp_path, BM25)
    assert "8-dimensional vectors of an unrecorded embedding model" in str(err.value)
    assert "no embedding model (BM25 only)" in str(err.value)
    assert not (tmp_path / "qdrant-edge" / naming.RECORD_FILE).exists()


def test_build_store_opens_the_configured_models_shard(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        embedding_base_url="http://127.0.0.1:9/v1",
        embedding_model="all-MiniLM-L6-v2",
        embedding_dimension=8,
    )
    build_store(settings).close()
    assert (naming.edge_shard_path(tmp_path, MINI) / naming.RECORD_FILE).is_file()
    build_store(Settings(data_dir=tmp_path)).close()
    assert (tmp_path / "qdrant-edge" / naming.RECORD_FILE).is_file()


# -- Qdrant server ---------------------------------------------------------------------------


class _KeepOpen(QdrantClient):
    """One in-memory Qdrant shared by several stores, as a server would be."""

    def close(self, grpc_grace: float | None = None, **kwargs: Any) -> None:
        pass


@pytest.fixture
def shared_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[QdrantClient]:
    client = _KeepOpen(location=":memory:")
    monkeypatch.setattr(qdrant_module, "QdrantClient", lambda **kwargs: client)
    yield client
    QdrantClient.close(client)


def open_server(record: EmbeddingRecord, base: str = "chunks") -> QdrantStore:
    name = naming.server_collection(base, record)
    return QdrantStore(":memory:", dense_dim=record.dimension, collection_name=name, record=record)


def test_server_collection_records_its_model(shared_memory: QdrantClient) -> None:
    open_server(MINI).close()
    name = naming.server_collection("chunks", MINI)
    assert shared_memory.get_collection(name).config.metadata == MINI.metadata()
    open_server(MINI).close()  # the same model opens it again
    open_server(OTHER).close()  # another model: another collection
    assert {c.name for c in shared_memory.get_collections().collections} == {
        name,
        naming.server_collection("chunks", OTHER),
    }


def test_server_collection_of_another_model_is_refused(shared_memory: QdrantClient) -> None:
    open_server(MINI, base="x").close()
    # The same physical name with another record: as after a rename, or a shared base name.
    name = naming.server_collection("x", MINI)
    with pytest.raises(EmbeddingMismatchError, match=SETTINGS_NAMED):
        QdrantStore(":memory:", dense_dim=8, collection_name=name, record=OTHER)


def test_unrecorded_server_collection_is_adopted_or_refused(shared_memory: QdrantClient) -> None:
    QdrantStore(":memory:", collection_name="chunks").close()  # BM25 only, from before records
    open_server(BM25).close()
    assert shared_memory.get_collection("chunks").config.metadata == BM25.metadata()
    QdrantStore(":memory:", dense_dim=8, collection_name="legacy").close()
    with pytest.raises(EmbeddingMismatchError, match="8-dimensional vectors of an unrecorded"):
        open_server(BM25, base="legacy")


def test_real_server_keeps_the_record(request: pytest.FixtureRequest) -> None:
    """Collection metadata needs Qdrant >= 1.16; the store tests' container runs 1.19."""
    url = request.getfixturevalue("qdrant_server_url")  # skips without Docker
    base = f"t_{uuid.uuid4().hex}"
    name = naming.server_collection(base, MINI)
    store = QdrantStore(url, dense_dim=8, collection_name=name, record=MINI)
    store.close()
    with pytest.raises(EmbeddingMismatchError):
        QdrantStore(url, dense_dim=8, collection_name=name, record=OTHER)
    client = QdrantClient(url=url)
    try:
        assert client.get_collection(name).config.metadata == MINI.metadata()
    finally:
        client.delete_collection(name)
        client.close()

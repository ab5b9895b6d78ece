"""The store and embedders the settings ask for, built the same way by the API and the workers."""

from __future__ import annotations

import logging

from service.config import Settings
from service.embeddings.dense import DenseEmbedder, OpenAIEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.store import naming
from service.store.base import VectorStore

log = logging.getLogger("citeline")


def embedding_record(settings: Settings) -> naming.EmbeddingRecord:
    if not settings.dense_enabled:
        return naming.EmbeddingRecord(None, None)
    return naming.EmbeddingRecord(settings.embedding_model, settings.embedding_dimension)


def embedding_version(settings: Settings) -> str:
    """What a document's version records of the dense model ("" for BM25 only)."""
    if not settings.dense_enabled:
        return ""
    return f"{settings.embedding_model}:{settings.embedding_dimension}"


def build_store(settings: Settings) -> VectorStore:
    """The physical collection of the configured embedding model (see `store.naming`)."""
    record = embedding_record(settings)
    if settings.qdrant_url:
        from service.store.qdrant import QdrantStore

        return QdrantStore(
            settings.qdrant_url,
            dense_dim=record.dimension,
            collection_name=naming.server_collection(settings.qdrant_collection, record),
            api_key=settings.qdrant_api_key,
            record=record,
        )
    return naming.open_edge_store(settings.data_dir, record)


def build_sparse(settings: Settings) -> Bm25Encoder:
    return Bm25Encoder(avg_len=settings.bm25_avg_len)


def build_dense(settings: Settings) -> DenseEmbedder | None:
    if not settings.dense_enabled:
        return None
    assert settings.embedding_model is not None
    if settings.embedding_provider == "local":
        from service.embeddings.local import LocalEmbedder  # torch: only when configured

        local = LocalEmbedder(settings.embedding_model, settings.embedding_dimension)
        if settings.max_chunk_size_tokens > local.max_tokens:  # word pieces, about as many
            log.warning(
                "embeddings.truncated: %s reads the first %d tokens of each chunk; chunks have up "
                "to %d (CITELINE_MAX_CHUNK_SIZE_TOKENS), so their ends reach BM25 only",
                local.model, local.max_tokens, settings.max_chunk_size_tokens,
            )  # fmt: skip
        return local
    assert settings.embedding_base_url is not None
    return OpenAIEmbedder(
        base_url=settings.embedding_base_url,
        api_key=settings.embedding_api_key,
        model=settings.embedding_model,
        dimension=settings.embedding_dimension,
        timeout=settings.embedding_timeout_s,
        max_retries=settings.embedding_max_retries,
    )

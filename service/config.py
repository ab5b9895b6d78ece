"""One Settings class, read from `CITELINE_*` environment variables (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PositiveInt = Annotated[int, Field(ge=1)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITELINE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    data_dir: Path = Path("data")
    log_level: str = "info"

    # Store: the embedded Qdrant Edge shard under data_dir unless a server URL is given.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection: str = "citeline_chunks"

    # Chunking defaults (overridable per request).
    max_chunk_size_tokens: Annotated[int, Field(ge=64, le=4096)] = 512
    chunk_overlap_tokens: Annotated[int, Field(ge=0, le=2048)] = 64
    bm25_avg_len: Annotated[float, Field(gt=0, le=100_000)] = 256.0

    # Dense embeddings through an OpenAI-compatible /v1/embeddings (off unless a model is named).
    embedding_base_url: str | None = None
    embedding_api_key: str = "unused"
    embedding_model: str | None = None
    embedding_dimension: Annotated[int, Field(ge=1, le=8192)] = 384
    embedding_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    embedding_max_retries: Annotated[int, Field(ge=0, le=10)] = 2

    # Limits: every size and count is bounded.
    max_request_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    max_document_chars: Annotated[int, Field(ge=1)] = 2_000_000
    max_batch_documents: Annotated[int, Field(ge=1, le=10_000)] = 1000
    max_queued_jobs: Annotated[int, Field(ge=1)] = 100_000

    # Pipeline shape.
    embed_batch_size: Annotated[int, Field(ge=1, le=2048)] = 256
    pipeline_queue_size: Annotated[int, Field(ge=1, le=1024)] = 8
    max_inflight_jobs: Annotated[int, Field(ge=1, le=4096)] = 256

    # Query path.
    default_max_results: Annotated[int, Field(ge=1, le=20)] = 5
    min_relevance: Annotated[float, Field(ge=0)] = 1.0
    answer_max_tokens: Annotated[int, Field(ge=16, le=8192)] = 256
    sse_ping_interval_s: Annotated[float, Field(gt=0, le=300)] = 15.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(
                "CITELINE_CHUNK_OVERLAP_TOKENS must be at most half of "
                f"CITELINE_MAX_CHUNK_SIZE_TOKENS ({self.max_chunk_size_tokens // 2})"
            )
        if (self.embedding_model is None) != (self.embedding_base_url is None):
            raise ValueError(
                "CITELINE_EMBEDDING_MODEL and CITELINE_EMBEDDING_BASE_URL must be set together"
            )
        return self

    @property
    def dense_enabled(self) -> bool:
        return self.embedding_model is not None


class SettingsError(SystemExit):
    """Bad configuration at start: exits with a message naming each bad setting."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            name = f"CITELINE_{field.upper()}" if field else "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("citeline: invalid configuration\n" + "\n".join(lines)) from None

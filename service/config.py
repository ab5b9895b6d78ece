"""One Settings class, read from `CITELINE_*` environment variables (and `.env`)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import limits
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.documents import MAX_BATCH_DOCUMENTS, MAX_DOCUMENT_CHARS
from service.pricing import ModelPrice

PositiveInt = Annotated[int, Field(ge=1)]
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # service.embeddings.local.PACKAGED_MODEL
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
_HOST = re.compile(r"^(\*|[A-Za-z0-9._-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?)$")


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
    bm25_avg_len: Annotated[float, Field(gt=0, le=100_000)] = 128.0

    # Dense embeddings: "openai" is any OpenAI-compatible /v1/embeddings, "local" runs a model
    # in-process (pip install 'citeline[local]'; default all-MiniLM-L6-v2, 384). Unset: openai
    # when CITELINE_EMBEDDING_BASE_URL and CITELINE_EMBEDDING_MODEL are both set, else none.
    embedding_provider: Literal["none", "openai", "local"] = "none"
    embedding_base_url: str | None = None
    embedding_api_key: str = "unused"
    embedding_model: str | None = None
    embedding_dimension: Annotated[int, Field(ge=1, le=8192)] = 384
    embedding_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    embedding_max_retries: Annotated[int, Field(ge=0, le=10)] = 2

    # Limits: every size and count is bounded.
    max_request_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    max_document_chars: Annotated[int, Field(ge=1, le=MAX_DOCUMENT_CHARS)] = 2_000_000
    max_batch_documents: Annotated[int, Field(ge=1, le=MAX_BATCH_DOCUMENTS)] = 1000
    max_queued_jobs: Annotated[int, Field(ge=1)] = 100_000

    # Pipeline shape.
    embed_batch_size: Annotated[int, Field(ge=1, le=2048)] = 256
    pipeline_queue_size: Annotated[int, Field(ge=1, le=1024)] = 8
    max_inflight_jobs: Annotated[int, Field(ge=1, le=4096)] = 256
    # How often the embedded store checks whether its index needs rebuilding (0: never).
    store_maintain_interval_s: Annotated[float, Field(ge=0, le=3600)] = 10.0

    # Query path.
    default_max_results: Annotated[int, Field(ge=1, le=20)] = 5
    # Answer only from hits whose relevance (0-1, service.query.relevance) reaches this.
    min_relevance: Annotated[float, Field(ge=0, le=1)] = 0.45
    answer_max_tokens: Annotated[int, Field(ge=16, le=8192)] = 256
    sse_ping_interval_s: Annotated[float, Field(gt=0, le=300)] = 15.0

    # --- LLM answers (begin) --- extractive unless a provider is chosen.
    llm_provider: Literal["extractive", "openai", "anthropic"] = "extractive"
    llm_base_url: str | None = None  # an OpenAI-compatible server or gateway; None: the vendor
    llm_api_key: str | None = None  # None: OPENAI_API_KEY / ANTHROPIC_API_KEY
    llm_model: str | None = None
    llm_context_window: Annotated[int, Field(ge=1024, le=10_000_000)] = 8192
    llm_fallback_provider: Literal["openai", "anthropic"] | None = None  # None: llm_provider
    llm_fallback_base_url: str | None = None  # None: the primary's, for the same provider
    llm_fallback_api_key: str | None = None  # None: the primary's, for the same provider
    llm_fallback_model: str | None = None
    llm_fallback_context_window: Annotated[int, Field(ge=1024, le=10_000_000)] | None = None
    llm_max_answer_tokens: Annotated[int, Field(ge=16, le=65_536)] = 1024
    llm_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    llm_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    llm_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # per attempt: connect, each read
    llm_connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    llm_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # a whole request, all retries
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    llm_rpm: Annotated[int, Field(ge=1)] | None = None  # client-side limits of the primary
    llm_tpm: Annotated[int, Field(ge=1)] | None = None
    llm_rewrite_questions: bool = True  # follow-ups rewritten by the LLM, else by a plain rule
    # JSON: {"model": {"prompt": $, "completion": $, "embedding": $}} per 1M tokens.
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_llm(self) -> Self:
        if self.llm_provider == "extractive":
            for name in ("llm_model", "llm_fallback_model"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"CITELINE_{name.upper()} is set but CITELINE_LLM_PROVIDER is "
                        "extractive; set CITELINE_LLM_PROVIDER to openai or anthropic"
                    )
            return self
        if not self.llm_model:
            raise ValueError(
                f"CITELINE_LLM_MODEL is required when CITELINE_LLM_PROVIDER is {self.llm_provider}"
            )
        fallback_parts = (
            self.llm_fallback_provider,
            self.llm_fallback_base_url,
            self.llm_fallback_api_key,
            self.llm_fallback_context_window,
        )
        if self.llm_fallback_model is None and any(p is not None for p in fallback_parts):
            raise ValueError(
                "CITELINE_LLM_FALLBACK_MODEL is required when another CITELINE_LLM_FALLBACK_* "
                "setting is set"
            )
        window = min(self.llm_context_window, self.llm_fallback_context_window or 10**9)
        if self.llm_max_answer_tokens > window // 2:
            raise ValueError(
                "CITELINE_LLM_MAX_ANSWER_TOKENS must be at most half of the context window "
                f"(CITELINE_LLM_CONTEXT_WINDOW / _FALLBACK_CONTEXT_WINDOW: {window // 2})"
            )
        if self.llm_timeout_s > self.llm_deadline_s:
            raise ValueError("CITELINE_LLM_TIMEOUT_S must not exceed CITELINE_LLM_DEADLINE_S")
        chain: list[tuple[str, str, str | None, str | None]] = [
            ("LLM", self.llm_provider, self.llm_base_url, self.llm_api_key)
        ]
        if self.llm_fallback_model is not None:
            chain.append(("LLM_FALLBACK", *self.llm_fallback_endpoint))
        for prefix, provider, base_url, api_key in chain:
            vendor_key = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
            if base_url is None and api_key is None and not os.environ.get(vendor_key):
                raise ValueError(
                    f"CITELINE_{prefix}_API_KEY (or {vendor_key}) is required for the "
                    f"{provider} API; set CITELINE_{prefix}_BASE_URL for a local server"
                )
        return self

    @property
    def llm_fallback_endpoint(self) -> tuple[str, str | None, str | None]:
        """Provider, base URL and key of the fallback; unset ones follow the same provider's."""
        provider = self.llm_fallback_provider or self.llm_provider
        if provider != self.llm_provider:
            return provider, self.llm_fallback_base_url, self.llm_fallback_api_key
        return (
            provider,
            self.llm_fallback_base_url or self.llm_base_url,
            self.llm_fallback_api_key or self.llm_api_key,
        )

    # --- LLM answers (end) ---

    # --- Frontends (begin) --- CORS for browser apps; resumable chat streams.
    cors_origins: Annotated[str, Field(max_length=8192)] = ""  # comma-separated; "" = no CORS
    cors_allow_credentials: bool = False
    redis_url: str | None = None  # also holds the resume buffer, unless resume_redis_url is set
    resume_redis_url: str | None = None  # resume buffer in this Redis; neither set: in memory
    resume_ttl_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # kept this long after a run
    resume_max_runs: Annotated[int, Field(ge=1, le=100_000)] = 1000  # in memory
    resume_max_run_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @staticmethod
    def _is_origin(origin: str) -> bool:
        scheme, sep, host = origin.partition("://")
        return scheme in ("http", "https") and bool(sep and host) and not set(host) & set("/?# ")

    @model_validator(mode="after")
    def _check_frontends(self) -> Self:
        origins = self.cors_origin_list
        bad = [o for o in origins if o != "*" and not self._is_origin(o)]
        if bad or len(origins) > 100:
            raise ValueError(
                "CITELINE_CORS_ORIGINS must be at most 100 comma-separated origins like "
                f"https://app.example.com (scheme and host, no path); got {bad[:3] or origins[:3]}"
            )
        if "*" in origins and self.cors_allow_credentials:
            raise ValueError(
                'CITELINE_CORS_ORIGINS may not be "*" when CITELINE_CORS_ALLOW_CREDENTIALS is '
                "true: browsers refuse credentials with a wildcard; list the origins instead"
            )
        return self

    # --- Frontends (end) ---

    # --- API keys and limits (begin) --- keys on every route once an admin key is set; Host,
    # Origin and content-type checks for browsers; limits per key and tenant, and on the wire.
    admin_api_key: SecretStr | None = None  # None: open mode (tenant "default", loopback only)
    allowed_hosts: Annotated[str, Field(max_length=8192)] = ""  # "": loopback names + host
    # `limits` notation ("600/minute", "2000000 per day"); None: no limit.
    key_rate_limit: Annotated[str, Field(max_length=64)] | None = "600/minute"  # requests
    tenant_token_limit: Annotated[str, Field(max_length=64)] | None = None  # LLM + embedding
    max_streams_per_key: Annotated[int, Field(ge=1, le=10_000)] = 16  # open at once
    tenant_max_chunks: Annotated[int, Field(ge=1)] | None = None  # storage quota per tenant
    tenant_max_bytes: Annotated[int, Field(ge=1)] | None = None
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    max_headers: Annotated[int, Field(ge=8, le=1000)] = 100
    header_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0  # request line + headers
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # the whole request body
    run_abandon_s: Annotated[float, Field(gt=0, le=3600)] = 15.0  # an unread resumable run

    @property
    def open_mode(self) -> bool:
        """No admin key: no key is checked, every caller is tenant `default`."""
        return self.admin_api_key is None

    @property
    def loopback_only(self) -> bool:
        """Whether CITELINE_HOST is a loopback address (what open mode is limited to)."""
        host = self.host.strip("[]").lower()
        if host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def allowed_host_names(self) -> frozenset[str] | None:
        """Host names a request may name (None: any); the loopback ones are always allowed."""
        names = {h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()}
        if "*" in names:
            return None
        names |= LOOPBACK_NAMES
        if self.host not in WILDCARD_HOSTS:
            names.add(self.host.strip("[]").lower())
        return frozenset(names)

    @model_validator(mode="after")
    def _check_access(self) -> Self:
        key = self.admin_api_key.get_secret_value() if self.admin_api_key else None
        if key is not None and (len(key) < 16 or not key.isprintable() or " " in key):
            raise ValueError(
                "CITELINE_ADMIN_API_KEY must be at least 16 printable characters without spaces "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        for name in ("key_rate_limit", "tenant_token_limit"):
            value = getattr(self, name)
            try:
                if value is not None:
                    limits.parse(value)
            except ValueError:
                raise ValueError(
                    f"CITELINE_{name.upper()} must read like '600/minute' or '2000000 per day'; "
                    f"got {value!r}"
                ) from None
        bad = [h for h in self.allowed_hosts.split(",") if h.strip() and not _HOST.match(h.strip())]
        if bad:
            raise ValueError(
                "CITELINE_ALLOWED_HOSTS must be comma-separated host names (no scheme, port or "
                f"path), or *; got {bad[:3]}"
            )
        return self

    # --- API keys and limits (end) ---
    # --- Files (begin) --- uploads (multipart) of PDF, DOCX, PPTX, HTML, Markdown and text.
    # Originals and canonical texts live in files_dir (default <data_dir>/files); with arq
    # workers on other hosts it must be a directory they all mount.
    files_dir: Path | None = None
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 100 * 1024 * 1024  # one multipart body
    max_file_bytes_pdf: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
    max_file_bytes_docx: Annotated[int, Field(ge=1)] = 25 * 1024 * 1024
    max_file_bytes_pptx: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
    max_file_bytes_html: Annotated[int, Field(ge=1)] = 10 * 1024 * 1024
    max_file_bytes_text: Annotated[int, Field(ge=1)] = 10 * 1024 * 1024  # Markdown and text
    max_file_pages: Annotated[int, Field(ge=1, le=100_000)] = 2000  # PDF pages, PPTX slides
    max_file_uncompressed_bytes: Annotated[int, Field(ge=1)] = 200 * 1024 * 1024  # DOCX, PPTX
    max_form_fields: Annotated[int, Field(ge=1, le=10_000)] = 32  # non-file parts
    max_form_field_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    parse_workers: Annotated[int, Field(ge=1, le=64)] = 2  # parser processes
    # Per file; with arq at most half of CITELINE_JOB_TIMEOUT_S (parsing is part of a try).
    parse_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    parse_memory_mb: Annotated[int, Field(ge=128, le=1_048_576)] = 1024  # per parser process

    @property
    def files_root(self) -> Path:
        return self.files_dir if self.files_dir is not None else self.data_dir / "files"

    @model_validator(mode="after")
    def _check_files(self) -> Self:
        biggest = max(
            self.max_file_bytes_pdf, self.max_file_bytes_docx, self.max_file_bytes_pptx,
            self.max_file_bytes_html, self.max_file_bytes_text,
        )  # fmt: skip
        if biggest > self.max_upload_bytes:
            raise ValueError(
                f"CITELINE_MAX_UPLOAD_BYTES ({self.max_upload_bytes}) must be at least the "
                f"largest CITELINE_MAX_FILE_BYTES_* ({biggest})"
            )
        return self

    # --- Files (end) ---

    # --- Scaled-out indexing (begin) --- with CITELINE_QUEUE=arq, jobs live in Redis and run
    # on arq: in the API process (worker=embedded) or in `python -m workers` (worker=external).
    queue: Literal["embedded", "arq"] = "embedded"
    worker: Literal["embedded", "external"] | None = None  # None: embedded
    redis_timeout_s: Annotated[float, Field(gt=0, le=10)] = 1.0  # each registry call, API side
    job_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0  # one try of one job
    job_max_tries: Annotated[int, Field(ge=1, le=100)] = 5
    job_retry_base_s: Annotated[float, Field(ge=0, le=600)] = 2.0  # backoff: base·2^(try-1)
    job_completion_wait_s: Annotated[int, Field(ge=0, le=3600)] = 20  # on SIGTERM
    embed_retry_budget_s: Annotated[float, Field(ge=0, le=3600)] = 60.0  # in-process retries
    worker_max_jobs: Annotated[int, Field(ge=1, le=1000)] = 32
    worker_poll_delay_s: Annotated[float, Field(gt=0, le=10)] = 0.2
    worker_heartbeat_s: Annotated[float, Field(ge=1, le=600)] = 10.0

    @model_validator(mode="after")
    def _check_workers(self) -> Self:
        if self.queue == "arq" and self.redis_url is None:
            raise ValueError(
                "CITELINE_QUEUE=arq needs CITELINE_REDIS_URL (the Redis that holds the jobs); "
                "set it, or unset CITELINE_QUEUE to index inside this process"
            )
        if self.queue == "embedded" and self.worker is not None:
            raise ValueError(
                f"CITELINE_WORKER={self.worker} is for CITELINE_QUEUE=arq, but the queue is "
                "embedded (jobs run inside this process); set CITELINE_QUEUE=arq or unset "
                "CITELINE_WORKER"
            )
        if self.worker == "external" and self.qdrant_url is None:
            raise ValueError(
                "CITELINE_WORKER=external needs CITELINE_QDRANT_URL (a Qdrant server): the "
                "embedded Qdrant Edge store belongs to one process, so worker processes cannot "
                "write to it; unset CITELINE_WORKER to run the worker inside the API instead"
            )
        return self

    # --- Scaled-out indexing (end) ---

    # --- Operations (begin) --- logs, metrics, traces, admission, shutdown, backups.
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True  # one `http.request` line per request (INFO), with its context
    metrics_enabled: bool = True  # GET /metrics (Prometheus text)
    # Bearer token for /metrics and the admin routes; unset: /metrics is open, admin refused.
    metrics_token: SecretStr | None = None
    # Tenant label on per-tenant metrics: the first N tenants seen get their own value, the
    # rest share "other"; 0 (default): no tenant values at all (label "-").
    metrics_tenant_labels: Annotated[int, Field(ge=0, le=1000)] = 0
    worker_metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # python -m workers
    otel_enabled: bool = False  # OpenTelemetry spans (pip install 'citeline[otel]'), OTLP export
    otel_capture_content: bool = False  # prompts and answers as span attributes (off: private)
    shutdown_grace_s: Annotated[float, Field(ge=0, le=3600)] = 10.0  # answers finish; then ended
    # Requests in flight per kind; beyond, 503 + Retry-After at once instead of a queue.
    max_inflight_answers: Annotated[int, Field(ge=1, le=100_000)] = 128
    max_inflight_searches: Annotated[int, Field(ge=1, le=100_000)] = 128
    max_inflight_ingest: Annotated[int, Field(ge=1, le=100_000)] = 64

    @property
    def metrics_bearer(self) -> str | None:
        return self.metrics_token.get_secret_value() if self.metrics_token else None

    # --- Operations (end) ---

    @model_validator(mode="before")
    @classmethod
    def _embedding_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        provider = data.get("embedding_provider")
        model, url = data.get("embedding_model"), data.get("embedding_base_url")
        if provider is None and model is not None and url is not None:
            return {**data, "embedding_provider": "openai"}
        if provider == "local" and model is None:
            return {**data, "embedding_model": LOCAL_EMBEDDING_MODEL}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(
                "CITELINE_CHUNK_OVERLAP_TOKENS must be at most half of "
                f"CITELINE_MAX_CHUNK_SIZE_TOKENS ({self.max_chunk_size_tokens // 2})"
            )
        provider, model, url = (
            self.embedding_provider, self.embedding_model, self.embedding_base_url
        )  # fmt: skip
        if provider != "local" and (model is None) != (url is None):
            raise ValueError(
                "CITELINE_EMBEDDING_MODEL and CITELINE_EMBEDDING_BASE_URL must be set together "
                "(an OpenAI-compatible server), or set CITELINE_EMBEDDING_PROVIDER=local"
            )
        if provider == "none" and model is not None:
            raise ValueError(
                "CITELINE_EMBEDDING_MODEL is set but CITELINE_EMBEDDING_PROVIDER is none; "
                "set CITELINE_EMBEDDING_PROVIDER to openai or local, or unset the model"
            )
        if provider == "openai" and model is None:
            raise ValueError(
                "CITELINE_EMBEDDING_PROVIDER=openai needs CITELINE_EMBEDDING_BASE_URL and "
                "CITELINE_EMBEDDING_MODEL"
            )
        if provider == "local" and url is not None:
            raise ValueError(
                "CITELINE_EMBEDDING_BASE_URL is for CITELINE_EMBEDDING_PROVIDER=openai; the local "
                "provider runs the model in this process: unset one of them"
            )
        return self

    @property
    def dense_enabled(self) -> bool:
        return self.embedding_provider != "none"


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

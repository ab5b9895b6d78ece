"""The container: everything built once at start and closed at shutdown.

`Runtime.start` builds the store, the embedders, the catalog and queue, the retriever, the
answerer and the use cases from the settings; the routes receive the parts they use through
`service.deps`, never the container itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from service.auth.authenticator import Authenticator
from service.auth.keys import KeyStore
from service.auth.sqlite_keys import ACCESS_FILE, SqliteKeyStore
from service.catalog.base import JobRegistry
from service.clients import build_dense, build_sparse, build_store, embedding_version
from service.config import Settings
from service.documents import Documents
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import K1, B
from service.evaluation.jobs import Evaluations
from service.files import FileStore
from service.jobs.base import JobQueue
from service.jobs.setup import open_jobs
from service.llm.base import LLM
from service.llm.factory import build_llm
from service.pricing import Pricing
from service.query import relevance
from service.query.answering import Answerer
from service.query.ask import Asker
from service.query.extractive import EXTRACTIVE_MODEL, ExtractiveAnswerer
from service.query.llm_answerer import LLMAnswerer
from service.query.retrieval import Retriever
from service.quotas.metering import Metering
from service.quotas.rates import RateLimits
from service.quotas.streams import StreamSlots
from service.quotas.usage import RedisUsage, SqliteUsage, UsageBackend, UsageLedger
from service.store.base import RRF_K, RRF_WEIGHTS, VectorStore
from service.store.maintenance import Maintenance
from service.streams.resume import Runs, build_runs
from service.telemetry.llm import LLMTelemetry

log = logging.getLogger("citeline")


def secure_data_dir(path: Path) -> None:
    """The data dir (created if missing) and everything in it: 0700 for directories, 0600 for
    files, so no other local user reads the documents. New files follow the process umask,
    which `python -m service` and `python -m workers` set to 077."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in [path, *path.rglob("*")]:
        if not entry.is_symlink():
            entry.chmod(0o700 if entry.is_dir() else 0o600)


def build_key_store(settings: Settings) -> KeyStore:
    """Keys live with the catalog: SQLite in the data dir, or the arq queue's Redis."""
    if settings.queue == "arq":
        from service.auth.redis_keys import RedisKeyStore

        assert settings.redis_url is not None
        return RedisKeyStore(settings.redis_url, timeout_s=settings.redis_timeout_s)
    return SqliteKeyStore(settings.data_dir / ACCESS_FILE)


def build_usage(settings: Settings) -> UsageLedger:
    backend: UsageBackend
    if settings.queue == "arq":
        assert settings.redis_url is not None
        backend = RedisUsage(settings.redis_url, settings.redis_timeout_s)
    else:
        backend = SqliteUsage(settings.data_dir / ACCESS_FILE)
    return UsageLedger(backend)


def build_pricing(settings: Settings) -> Pricing:
    paid_embeddings = settings.embedding_provider == "openai"
    return Pricing(
        settings.model_prices,
        settings.embedding_model if paid_embeddings else None,
        frozenset({EXTRACTIVE_MODEL}),
    )


def evaluation_settings(settings: Settings, answer_model: str) -> dict[str, object]:
    """What an evaluation run records about the retrieval and answers that produced it."""
    return {
        "retrieval": "hybrid" if settings.embedding_provider != "none" else "bm25",
        "embedding_model": settings.embedding_model,
        "bm25": {"k1": K1, "b": B, "avg_len": settings.bm25_avg_len},
        "rrf": {"k": RRF_K, "weights": list(RRF_WEIGHTS)},
        "dense_relevance": {"floor": relevance.DENSE_FLOOR, "ceiling": relevance.DENSE_CEILING},
        "answer_model": answer_model,
        "chunk_tokens": [settings.max_chunk_size_tokens, settings.chunk_overlap_tokens],
    }


@dataclass
class Runtime:
    settings: Settings
    registry: JobRegistry
    store: VectorStore
    dense: DenseEmbedder | None
    queue: JobQueue
    retriever: Retriever
    asker: Asker
    documents: Documents
    pricing: Pricing
    runs: Runs
    evaluations: Evaluations
    llm: LLM | None
    auth: Authenticator
    limits: RateLimits
    streams: StreamSlots
    usage: UsageLedger
    metering: Metering
    maintenance: Maintenance

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        await asyncio.to_thread(secure_data_dir, settings.data_dir)
        # A local model takes seconds to load: off the loop, and before the store is opened.
        dense = await asyncio.to_thread(build_dense, settings)
        store = await asyncio.to_thread(build_store, settings)
        sparse = build_sparse(settings)
        registry, queue = await open_jobs(settings, store, sparse, dense)
        # Once per process: its rate limiter is shared by all requests.
        llm = build_llm(settings, LLMTelemetry())
        answerer: Answerer = (
            LLMAnswerer(llm, max_answer_tokens=settings.llm_max_answer_tokens)
            if llm is not None
            else ExtractiveAnswerer(sparse, max_tokens=settings.answer_max_tokens)
        )
        retriever = Retriever(store, sparse, dense, registry, settings.min_relevance)
        pricing = build_pricing(settings)
        asker = Asker(
            retriever,
            answerer,
            pricing,
            default_max_results=settings.default_max_results,
            rewriter=llm if settings.llm_rewrite_questions else None,
        )
        limits, usage = RateLimits(settings), build_usage(settings)
        metering = Metering(limits, usage, pricing)
        files = FileStore(settings.files_root)
        documents = Documents(
            settings, registry, queue, store, embedding_version(settings), metering, files
        )
        keys = build_key_store(settings)
        await keys.open()
        admin_key = settings.admin_api_key
        auth = Authenticator(admin_key.get_secret_value() if admin_key else None, keys)
        runtime = cls(
            settings=settings,
            registry=registry,
            store=store,
            dense=dense,
            queue=queue,
            retriever=retriever,
            asker=asker,
            documents=documents,
            pricing=pricing,
            runs=build_runs(settings),
            evaluations=Evaluations(asker, evaluation_settings(settings, answerer.model)),
            llm=llm,
            auth=auth,
            limits=limits,
            streams=StreamSlots(settings.max_streams_per_key),
            usage=usage,
            metering=metering,
            maintenance=Maintenance(store, settings.store_maintain_interval_s),
        )
        await queue.start()
        runtime.usage.start()
        runtime.maintenance.start()
        log.info("runtime.started", extra={"queued_jobs": registry.queued})
        return runtime

    async def compact(self) -> None:
        """What deletions left on disk, removed (see `Documents.compact`)."""
        await self.documents.compact()

    async def close(self, wait_s: float | None = None) -> None:
        """Close everything; running jobs get `wait_s` to finish (None: the queue's default)."""
        await self.evaluations.close()
        await self.runs.close()
        await self.maintenance.close()
        await self.usage.close()
        await self.limits.close()
        await self.auth.store.close()
        await self.queue.stop(wait_s)
        if self.dense is not None:
            await self.dense.aclose()
        if self.llm is not None:
            await self.llm.aclose()
        await asyncio.to_thread(self.store.close)
        await self.registry.close()

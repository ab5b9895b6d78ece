"""Prometheus metrics: what every part of the service records, in one registry.

Labels stay bounded: routes are templates (`/v1/jobs/{job_id}`), models and providers come
from the settings, and tenants appear only when CITELINE_METRICS_TENANT_LABELS allows it (the
first N tenants seen keep their own value, the rest share `other`). Values that live elsewhere
(job counts in the catalog, pipeline backlogs, open runs) are sampled at scrape time by the
`/metrics` route (`sampled_families`), not kept in step by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["REGISTRY", "render", "tenant_label"]

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by route template, method and status; a stream lasts until its end",
    ["method", "route", "status"],
    buckets=(*_LATENCY, 60.0),
    registry=REGISTRY,
)
HTTP_INFLIGHT = Gauge(
    "citeline_http_requests_inflight",
    "Requests being served, by admission kind",
    ["kind"],
    registry=REGISTRY,
)
HTTP_REJECTED = Counter(
    "citeline_http_rejected_total",
    "Requests answered 503 at once: over the kind's in-flight limit, or while shutting down",
    ["kind", "reason"],
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "citeline_active_streams", "Open streamed responses, by wire format", ["format"],
    registry=REGISTRY,
)  # fmt: skip
STREAM_RESUMES = Counter(
    "citeline_stream_resumes_total",
    "Chat streams picked up again (GET /api/chat/{id}/stream)",
    ["outcome"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "citeline_jobs_finished_total",
    "Indexing job attempts by how they ended (retry: transient, tried again)",
    ["status"],
    registry=REGISTRY,
)
CHUNKS_INDEXED = Counter(
    "citeline_chunks_indexed_total", "Chunks stored by completed jobs", ["tenant"],
    registry=REGISTRY,
)  # fmt: skip
INGEST_STAGE = Histogram(
    "citeline_ingest_stage_seconds",
    "Pipeline stage latency: parse (per file), chunk, embed (dense and BM25), upsert (per batch)",
    ["stage"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
RETRIEVAL = Histogram(
    "citeline_retrieval_seconds",
    "Retrieval latency (query encoding, search, live-version check)",
    ["mode"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
EMBEDDING_TOKENS = Counter(
    "citeline_embedding_tokens_total",
    "Tokens sent to the dense embedder",
    ["model", "path"],
    registry=REGISTRY,
)
LLM_TTFT = Histogram(
    "citeline_llm_time_to_first_token_seconds",
    "From the chat call (rate limiter and retries included) to its first text delta",
    ["provider", "model"],
    buckets=_SLOW,
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "citeline_llm_tokens_total",
    "Chat model tokens",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)
LLM_ERRORS = Counter(
    "citeline_llm_errors_total",
    "Failed chat calls by kind: 429, timeout, 5xx, 4xx, connection, stream_broken",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)


class TenantLabels:
    """At most `limit` tenant label values; later tenants share `other`; 0 means none (`-`)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # pipelines of several test servers share the process

    def __call__(self, tenant: str) -> str:
        if self.limit == 0:
            return "-"
        if tenant in self._seen:
            return tenant
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(tenant)
                return tenant
        return "other"


tenant_label = TenantLabels()


def configure(tenant_labels: int) -> None:
    tenant_label.limit = tenant_labels


def gauge(name: str, documentation: str, label: str, values: Mapping[str, float]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(sampled: Iterable[Metric] = ()) -> bytes:
    """The exposition text: every recorded metric, then the families sampled for this scrape."""
    once = CollectorRegistry(auto_describe=False)
    once.register(_Families(sampled))
    return generate_latest(REGISTRY) + generate_latest(once)

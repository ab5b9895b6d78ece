"""The issue's targets, each next to the measured figure."""

from __future__ import annotations

from typing import Any


def _target(name: str, measured: float | None, op: str, bound: float, unit: str) -> dict[str, Any]:
    met = measured is not None and (measured <= bound if op == "<=" else measured >= bound)
    return {
        "name": name,
        "measured": measured,
        "target": f"{op} {bound:g}",
        "unit": unit,
        "met": met,
    }


def check_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    # Judged on the shard as the server left it (the forced optimise is only for comparison).
    retrieval = r["retrieval_in_process"]["as_served"]["retriever_search"]["latency_ms"]
    query = r["query_http"]["query"]["latency_ms"]
    ingest = r["ingestion"]
    probe = ingest["probe_post_document"]["latency_ms"]
    return [
        _target("retrieval p50 (in process)", retrieval.get("p50"), "<=", 10, "ms"),
        _target("retrieval p99 (in process)", retrieval.get("p99"), "<=", 50, "ms"),
        _target("/v1/query p50 (HTTP, extractive)", query.get("p50"), "<=", 30, "ms"),
        _target("ingestion, BM25 only", ingest["chunks_per_s"], ">=", 1000, "chunks/s"),
        _target("POST /v1/documents p99 while ingesting", probe.get("p99"), "<=", 20, "ms"),
    ]

"""BEIR / pytrec_eval definitions of nDCG@k and recall@k, and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

Run = dict[str, list[str]]  # query id -> ranked corpus ids, best first


def ndcg_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Graded gains (the qrels score itself, as trec_eval), discount 1/log2(rank + 1)."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    relevant = {d for d, g in rels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def evaluate(run: Run, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Means over the queries that have relevance judgements; a missing run counts as 0."""
    judged = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    sums = {"ndcg@10": 0.0, "recall@5": 0.0, "recall@100": 0.0}
    for qid in judged:
        ranked, rels = run.get(qid, []), qrels[qid]
        sums["ndcg@10"] += ndcg_at(ranked, rels, 10)
        sums["recall@5"] += recall_at(ranked, rels, 5)
        sums["recall@100"] += recall_at(ranked, rels, 100)
    return {name: round(total / max(len(judged), 1), 4) for name, total in sums.items()}


def dedupe(ids: Sequence[str]) -> list[str]:
    """Chunk hits to a document ranking: each document at its best chunk's rank."""
    return list(dict.fromkeys(ids))


def latency_ms(
    samples_s: Sequence[float], quantiles: Sequence[int] = (50, 95, 99)
) -> dict[str, float]:
    """Percentiles (linear interpolation) of durations given in seconds, in milliseconds."""
    if not samples_s:
        return {"n": 0}
    arr = np.asarray(samples_s, dtype=float) * 1000.0
    out: dict[str, float] = {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in quantiles}
    out.update(mean=round(float(arr.mean()), 3), max=round(float(arr.max()), 3), n=len(arr))
    return out

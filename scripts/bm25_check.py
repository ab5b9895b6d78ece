"""Scratch measurement: nDCG@10 of pure BM25 with Bm25Encoder vs the bm25s library, and speed.

The engine's part is simulated: document values times Qdrant's IDF ln(1 + (N - n + 0.5)/(n + 0.5)),
summed over the query's terms. Usage:

    .venv/bin/python scripts/bm25_check.py [/work/shared/data/squad2-dev]
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from service.embeddings.sparse import Bm25Encoder


def load(root: Path) -> tuple[list[str], list[str], list[str], list[str], dict[str, set[str]]]:
    docs = [json.loads(line) for line in (root / "corpus.jsonl").open()]
    queries = [json.loads(line) for line in (root / "queries.jsonl").open()]
    qrels: dict[str, set[str]] = defaultdict(set)
    for row in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = row.split("\t")
        if int(score) > 0:
            qrels[qid].add(did)
    queries = [q for q in queries if q["_id"] in qrels]
    doc_texts = [f"{d['title']} {d['text']}" for d in docs]  # BEIR: the title is indexed too
    return (
        [d["_id"] for d in docs],
        doc_texts,
        [q["_id"] for q in queries],
        [q["text"] for q in queries],
        qrels,
    )


def ndcg10(ranked: list[list[str]], qids: list[str], qrels: dict[str, set[str]]) -> float:
    total = 0.0
    for qid, docs in zip(qids, ranked, strict=True):
        rel = qrels[qid]
        dcg = sum(1 / math.log2(r + 2) for r, d in enumerate(docs[:10]) if d in rel)
        total += dcg / sum(1 / math.log2(r + 2) for r in range(min(len(rel), 10)))
    return total / len(qids)


def rank_ours(
    doc_ids: list[str], docs: list[str], queries: list[str], enc: Bm25Encoder, counts: bool
) -> list[list[str]]:
    vectors = enc.encode_documents(docs)
    cols: dict[int, int] = {}
    matrix_rows, matrix_cols, vals = [], [], []
    for r, v in enumerate(vectors):
        for i, x in zip(v.indices, v.values, strict=True):
            matrix_rows.append(r)
            matrix_cols.append(cols.setdefault(i, len(cols)))
            vals.append(x)
    matrix = np.zeros((len(docs), len(cols)))  # small corpus: dense is fine
    matrix[matrix_rows, matrix_cols] = vals
    df = (matrix > 0).sum(axis=0)
    matrix *= np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))  # Qdrant's IDF modifier
    ranked = []
    for query in queries:
        q = enc.encode_query(query)
        weights = Counter(enc._term_ids(query)) if counts else dict.fromkeys(q.indices, 1.0)
        qvec = np.zeros(len(cols))
        for term, w in weights.items():
            if term in cols:
                qvec[cols[term]] = w
        scores = matrix @ qvec
        top = np.argsort(-scores, kind="stable")[:10]
        ranked.append([doc_ids[t] for t in top if scores[t] > 0])
    return ranked


def rank_bm25s(
    doc_ids: list[str], docs: list[str], queries: list[str], k1: float = 1.5, stopwords: str = "en"
) -> list[list[str]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=k1)  # method "lucene", b=0.75
    corpus = bm25s.tokenize(docs, stopwords=stopwords, stemmer=stemmer, show_progress=False)
    retriever.index(corpus, show_progress=False)
    qt = bm25s.tokenize(queries, stopwords=stopwords, stemmer=stemmer, show_progress=False)
    res, scores = retriever.retrieve(qt, k=10, show_progress=False, n_threads=1)
    return [
        [doc_ids[j] for j, s in zip(r, sc, strict=True) if s > 0]
        for r, sc in zip(res, scores, strict=True)
    ]


def speed(words: list[str]) -> None:
    rng = random.Random(0)
    paras = [" ".join(rng.choice(words) for _ in range(150)) for _ in range(5000)]
    cold = Bm25Encoder()
    t = time.perf_counter()
    cold.encode_documents(paras)
    print(
        f"encoder, 150-word paragraphs, cold cache: {len(paras) / (time.perf_counter() - t):,.0f}/s"
    )
    t = time.perf_counter()
    cold.encode_documents(paras)
    print(
        f"encoder, 150-word paragraphs, warm cache: {len(paras) / (time.perf_counter() - t):,.0f}/s"
    )


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/squad2-dev")
    doc_ids, docs, qids, queries, qrels = load(root)
    print(f"{len(docs)} passages, {len(qids)} queries with qrels")
    for k1, stopwords in ((1.5, "en"), (1.2, "en"), (1.2, "en_plus")):
        score = ndcg10(rank_bm25s(doc_ids, docs, queries, k1, stopwords), qids, qrels)
        print(f"bm25s k1={k1} stopwords={stopwords:8}  nDCG@10 = {score:.4f}")
    for avg_len in (64, 128, 256, 512):
        for counts in (False, True):
            ranked = rank_ours(doc_ids, docs, queries, Bm25Encoder(avg_len=avg_len), counts)
            label = "counts" if counts else "unique"
            score = ndcg10(ranked, qids, qrels)
            print(f"ours avg_len={avg_len:<4} query={label}  nDCG@10 = {score:.4f}")
    speed(" ".join(docs).split())


if __name__ == "__main__":
    main()

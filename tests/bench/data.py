"""A BEIR-layout dataset: corpus.jsonl, queries.jsonl and qrels/test.tsv."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

Qrels = dict[str, dict[str, int]]  # query id -> corpus id -> graded relevance


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    corpus: list[CorpusDoc]
    queries: dict[str, str]
    qrels: Qrels


def _jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as f:
        next(f)  # header: query-id, corpus-id, score
        for line in f:
            if not line.strip():
                continue
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def load_dataset(folder: Path) -> Dataset:
    corpus = [
        CorpusDoc(d["_id"], d.get("title") or "", d["text"])
        for d in _jsonl(folder / "corpus.jsonl")
    ]
    queries = {q["_id"]: q["text"] for q in _jsonl(folder / "queries.jsonl")}
    return Dataset(
        folder.resolve().name, corpus, queries, load_qrels(folder / "qrels" / "test.tsv")
    )

"""Bm25Encoder: stable term ids, stopwords, stemming, BM25 values, and well-formed vectors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.embeddings.sparse import STOPWORDS, Bm25Encoder, term_id
from service.store.base import SparseVector

REPO = Path(__file__).resolve().parents[3]
SAMPLE = "The runners were RUNNING to the harbour; 42 ships ran aground in 1973, don't panic!"


def _well_formed(v: SparseVector) -> None:
    assert v.indices == sorted(set(v.indices)), "indices unique and ascending"
    assert len(v.values) == len(v.indices)
    assert all(0 <= i < 2**32 for i in v.indices)
    assert all(x > 0 and math.isfinite(x) for x in v.values)


def test_term_ids_are_pinned() -> None:
    # Changing these re-keys every stored vector: a migration, never an accident.
    assert term_id("run") == 3365767514
    assert term_id("cat") == 1787499195


def test_ids_are_stable_across_processes() -> None:
    script = (
        "import json; from service.embeddings.sparse import Bm25Encoder; "
        f"print(json.dumps(Bm25Encoder().encode_query({SAMPLE!r}).indices))"
    )
    here = Bm25Encoder().encode_query(SAMPLE).indices
    for seed in ("1", "2"):  # str hashes differ between these processes
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(out.stdout) == here


def test_stopwords_are_dropped() -> None:
    enc = Bm25Encoder()
    assert enc.terms("What is the name of it?") == ["name"]
    assert enc.encode_query("the of and to is which what") == SparseVector([], [])
    assert {"the", "what", "t", "s"} <= STOPWORDS


def test_stemming_merges_inflections() -> None:
    enc = Bm25Encoder()
    running, runs = enc.encode_query("running").indices, enc.encode_query("runs").indices
    assert running == runs == [term_id("run")]
    assert enc.encode_query("runner") != enc.encode_query("run")


def test_tokenization() -> None:
    enc = Bm25Encoder()
    assert enc.terms("foo_bar, C3PO-droid: 2024") == ["foo", "bar", "c3po", "droid", "2024"]
    # Case, composed vs combining accents, and compatibility forms all meet.
    assert enc.encode_query("CAFÉ") == enc.encode_query("cafe\u0301") == enc.encode_query("café")
    assert enc.terms("ﬁsh Straße") == ["fish", "strass"]
    assert enc.terms("東京") == ["東", "京", "東京"]  # CJK runs: characters and bigrams


def test_document_values_are_bm25_term_frequency() -> None:
    enc = Bm25Encoder(avg_len=4)
    v = enc.encode_document("harbor harbor ships")  # 3 terms: harbor tf=2, ship tf=1
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 4)
    expected = {term_id("harbor"): 2 * 2.2 / (2 + norm), term_id("ship"): 1 * 2.2 / (1 + norm)}
    assert dict(zip(v.indices, v.values, strict=True)) == pytest.approx(expected)


def test_frequency_saturates_and_length_normalises() -> None:
    enc = Bm25Encoder()
    one, many = (enc.encode_document(" ".join(["harbor"] * n)).values[0] for n in (1, 50))
    assert one < many < 2.2  # k1 + 1 bounds the contribution of any term
    short = enc.encode_document("harbor ship").values
    long = enc.encode_document("harbor " + " ".join(f"w{i}" for i in range(500))).values
    assert long[0] < short[0]


def test_query_weights_each_distinct_term_once() -> None:
    v = Bm25Encoder().encode_query("ship ships SHIP harbor")
    assert v.values == [1.0, 1.0]
    _well_formed(v)


def test_vectors_are_well_formed() -> None:
    enc = Bm25Encoder()
    texts = [SAMPLE, "x " * 1000, "Ünïcödé 😀 text, with 🍕 and e\u0301", "a b c 1 2 3"]
    for v in [*enc.encode_documents(texts), *map(enc.encode_query, texts)]:
        _well_formed(v)


@pytest.mark.parametrize("text", ["", "   \n", "!!! ... ---", "the and of"])
def test_empty_text_gives_an_empty_vector(text: str) -> None:
    enc = Bm25Encoder()
    assert enc.encode_query(text) == SparseVector([], [])
    assert enc.encode_documents([text]) == [SparseVector([], [])]


def test_ranks_the_matching_document_first() -> None:
    """Pure BM25 as the engine computes it: document values times Qdrant's IDF."""
    docs = [
        "The Normans were descended from Norse raiders who settled in Normandy.",
        "The steam engine uses steam pressure to drive a piston.",
        "Oil prices rose sharply during the 1973 oil crisis.",
    ]
    enc = Bm25Encoder()
    vectors = [dict(zip(v.indices, v.values, strict=True)) for v in enc.encode_documents(docs)]

    def idf(term: int) -> float:
        n = sum(term in v for v in vectors)
        return math.log(1 + (len(vectors) - n + 0.5) / (n + 0.5))

    for query, best in [("Who settled Normandy?", 0), ("piston pressure", 1), ("oil crisis", 2)]:
        q = enc.encode_query(query)
        scores = [
            sum(w * v.get(t, 0.0) * idf(t) for t, w in zip(q.indices, q.values, strict=True))
            for v in vectors
        ]
        assert max(range(len(docs)), key=scores.__getitem__) == best


def test_concurrent_use_matches_sequential() -> None:
    texts = [f"{SAMPLE} variant{i} runners running {i}" for i in range(200)]
    expected = Bm25Encoder().encode_documents(texts)
    shared = Bm25Encoder()
    results: list[list[SparseVector]] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared.encode_documents(texts)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert all(r == expected for r in results)


@pytest.mark.parametrize("kwargs", [{"avg_len": 0}, {"avg_len": -5}, {"k1": 0}, {"b": 1.5}])
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Bm25Encoder(**kwargs)

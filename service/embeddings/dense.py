"""Dense embeddings: the embedder contract and an OpenAI-compatible implementation.

Errors raised by embedders:

    EmbeddingError                  base: no embeddings were produced
    ├── TransientEmbeddingError     429, 408/409, 5xx, timeouts and connection failures, once
    │                               the SDK's own retries are spent; try again later, after
    │                               `retry_after` seconds when the server said so
    └── PermanentEmbeddingError     400/401/403/404/422, an exhausted quota, or a response that
                                    breaks the contract (wrong count, wrong dimension, NaN/inf);
                                    the same request will fail the same way

A message says what failed; what the provider answered is in `detail`, for the server log.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Sequence
from typing import Protocol

import httpx
import numpy as np
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from service.upstream import classify_openai_error

__all__ = [
    "DenseEmbedder",
    "EmbeddingError",
    "OpenAIEmbedder",
    "PermanentEmbeddingError",
    "TransientEmbeddingError",
]


class EmbeddingError(Exception):
    def __init__(self, message: str, *, status_code: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class TransientEmbeddingError(EmbeddingError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        self.retry_after = retry_after


class PermanentEmbeddingError(EmbeddingError):
    pass


class DenseEmbedder(Protocol):
    """Turns texts into fixed-size vectors; vectors come back in input order."""

    model: str
    dimension: int

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...

    async def aclose(self) -> None: ...


def _map_error(exc: openai.OpenAIError, model: str) -> EmbeddingError:
    """Translate an SDK exception, raised after its retries, into our tree."""
    failure = classify_openai_error(exc, f"embedding request to {model!r}", "the embedding server")
    if failure.transient:
        return TransientEmbeddingError(
            failure.message,
            status_code=failure.status,
            retry_after=failure.retry_after,
            detail=failure.detail,
        )
    return PermanentEmbeddingError(
        failure.message, status_code=failure.status, detail=failure.detail
    )


class OpenAIEmbedder:
    """DenseEmbedder over any OpenAI-compatible /v1/embeddings endpoint.

    `timeout` bounds each attempt (the SDK's default is 600 s); an unlucky call can take
    (max_retries + 1) × timeout plus backoff. `api_key=None` falls back to OPENAI_API_KEY.
    """

    provider = "openai"  # for metrics and spans

    def __init__(
        self,
        *,
        model: str,
        dimension: int,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        batch_size: int = 128,
        max_concurrency: int = 4,
        send_dimensions: bool = False,
    ) -> None:
        if dimension < 1 or batch_size < 1 or max_concurrency < 1 or max_retries < 0:
            raise ValueError(
                "dimension, batch_size and max_concurrency must be positive, max_retries >= 0"
            )
        self.model = model
        self.dimension = dimension
        self.batch_size = batch_size
        # Only models that can shorten vectors (text-embedding-3-*) accept `dimensions`.
        self._send_dimensions = send_dimensions
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
            http_client=DefaultAioHttpClient(),  # aiohttp's C parser: less CPU per response
        )

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):  # a str is a Sequence[str] too: one vector per character
            raise TypeError("embed_documents takes a sequence of texts; use embed_query")
        if not texts:
            return []
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        try:
            # A TaskGroup cancels the remaining batches as soon as one fails.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._embed_batch(batch)) for batch in batches]
        except BaseExceptionGroup as failed:
            first = _first_embedding_error(failed)
            if first is None:
                raise
            raise first from None
        return [vector for task in tasks for vector in task.result()]

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIEmbedder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, object] = {
            "model": self.model,
            "input": list(texts),
            "encoding_format": "base64",  # a quarter of the bytes of a JSON list of floats
        }
        if self._send_dimensions:
            body["dimensions"] = self.dimension
        async with self._semaphore:
            try:
                # The SDK's own request (auth, timeouts, retries, status errors), read as JSON:
                # `embeddings.create` would walk the input and build pydantic models of the
                # answer, 1.5 of the 5 ms of event-loop time a one-text query embedding took.
                response = await self._client.post("/embeddings", cast_to=httpx.Response, body=body)
                data = _embedding_items(response.json())
            except openai.OpenAIError as exc:
                raise _map_error(exc, self.model) from exc
            except httpx.HTTPError as exc:  # transport errors the SDK let through unwrapped
                message = f"embedding request to {self.model!r} failed ({type(exc).__name__})"
                raise TransientEmbeddingError(message, detail=repr(exc)) from exc
            except (ValueError, TypeError, KeyError) as exc:  # not JSON, or not the shape
                raise PermanentEmbeddingError(
                    f"invalid embedding response from {self.model!r}", detail=repr(exc)
                ) from exc
        return self._validated(data, len(texts))

    def _validated(self, data: list[tuple[int, list[float]]], expected: int) -> list[list[float]]:
        if len(data) != expected:
            raise PermanentEmbeddingError(
                f"{self.model!r} returned {len(data)} embeddings for {expected} inputs"
            )
        ordered = sorted(data, key=lambda item: item[0])
        if [index for index, _ in ordered] != list(range(expected)):
            raise PermanentEmbeddingError(f"{self.model!r} returned duplicate or missing indices")
        vectors = []
        for index, vector in ordered:
            if len(vector) != self.dimension:
                raise PermanentEmbeddingError(
                    f"{self.model!r} returned a {len(vector)}-dimensional vector at index "
                    f"{index}; expected {self.dimension}"
                )
            if not all(map(math.isfinite, vector)):
                raise PermanentEmbeddingError(
                    f"{self.model!r} returned a vector with NaN or infinite values at index {index}"
                )
            vectors.append(vector)
        return vectors


def _embedding_items(answer: object) -> list[tuple[int, list[float]]]:
    """(index, vector) of each item of an embeddings answer: base64 of little-endian float32,
    or (from servers that ignore `encoding_format`) a list of numbers. Raises ValueError,
    TypeError or KeyError on any other shape."""
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        raise ValueError("no embedding data")
    items = []
    for item in answer["data"]:
        index, raw = item["index"], item["embedding"]
        if type(index) is not int:
            raise TypeError(f"index {index!r} is not an integer")
        if isinstance(raw, str):
            vector = np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4").tolist()
        elif isinstance(raw, list) and all(type(x) in (int, float) for x in raw):
            vector = [float(x) for x in raw]
        else:
            raise TypeError("an embedding is neither base64 nor a list of numbers")
        items.append((index, vector))
    return items


def _first_embedding_error(group: BaseExceptionGroup[BaseException]) -> EmbeddingError | None:
    for exc in group.exceptions:
        if isinstance(exc, EmbeddingError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            nested = _first_embedding_error(exc)
            if nested is not None:
                return nested
    return None

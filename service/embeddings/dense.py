"""Dense embeddings: the embedder contract and an OpenAI-compatible implementation.

Errors raised by embedders:

    EmbeddingError                  base: no embeddings were produced
    ├── TransientEmbeddingError     429, 408/409, 5xx, timeouts and connection failures, once
    │                               the embedder's own retries are spent; try again later,
    │                               after `retry_after` seconds when the server said so
    └── PermanentEmbeddingError     400/401/403/404/422, an exhausted quota, or a response that
                                    breaks the contract (wrong count, wrong dimension, NaN/inf);
                                    the same request will fail the same way

A message says what failed; what the provider answered is in `detail`, for the server log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Protocol

import aiohttp
import numpy as np

from service.upstream import backoff_s, parse_retry_after, status_failure

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


_OPENAI_URL = "https://api.openai.com/v1"
# A server's Retry-After of up to 2 min is waited for, a longer one not (as the `openai` SDK).
_MAX_RETRY_AFTER_S = 120.0


class OpenAIEmbedder:
    """DenseEmbedder over any OpenAI-compatible /v1/embeddings endpoint, through aiohttp.

    Not through the `openai` SDK: its request path (httpx models, cookies, options) cost 1.8 ms
    of event-loop time per call, which every hybrid search waited for (a one-text embedding
    from the loopback stub: 2.6 ms through the SDK, 0.8 ms straight). Retries as the SDK's:
    transient failures, unless `x-should-retry: false` or a Retry-After over 2 min, after
    `backoff_s` from 0.5 s (at least the Retry-After). `timeout` bounds each attempt; an
    unlucky call can take (max_retries + 1) × timeout plus backoff. `api_key=None` falls back
    to OPENAI_API_KEY.
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
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("an embedding API key is needed (api_key or OPENAI_API_KEY)")
        self.model = model
        self.dimension = dimension
        self.batch_size = batch_size
        # Only models that can shorten vectors (text-embedding-3-*) accept `dimensions`.
        self._send_dimensions = send_dimensions
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._url = f"{(base_url or _OPENAI_URL).rstrip('/')}/embeddings"
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it

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
        if self._session is not None:
            await self._session.close()

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
            answer = await self._post(body)
        try:
            data = _embedding_items(answer)
        except (ValueError, TypeError, KeyError) as exc:  # not the shape of an answer
            raise self._invalid(exc) from exc
        return self._validated(data, len(texts))

    async def _post(self, body: dict[str, object]) -> object:
        """The answer's JSON, transient failures retried up to `max_retries` times."""
        subject = f"embedding request to {self.model!r}"
        for attempt in range(self._max_retries + 1):
            try:
                status, headers, raw = await self._send(body)
            except TimeoutError as exc:
                failure: EmbeddingError = TransientEmbeddingError(
                    f"{subject} timed out", detail=repr(exc)
                )
                retry = True
            except aiohttp.ClientError as exc:
                failure = TransientEmbeddingError(
                    "cannot reach the embedding server", detail=repr(exc)
                )
                retry = True
            else:
                if status < 300:
                    try:
                        return json.loads(raw)
                    except ValueError as exc:
                        raise self._invalid(exc) from exc
                failure = _status_error(subject, status, raw, headers)
                retry = isinstance(failure, TransientEmbeddingError) and _should_retry(headers)
            if not retry or attempt == self._max_retries:
                raise failure
            wait = getattr(failure, "retry_after", None)
            await asyncio.sleep(backoff_s(attempt + 1, base=0.5, cap=8.0, retry_after=wait))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _send(self, body: dict[str, object]) -> tuple[int, Mapping[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        # No redirects: the key goes to the configured server only (a 3xx is an error).
        post = self._session.post(
            self._url, json=body, headers=self._headers, allow_redirects=False
        )
        async with post as response:
            return response.status, response.headers, await response.read()

    def _invalid(self, exc: Exception) -> PermanentEmbeddingError:
        return PermanentEmbeddingError(
            f"invalid embedding response from {self.model!r}", detail=repr(exc)
        )

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


def _status_error(
    subject: str, status: int, raw: bytes, headers: Mapping[str, str]
) -> EmbeddingError:
    """An error answer as our error (the shared rules of `upstream.status_failure`); what the
    server said goes to `detail` only."""
    said, code = _server_error(raw)
    failure = status_failure(subject, status, code, headers, said)
    if failure.transient:
        return TransientEmbeddingError(
            failure.message, status_code=status, retry_after=failure.retry_after, detail=said
        )
    return PermanentEmbeddingError(failure.message, status_code=status, detail=said)


def _server_error(raw: bytes) -> tuple[str, str | None]:
    """(its message, its code) from an OpenAI-style error body; else the body's start."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return error["message"], code if isinstance(code, str) else None
    return raw[:2000].decode(errors="replace"), None


def _should_retry(headers: Mapping[str, str]) -> bool:
    """For a transient status: unless the server says not to, or asks for a longer wait."""
    retry_after = parse_retry_after(headers)
    if retry_after is not None and retry_after > _MAX_RETRY_AFTER_S:
        return False
    return headers.get("x-should-retry") != "false"

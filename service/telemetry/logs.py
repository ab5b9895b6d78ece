"""Log lines that carry their context: the request, the caller, the job, the collection.

Every record gets the request's `request_id` (`service.request_context`), the fields bound in
the current context, and the record's own `extra={...}`. Context is bound where it becomes
known: `update(...)` for the rest of a request (each request runs in its own task, so nothing
leaks into the next one), `bound(...)` around a unit of work such as a job. `set_caller` is
the hook for whoever authenticates a request (API keys: `key_id`, `tenant`).

CITELINE_LOG_FORMAT=json prints one JSON object per line (`time`, `level`, `logger`, `event`,
then the context and extras); `text` prints `time LEVEL logger event key=value ...`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from service.request_context import request_id

__all__ = ["bound", "configure", "context", "set_caller", "update"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_FIELDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_fields", default=_EMPTY
)
# What every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _merged(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    given = {k: v for k, v in fields.items() if v is not None}
    return MappingProxyType({**_FIELDS.get(), **given}) if given else _FIELDS.get()


def update(**fields: Any) -> None:
    """Bind fields for the rest of the current context (a request's task); None is ignored."""
    _FIELDS.set(_merged(fields))


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields inside the block only."""
    token = _FIELDS.set(_merged(fields))
    try:
        yield
    finally:
        _FIELDS.reset(token)


def set_caller(*, key_id: str | None = None, tenant: str | None = None) -> None:
    """Who is calling, for every later line of the request (set by the authentication step)."""
    update(key_id=key_id, tenant=tenant)


def context() -> dict[str, Any]:
    """The fields a line written here would carry (request id and bound fields)."""
    rid = request_id()
    return {**({"request_id": rid} if rid else {}), **_FIELDS.get()}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out = context()
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_record_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _logfmt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        pairs = " ".join(f"{k}={_logfmt(v)}" for k, v in _record_fields(record).items())
        line = f"{head} {pairs}" if pairs else head
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(level: str, fmt: str) -> None:
    """One stderr handler on the root logger, in the chosen format (uvicorn's loggers too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

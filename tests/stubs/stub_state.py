"""State shared by the stub's server thread and the test: config, fault switches, request log."""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS = ("chat", "embeddings", "models")
ERROR_KIND = "error"
# Faults that change a response instead of replacing it; at most one of each kind applies.
MODIFIER_KINDS = ("stall", "close_after", "wrong_dimensions", "nan_values", "oversized_body")
CLOSE_MODES = ("abort", "eof", "error")

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class StubConfig:
    """How the stub answers; replaced as a whole so the server never sees half an update."""

    reply: Reply | None = None  # None: "Based on the sources, <first sentence of source 1> [1]."
    dimension: int = 384
    chunk_interval: float = 0.0  # seconds between stream chunks, emulating token latency
    models: tuple[str, ...] = ("stub-chat", "stub-embed")
    strict_models: bool = False  # unknown model → 404 model_not_found, as OpenAI does
    api_key: str | None = None  # when set, anything but "Bearer <api_key>" gets a 401


@dataclass
class Fault:
    kind: str
    remaining: int | None  # None: applies until cleared
    endpoint: str | None  # None: any endpoint
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request as the stub saw it. Times are time.monotonic() (system-wide on Linux)."""

    id: int
    method: str
    path: str
    endpoint: str | None
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when absent or not JSON
    received_at: float
    status: int | None = None
    stream: bool = False
    faults: list[str] = field(default_factory=list)
    chunks_sent: int = 0  # content chunks of a stream
    completed: bool = False  # the whole response (with [DONE] for streams) was handed to the server
    aborted: bool = False  # the stub cut the response on purpose (close_after)
    disconnected_at: float | None = None  # the client went away before the response completed

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AppliedFaults:
    """The faults one request drew, already consumed from the switchboard."""

    error: dict[str, Any] | None = None
    modifiers: dict[str, dict[str, Any]] = field(default_factory=dict)


class FaultSwitches:
    """Fault API shared by the in-process control object and the remote (HTTP) control client.

    Error faults answer the next `n` matching requests; modifiers apply to every matching
    request until cleared unless `n` is given. `endpoint` is "chat", "embeddings", "models"
    or None for all.
    """

    def add(self, spec: dict[str, Any]) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def error(
        self,
        status: int,
        n: int = 1,
        *,
        endpoint: str | None = None,
        retry_after: float | None = None,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        """The next n requests get `status` with an OpenAI error body."""
        self.add(
            {
                "kind": ERROR_KIND,
                "n": n,
                "endpoint": endpoint,
                "status": status,
                "retry_after": retry_after,
                "message": message,
                "type": error_type,
                "code": code,
                "param": param,
            }
        )

    def rate_limit(
        self,
        n: int = 1,
        *,
        retry_after: float | None = None,
        endpoint: str | None = None,
        code: str = "rate_limit_exceeded",
    ) -> None:
        """429s; `retry_after` sets Retry-After and retry-after-ms (None: no header at all)."""
        self.error(429, n, endpoint=endpoint, retry_after=retry_after, code=code)

    def server_error(
        self,
        n: int = 1,
        *,
        status: int = 500,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.error(status, n, endpoint=endpoint, retry_after=retry_after)

    def bad_request(
        self,
        n: int = 1,
        *,
        endpoint: str | None = None,
        message: str | None = None,
        param: str | None = None,
    ) -> None:
        self.error(400, n, endpoint=endpoint, message=message, param=param)

    def stall(self, seconds: float, *, n: int | None = None, endpoint: str | None = None) -> None:
        """Wait `seconds` before the first byte (ends early if the client disconnects)."""
        self.add({"kind": "stall", "n": n, "endpoint": endpoint, "seconds": seconds})

    def close_after(self, n_chunks: int, *, n: int | None = None, mode: str = "abort") -> None:
        """Cut chat streams after `n_chunks` content chunks.

        mode "abort": the TCP connection is closed mid-body (client sees an incomplete chunked
        read); "eof": the body ends cleanly but without finish_reason or [DONE]; "error": an
        OpenAI `data: {"error": ...}` event, then the body ends.
        """
        if mode not in CLOSE_MODES:
            raise ValueError(f"mode must be one of {CLOSE_MODES}")
        self.add(
            {"kind": "close_after", "n": n, "endpoint": "chat", "chunks": n_chunks, "mode": mode}
        )

    def wrong_dimensions(self, d: int, *, n: int | None = None) -> None:
        """Embeddings come back with `d` dimensions instead of the requested/configured one."""
        self.add({"kind": "wrong_dimensions", "n": n, "endpoint": "embeddings", "dimension": d})

    def nan_values(self, *, n: int | None = None, value: float = math.nan) -> None:
        """Element 0 of every returned embedding is `value` (NaN, or ±inf)."""
        self.add({"kind": "nan_values", "n": n, "endpoint": "embeddings", "value": value})

    def oversized_body(
        self, nbytes: int, *, n: int | None = None, endpoint: str | None = None
    ) -> None:
        """Pad responses to at least `nbytes` (JSON: an extra field; streams: an SSE comment)."""
        self.add({"kind": "oversized_body", "n": n, "endpoint": endpoint, "nbytes": nbytes})


def parse_fault(spec: dict[str, Any]) -> Fault:
    """Validate a fault spec (as sent to POST /_stub/faults) and build the Fault."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind != ERROR_KIND and kind not in MODIFIER_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}")
    n = params.pop("n", None)
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError("n must be a positive integer or null")
    endpoint = params.pop("endpoint", None)
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS} or null")
    if kind == ERROR_KIND and not isinstance(params.get("status"), int):
        raise ValueError("an error fault needs an integer status")
    return Fault(kind=kind, remaining=n, endpoint=endpoint, params=params)


class StubState(FaultSwitches):
    """Thread-safe: the server thread draws faults and writes records, the test reads them."""

    def __init__(self, config: StubConfig | None = None) -> None:
        self._cond = threading.Condition()
        self.config = config or StubConfig()
        self._faults: list[Fault] = []
        self._records: list[RecordedRequest] = []

    # -- faults ------------------------------------------------------------------------------
    def add(self, spec: dict[str, Any]) -> None:
        fault = parse_fault(spec)
        with self._cond:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._cond:
            self._faults.clear()

    def draw_faults(self, endpoint: str | None, *, stream: bool) -> AppliedFaults:
        """Consume the faults for one request: the first matching error, one of each modifier."""
        applied = AppliedFaults()
        with self._cond:
            for fault in list(self._faults):
                if fault.endpoint is not None and fault.endpoint != endpoint:
                    continue
                if fault.kind == "close_after" and not stream:
                    continue  # only a stream can be cut; keep it for the next one
                if fault.kind == ERROR_KIND:
                    if applied.error is not None:
                        continue
                    applied.error = fault.params
                elif fault.kind in applied.modifiers:
                    continue
                else:
                    applied.modifiers[fault.kind] = fault.params
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return applied

    # -- config ------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> StubConfig:
        with self._cond:
            self.config = dataclasses.replace(self.config, **changes)
            return self.config

    # -- request log -------------------------------------------------------------------------
    def record(self, **fields: Any) -> RecordedRequest:
        with self._cond:
            rec = RecordedRequest(id=len(self._records) + 1, received_at=time.monotonic(), **fields)
            self._records.append(rec)
            self._cond.notify_all()
            return rec

    def update(self, rec: RecordedRequest, **changes: Any) -> None:
        with self._cond:
            for name, value in changes.items():
                setattr(rec, name, value)
            self._cond.notify_all()

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Snapshots (copies) of the recorded requests, optionally only those for `path`."""
        with self._cond:
            return [copy.deepcopy(r) for r in self._records if path is None or r.path == path]

    def reset(self) -> None:
        """Forget faults and recorded requests; the config stays."""
        with self._cond:
            self._faults.clear()
            self._records.clear()
            self._cond.notify_all()

    def wait_until(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 2.0
    ) -> list[RecordedRequest]:
        """Block until `predicate(requests)` holds (re-checked on every change) or time runs out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snapshot = [copy.deepcopy(r) for r in self._records]
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(r.method, r.path, r.status, r.disconnected_at) for r in snapshot]
                    raise TimeoutError(f"stub condition not met within {timeout}s; saw {summary}")
                self._cond.wait(remaining)

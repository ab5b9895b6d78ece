"""The HTTP client of the command line: the service's URL and key, problems as one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from service.cli.errors import CliError

RETRIES = 5  # for 429 and 503 with Retry-After: rate limits and overload are waited out
MAX_WAIT_S = 30.0


def problem_line(response: httpx.Response) -> str:
    """`Title: detail` of a problem+json body, else the status and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        title = body.get("title") or response.reason_phrase
        detail = body.get("detail")
        return f"{title}: {detail}" if detail else str(title)
    text = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    try:
        return min(MAX_WAIT_S, max(0.1, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return None


class Api:
    """One connection pool to the service; every call raises CliError on a 4xx or 5xx."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise CliError(f"cannot reach {self.url}: {exc}") from None
            wait = _retry_after(response)
            if wait is None or attempt == RETRIES:
                break
            time.sleep(wait)
        if response.is_error:
            raise CliError(problem_line(response), response.status_code)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs).json()

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs).json()

    @contextmanager
    def events(self, path: str, body: dict[str, Any]) -> Iterator[Iterator[tuple[str, Any]]]:
        """A POST answered with server-sent events: (event name, parsed JSON data) pairs, up
        to `data: [DONE]`."""
        try:
            with self.http.stream("POST", path, json=body, timeout=None) as response:
                if response.is_error:
                    response.read()
                    raise CliError(problem_line(response), response.status_code)
                yield _sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url}: {exc}") from None


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            joined = "\n".join(data)
            if joined == "[DONE]":
                return
            yield name, json.loads(joined)
            name, data = "message", []

"""The log formats: context fields, extras, exceptions, quoting."""

from __future__ import annotations

import asyncio
import json
import logging

from service.request_context import _REQUEST_ID
from service.telemetry import logs


def record(msg: str = "job.closed", **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("citeline.test")
    return logger.makeRecord(logger.name, logging.WARNING, "f.py", 1, msg, (), None, extra=extra)


def test_json_line_has_request_context_bound_fields_and_extras() -> None:
    token = _REQUEST_ID.set("req_abc")
    try:
        with logs.bound(job_id="job_1", collection="docs"):
            logs.set_caller(key_id="key_9", tenant="acme")
            line = json.loads(logs.JsonFormatter().format(record(error="boom", tries=2)))
    finally:
        _REQUEST_ID.reset(token)
    assert line["event"] == "job.closed" and line["level"] == "warning"
    assert line["logger"] == "citeline.test" and line["time"].endswith("Z")
    assert line["request_id"] == "req_abc"
    assert (line["job_id"], line["collection"], line["key_id"], line["tenant"]) == (
        "job_1", "docs", "key_9", "acme",
    )  # fmt: skip
    assert line["error"] == "boom" and line["tries"] == 2
    assert "job_id" not in logs.context()  # the block ended: nothing leaks


def test_text_line_quotes_values_that_need_it_and_keeps_tracebacks() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        rec = record(error="two words", count=3)
        rec.exc_info = sys.exc_info()
    text = logs.TextFormatter().format(rec)
    first = text.splitlines()[0]
    assert first.endswith('job.closed error="two words" count=3'), first
    assert "ValueError: bad" in text


def test_context_does_not_cross_into_another_task() -> None:
    async def request(n: int) -> dict[str, object]:
        logs.update(collection=f"c{n}")
        await asyncio.sleep(0)
        return logs.context()

    async def main() -> list[dict[str, object]]:
        return list(await asyncio.gather(request(1), request(2)))

    assert [c["collection"] for c in asyncio.run(main())] == ["c1", "c2"]
    assert "collection" not in logs.context()

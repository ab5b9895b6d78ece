"""Per-request cost of metrics, the access log and tracing, in microseconds (on vs off).

    python -m tests.bench.overhead [--requests 20000] [--quick] [--out FILE]

The same app (`create_app`) is built in each configuration and driven in-process through its
ASGI interface with `GET /healthz` (no I/O behind it), so the difference between
configurations is the middleware's own cost, free of the network's noise; configurations are
interleaved in rounds and the median round is reported. Configurations: everything off;
metrics on; metrics and a JSON access line per request (written to /dev/null); and, with
`citeline[otel]`, also a span per request into the SDK's in-memory exporter.
Then the same comparison over HTTP (two live servers, metrics+log on and off, p50 of GET
/healthz through one keep-alive connection), as a user meets it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from service.app import create_app
from service.config import Settings
from service.telemetry import logs, tracing
from tests.bench.metrics import latency_ms
from tests.bench.server import http_client, log, report, running_server

TARGETS = {"metrics_and_log_us_per_request": 50.0}
SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
    "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 80),
}  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


async def drive(app: Any, n: int) -> float:
    """Seconds per request over `n` requests."""
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(SCOPE), _receive, _send)
    return (time.perf_counter() - started) / n


def configurations(data_dir: Path) -> dict[str, tuple[Any, bool]]:
    """name -> (app, tracing on)."""
    base = {"data_dir": data_dir}
    configs = {
        "off": (create_app(Settings(**base, metrics_enabled=False, access_log=False)), False),
        "metrics": (create_app(Settings(**base, access_log=False)), False),
        "metrics+log": (create_app(Settings(**base)), False),
    }
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return configs
    configs["metrics+log+trace"] = (create_app(Settings(**base)), True)
    return configs


def in_process(requests: int, rounds: int) -> dict[str, Any]:
    logs.configure("info", "json")
    logging.getLogger().handlers[0].stream = open("/dev/null", "w")  # noqa: SIM115
    provider = None
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    except ImportError:
        exporter = None
    with tempfile.TemporaryDirectory() as tmp:
        configs = configurations(Path(tmp))
        per: dict[str, list[float]] = {name: [] for name in configs}

        async def run() -> None:
            for app, _ in configs.values():
                await drive(app, 500)  # warm-up
            for _ in range(rounds):
                for name, (app, traced) in configs.items():
                    tracing.use(provider if traced else None)
                    per[name].append(await drive(app, requests // rounds))
                    if exporter is not None:
                        exporter.clear()
            tracing.use(None)

        asyncio.run(run())
    medians = {name: statistics.median(v) * 1e6 for name, v in per.items()}
    base = medians["off"]
    return {
        "us_per_request": {k: round(v, 2) for k, v in medians.items()},
        "overhead_us": {k: round(v - base, 2) for k, v in medians.items() if k != "off"},
    }


def over_http(requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in (
            ("off", {"CITELINE_METRICS_ENABLED": "false", "CITELINE_ACCESS_LOG": "false"}),
            ("metrics+log", {"CITELINE_LOG_LEVEL": "info", "CITELINE_LOG_FORMAT": "json"}),
        ):
            with running_server(Path(tmp) / name, env) as server, http_client(server.url) as c:
                for _ in range(200):
                    c.get("/healthz")
                samples = []
                for _ in range(requests):
                    started = time.perf_counter()
                    c.get("/healthz")
                    samples.append(time.perf_counter() - started)
                out[name] = latency_ms(samples)
    out["p50_difference_us"] = round((out["metrics+log"]["p50"] - out["off"]["p50"]) * 1000, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 requests")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    requests = 2_000 if args.quick else args.requests
    started = time.perf_counter()
    log(f"in-process: {requests} requests per configuration")
    measured = in_process(requests, rounds=10)
    log("over HTTP")
    http = over_http(max(requests // 10, 200))
    overhead = measured["overhead_us"]
    return report(
        {
            "benchmark": "operations overhead",
            "method": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
            "in_process": measured,
            "over_http": http,
            "summary": {"metrics_and_log_us_per_request": overhead.get("metrics+log")},
            "targets": TARGETS,
        },
        args.out,
        started,
    )


if __name__ == "__main__":
    raise SystemExit(main())

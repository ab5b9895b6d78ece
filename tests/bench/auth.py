"""What API keys cost: the key check per request (µs, in process) and `/v1/query` p50 over
HTTP with keys off (open mode) and on (a tenant key, checked, counted and rate-limited).

    python -m tests.bench.auth --data ../shared/data/squad2-dev [--quick] [--out file.json]

The in-process part times what every keyed request runs before its route (authenticate,
count against the key's rate, count the request for usage): with the embedded SQLite key
store (keys held in memory) and, when `redis-server` is on PATH, with keys and rate counters in
Redis. The HTTP part ingests the same documents into one data dir, then serves it twice, open
and keyed, and asks the same questions of each. Prints one JSON object; exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from service.auth.authenticator import Authenticator
from service.auth.keys import new_key
from service.auth.sqlite_keys import SqliteKeyStore
from service.config import Settings
from service.quotas.rates import RateLimits
from service.quotas.usage import SqliteUsage, UsageLedger
from tests.bench.data import load_dataset
from tests.bench.metrics import latency_ms
from tests.bench.server import log, post_with_retry, report, running_server

ADMIN = "bench-admin-key-0123456789abcdef"
TARGET_US = 50.0  # the key check should cost no more than this per request (embedded)


async def _check_cost(
    auth: Authenticator, limits: RateLimits, usage: UsageLedger, headers: dict[str, str], n: int
) -> dict[str, float]:
    samples = []
    for i in range(n + n // 10):
        started = time.perf_counter()
        principal = await auth.authenticate(headers)
        await limits.admit(principal)
        usage.count_request(principal.tenant)
        if i >= n // 10:  # the first tenth warms up
            samples.append((time.perf_counter() - started) * 1000)  # as ms: percentiles in µs
    return latency_ms(samples)


async def in_process(n: int, tmp: Path) -> dict[str, Any]:
    """µs per request of the key check, for open mode, a key in SQLite, and a key in Redis."""
    settings = Settings(data_dir=tmp, key_rate_limit="100000000/minute")
    store = SqliteKeyStore(tmp / "access.sqlite3")
    await store.open()
    record, key = new_key("bench", "acme", ["read"], None, None)
    await store.add(record)
    usage = UsageLedger(SqliteUsage(tmp / "access.sqlite3"))
    limits = RateLimits(settings)
    headers = {"authorization": f"Bearer {key}"}
    out = {
        "open_mode_us": await _check_cost(Authenticator(None, store), limits, usage, {}, n),
        "sqlite_key_us": await _check_cost(Authenticator(ADMIN, store), limits, usage, headers, n),
    }
    await store.close()
    if shutil.which("redis-server"):
        out["redis_key_us"] = await _redis_cost(n, tmp)
    else:
        out["redis_key_us"] = "skipped: no redis-server on PATH"
    return out


async def _redis_cost(n: int, tmp: Path) -> dict[str, float]:
    from service.auth.redis_keys import RedisKeyStore
    from tests.redis_server import run_redis

    servers = run_redis(tmp)
    redis = next(servers)
    try:
        settings = Settings(
            data_dir=tmp, queue="arq", redis_url=redis.url, key_rate_limit="100000000/minute"
        )
        store = RedisKeyStore(redis.url, timeout_s=1.0)
        record, key = new_key("bench", "acme", ["read"], None, None)
        await store.add(record)
        limits = RateLimits(settings)
        usage = UsageLedger(SqliteUsage(tmp / "usage-redis.sqlite3"))
        auth = Authenticator(ADMIN, store)
        cost = await _check_cost(auth, limits, usage, {"x-api-key": key}, n)
        await limits.close()
        await store.close()
        return cost
    finally:
        servers.close()


def _ask_all(url: str, questions: list[str], headers: dict[str, str]) -> dict[str, float]:
    import httpx

    samples = []
    with httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False) as c:
        for i, q in enumerate(questions):
            started = time.perf_counter()
            r = c.post("/v1/query", json={"question": q})
            elapsed = time.perf_counter() - started
            r.raise_for_status()
            if i >= len(questions) // 10:
                samples.append(elapsed)
    return latency_ms(samples)


def _idle(ready: dict[str, Any]) -> bool:
    jobs = ready["jobs"] or {}
    return not jobs.get("queued") and not jobs.get("running") and not ready["inflight"]


def over_http(data: Path, docs: int, queries: int, tmp: Path) -> dict[str, Any]:
    dataset = load_dataset(data)
    corpus = dataset.corpus[:docs]
    questions = list(dataset.queries.values())[:queries]
    data_dir = tmp / "served"
    base = {"CITELINE_KEY_RATE_LIMIT": "100000000/minute"}
    with running_server(data_dir, base) as server, server.client() as c:
        for start in range(0, len(corpus), 200):
            batch = [
                {"id": d.doc_id, "title": d.title, "text": d.text}
                for d in corpus[start : start + 200]
            ]
            post_with_retry(c, "/v1/documents/batch", {"documents": batch})
        while not _idle(c.get("/readyz").json()):
            time.sleep(0.2)  # polling the server's job counts
        log(f"indexed {len(corpus)} documents; asking {len(questions)} questions, open mode")
        open_mode = _ask_all(server.url, questions, {})
    keyed_env = base | {"CITELINE_ADMIN_API_KEY": ADMIN}
    with running_server(data_dir, keyed_env) as server, server.client() as c:
        made = c.post(
            "/v1/keys",
            json={"name": "bench", "tenant": "default", "scopes": ["read"]},
            headers={"authorization": f"Bearer {ADMIN}"},
        ).json()
        log(f"asking {len(questions)} questions with a key")
        keyed = _ask_all(server.url, questions, {"authorization": f"Bearer {made['key']}"})
    return {
        "documents": len(corpus),
        "query_open_mode_ms": open_mode,
        "query_with_key_ms": keyed,
        "p50_difference_ms": round(keyed["p50"] - open_mode["p50"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    p.add_argument("--quick", action="store_true", help="a small smoke-test run")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    n, docs, queries = (2_000, 300, 200) if args.quick else (50_000, 646, 2000)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="citeline-bench-auth-") as tmp:
        checks = asyncio.run(in_process(n, Path(tmp)))
        http = over_http(args.data, docs, queries, Path(tmp))
    sqlite_p50 = checks["sqlite_key_us"]["p50"]
    result = {
        "bench": "auth",
        "mode": "quick" if args.quick else "full",
        "key_check_in_process": checks,
        "query_http": http,
        "targets": [
            {
                "name": "key check per request (embedded, p50)",
                "measured": sqlite_p50,
                "target": f"<= {TARGET_US:g}",
                "unit": "us",
                "met": sqlite_p50 <= TARGET_US,
            }
        ],
    }
    return report(result, args.out, started)


if __name__ == "__main__":
    raise SystemExit(main())

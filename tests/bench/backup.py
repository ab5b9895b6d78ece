"""Backup time and size of the embedded data, and restore time, at a given number of chunks.

    python -m tests.bench.backup [--data DIR] [--chunks 100000] [--quick] [--out FILE]

A real server indexes copies of the corpus until it holds `--chunks` chunks, then
`python -m service backup DIR` fetches a backup while searches keep running (their p99 during
the backup is reported), and `python -m service restore` copies it into an empty data dir.
`--quick`: 5,000 chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.bench.data import load_dataset
from tests.bench.ingest import replicate
from tests.bench.metrics import latency_ms
from tests.bench.server import (
    REPO_ROOT,
    dir_size_bytes,
    http_client,
    log,
    post_with_retry,
    report,
    running_server,
    wait_all_settled,
)

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad2-dev"
TOKEN = "bench-backup-token"
TARGETS = {"backup_seconds_at_100k_chunks": 30.0}


def cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env.update({f"CITELINE_{k.upper()}": v for k, v in settings.items()})
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "service", *args], env=env,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 chunks")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    target_chunks = 5_000 if args.quick else args.chunks
    started = time.perf_counter()
    docs, chunks = replicate(load_dataset(args.data).corpus, target_chunks)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {"CITELINE_METRICS_TOKEN": TOKEN, "CITELINE_ACCESS_LOG": "false"}
        with running_server(root / "data", env) as server:
            with server.client() as c:
                for i in range(0, len(docs), 500):
                    post_with_retry(c, "/v1/documents/batch", {"documents": docs[i : i + 500]})
                wait_all_settled(c, len(docs), timeout=7200)
            log(f"indexed {len(docs)} documents, {chunks} chunks; backing up")
            data_bytes = dir_size_bytes(root / "data")
            searches: list[float] = []
            stop = threading.Event()

            def search() -> None:
                with http_client(server.url) as c:
                    while not stop.is_set():
                        t = time.perf_counter()
                        c.post("/v1/search", json={"query": "history of the city"})
                        searches.append(time.perf_counter() - t)

            searcher = threading.Thread(target=search)
            searcher.start()
            t = time.perf_counter()
            taken = cli("backup", str(root / "backup"), "--url", server.url, metrics_token=TOKEN)
            backup_s = time.perf_counter() - t
            stop.set()
            searcher.join()
        if taken.returncode != 0:
            raise RuntimeError(taken.stderr)
        manifest: dict[str, Any] = json.loads(taken.stdout)
        t = time.perf_counter()
        put = cli("restore", str(root / "backup"), data_dir=str(root / "restored"))
        restore_s = time.perf_counter() - t
        if put.returncode != 0:
            raise RuntimeError(put.stderr)
    return report(
        {
            "benchmark": "backup",
            "method": "python -m service backup DIR against the live server (searches running), "
            "then python -m service restore into an empty data dir",
            "chunks": chunks,
            "documents": len(docs),
            "data_dir_mib": round(data_bytes / 2**20, 1),
            "backup": {
                "seconds_end_to_end": round(backup_s, 2),
                "server_seconds": manifest["seconds"],
                "writes_paused_s": manifest["writes_paused_s"],
                "mib": round(manifest["bytes"] / 2**20, 1),
            },
            "restore_seconds": round(restore_s, 2),
            "search_latency_during_backup_ms": latency_ms(searches),
            "targets": TARGETS,
        },
        args.out,
        started,
    )


if __name__ == "__main__":
    raise SystemExit(main())

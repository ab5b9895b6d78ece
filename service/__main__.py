"""`python -m service`: serve on CITELINE_HOST:CITELINE_PORT."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn

from service.app import create_app
from service.config import load_settings


def main() -> None:
    settings = load_settings()
    # Indexing threads (BM25, Edge writes) compete with the event loop for the GIL; a shorter
    # switch interval bounds how long a request waits for it (see `make bench`).
    sys.setswitchinterval(0.001)
    gc.freeze()  # what start-up allocated lives for the whole run: never rescan it
    gc.set_threshold(50_000, 20, 100)  # fewer full collections, each a pause for every request
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

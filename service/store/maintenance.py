"""The store's index maintenance, run in a thread every few seconds for the process's life.

`VectorStore.maintain` decides itself whether there is work (and returns at once when not);
this loop only gives it a thread, one run at a time, and keeps a failed run from ending it.
"""

from __future__ import annotations

import asyncio
import logging

from service.cancelling import stop_task
from service.store.base import VectorStore

log = logging.getLogger("citeline.store")


class Maintenance:
    def __init__(self, store: VectorStore, interval_s: float) -> None:
        self.store, self.interval_s = store, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the loop (an interval of 0 turns maintenance off)."""
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="citeline-store-maintenance")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.store.maintain)
            except Exception as exc:  # the next round tries again; the store still serves
                log.warning("store.maintain_failed", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        """Stop the loop; a run in progress is given up by the store's own `close`."""
        await stop_task(self._task)

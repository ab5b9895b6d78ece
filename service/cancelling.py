"""Stopping a background task for certain.

A cancellation can be lost: one that lands inside a Redis call at the wrong moment is swallowed
there (redis-py #2028), and a polling loop such as arq's `Worker.main` then just goes round
again. Measured here: 1 in ~5 runs of the in-process worker's stop hung for ever at the
`gather` after a single `cancel()`. `stop_task` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("citeline")

_RETRY_S = 0.2


async def stop_task(
    task: asyncio.Task[object] | None, *, grace_s: float = _RETRY_S, within_s: float = 10.0
) -> None:
    """Cancel `task` and wait for it to end; while it runs on, cancel it again: first after
    `grace_s` (what its own clean-up may take), then every 0.2 s. Give up, and log it, after
    `within_s`. What the task raised or returned is dropped."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    wait = grace_s
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.warning("task.would_not_stop", extra={"task": task.get_name()})
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(wait, left))
        wait = _RETRY_S
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it at exit

"""The maintenance loop: it calls the store's `maintain` in a thread, survives a failed run,
and stops when closed; an interval of 0 turns it off."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from service.store.maintenance import Maintenance


class _Store:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def maintain(self) -> None:
        self.calls.append(threading.current_thread().name)
        if len(self.calls) == 1:
            raise RuntimeError("the first run fails")


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_runs_in_a_thread_again_after_a_failure_until_closed() -> None:
    store = _Store()
    loop = Maintenance(store, interval_s=0.01)  # type: ignore[arg-type]
    loop.start()
    await _until(lambda: len(store.calls) >= 3)
    await loop.close()
    assert loop._task is not None and loop._task.cancelled()
    assert threading.main_thread().name not in store.calls


async def test_an_interval_of_zero_never_runs() -> None:
    store = _Store()
    loop = Maintenance(store, interval_s=0)  # type: ignore[arg-type]
    loop.start()
    assert loop._task is None
    await loop.close()
    assert store.calls == []

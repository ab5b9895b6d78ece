"""One worker thread that runs the most urgent submitted call first."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class PriorityThread:
    """Calls run one at a time, lowest `priority` first, in submission order within one.

    The registry's SQLite connection belongs to one thread; with a plain FIFO, a one-document
    POST waited behind whole batches and the pipeline's bookkeeping. Urgent work jumps the queue.
    """

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], Any], Future[Any]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: float, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the registry thread is shut down")
            heapq.heappush(self._heap, (priority, next(self._order), lambda: fn(*args), future))
            self._ready.notify()
        return future

    def shutdown(self) -> None:
        """Finish what was submitted, then stop."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._heap and not self._closed:
                    self._ready.wait()
                if not self._heap:
                    return
                _, _, call, future = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)

"""`stop_task` ends a loop whose cancellation was swallowed, and bounds one that never ends."""

from __future__ import annotations

import asyncio

import pytest

from service.cancelling import stop_task


async def test_a_loop_that_swallows_one_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def loop() -> None:  # what arq's poll loop does when a Redis call eats the cancel
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, grace_s=0.05), timeout=5)
    assert task.cancelled() and swallowed == 1


async def test_a_task_that_cleans_up_gets_its_grace_before_a_second_cancel() -> None:
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.3)  # a clean-up a second cancel would cut short
            cleaned.set()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    await stop_task(task, grace_s=2)
    assert cleaned.is_set() and task.cancelled()


async def test_a_task_that_never_ends_is_given_up_on_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await stop_task(task, grace_s=0.05, within_s=0.5)
    assert 0.5 <= asyncio.get_running_loop().time() - started < 2
    assert not task.done() and "task.would_not_stop" in caplog.text
    released.set()  # now it ends at the next cancellation
    await stop_task(task)
    assert task.done()


async def test_an_error_the_task_raised_is_retrieved_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await stop_task(task)
    assert isinstance(task.exception(), RuntimeError)

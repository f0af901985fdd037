"""The app's asyncio thread: work runs there, never on the caller's thread, and stop() leaves nothing behind."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from groundstation.app.async_loop import AsyncLoop

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def loop():
    loop = AsyncLoop(name="test-asyncio")
    loop.start()
    yield loop
    loop.stop(2.0)


def test_the_loop_runs_on_one_named_non_daemon_thread_that_stop_ends(loop):
    thread = loop.thread
    assert thread is not None and thread.name == "test-asyncio" and not thread.daemon
    assert loop.stop(2.0) is True
    assert not thread.is_alive()
    assert "test-asyncio" not in [t.name for t in threading.enumerate()]
    assert loop.stop() is True  # again: nothing to do


def test_submit_returns_at_once_and_the_work_runs_on_the_loop_thread(loop):
    caller = threading.current_thread()

    async def slow() -> threading.Thread:
        await asyncio.sleep(0.5)
        time.sleep(0.05)  # even a blocking call inside a coroutine blocks the loop thread, not the caller
        return threading.current_thread()

    started = time.monotonic()
    future = loop.submit(slow())
    assert time.monotonic() - started < 0.05
    assert not future.done()
    ran_on = future.result(timeout=5)
    assert ran_on is loop.thread and ran_on is not caller


def test_an_exception_reaches_the_future_and_the_log(loop, caplog):
    async def broken() -> None:
        raise ValueError("the vehicle said no")

    with caplog.at_level(logging.ERROR, logger="groundstation.app.async_loop"):
        future = loop.submit(broken())
        with pytest.raises(ValueError, match="the vehicle said no"):
            future.result(timeout=5)
        time.sleep(0.05)  # the logging done-callback runs on the loop thread
    assert "the vehicle said no" in caplog.text


def test_stop_cancels_pending_tasks_and_lets_them_clean_up(loop):
    cleaned = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup may still await
            cleaned.set()

    future = loop.submit(forever())
    time.sleep(0.05)
    started = time.monotonic()
    assert loop.stop(2.0)
    assert time.monotonic() - started < 1.0
    assert cleaned.is_set() and future.cancelled()
    assert not loop.running


def test_stop_is_bounded_when_a_task_refuses_to_end(loop):
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    loop.submit(stubborn(), log_errors=False)
    time.sleep(0.05)
    started = time.monotonic()
    loop.stop(1.0)
    assert time.monotonic() - started < 4.0
    assert not loop.running


def test_submit_to_a_stopped_loop_says_so_and_leaves_no_coroutine_behind():
    loop = AsyncLoop()

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError, match="not running"):
        loop.submit(nothing())
    loop.start()
    assert loop.submit(nothing()).result(timeout=5) is None
    loop.stop()
    with pytest.raises(RuntimeError, match="not running"):
        loop.submit(nothing())

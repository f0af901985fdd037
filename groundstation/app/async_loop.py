"""One asyncio event loop on its own thread, where the app's MAVSDK code runs.

Qt owns the main thread and asyncio cannot share it, so the fleet link lives on this loop;
the UI hands it coroutines with :meth:`AsyncLoop.submit` and gets a
:class:`concurrent.futures.Future` back at once. Nothing here ever waits on the caller's
thread except :meth:`AsyncLoop.stop`, which is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class AsyncLoop:
    """`loop = AsyncLoop(); loop.start(); future = loop.submit(coro); …; loop.stop()`."""

    def __init__(self, name: str = "borderwatch-asyncio") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(_log_unhandled)
            started = threading.Event()
            # Not a daemon: the interpreter must not kill it halfway through closing MAVSDK sockets.
            thread = threading.Thread(target=self._run, args=(loop, started), name=self.name, daemon=False)
            self._loop, self._thread = loop, thread
            thread.start()
            started.wait()

    def submit(self, coro: Coroutine[Any, Any, T], *, log_errors: bool = True) -> concurrent.futures.Future[T]:
        """Runs `coro` on the loop; its result or exception arrives in the returned Future.

        With `log_errors` an exception is also logged, so that one nobody asks the Future
        about is still seen.
        """
        loop = self._loop
        if loop is None or not self.running or loop.is_closed():
            coro.close()
            raise RuntimeError(f"{self.name} is not running: start() it first")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if log_errors:
            future.add_done_callback(_log_failure)
        return future

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Cancels every task still on the loop, lets them clean up for up to `timeout_s`, closes the
        loop and ends the thread. True when the thread has ended."""
        with self._lock:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return True
            if threading.current_thread() is thread:
                raise RuntimeError("stop() called from the loop's own thread")
            if not loop.is_closed():
                closing = _cancel_all_then_stop(timeout_s * 0.8)
                try:
                    asyncio.run_coroutine_threadsafe(closing, loop)
                except RuntimeError:  # closed in between
                    closing.close()
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s: tasks did not finish within %.1f s; stopping the loop anyway", self.name, timeout_s)
                if not loop.is_closed():
                    loop.call_soon_threadsafe(loop.stop)
                thread.join(1.0)
            ended = not thread.is_alive()
            if ended:
                self._thread = self._loop = None
            return ended

    def _run(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            try:
                leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in leftover:
                    task.cancel()
                if leftover:
                    loop.run_until_complete(asyncio.wait(leftover, timeout=1.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:
                log.exception("%s: error while closing the loop", self.name)
            finally:
                asyncio.set_event_loop(None)
                loop.close()


async def _cancel_all_then_stop(timeout_s: float) -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=max(timeout_s, 0.1))
    asyncio.get_running_loop().stop()


def _log_failure(future: concurrent.futures.Future) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.error("background task failed: %s", exc, exc_info=exc)


def _log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.error("asyncio: %s", context.get("message", "unhandled error"), exc_info=exc)

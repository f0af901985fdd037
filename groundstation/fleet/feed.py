"""Fan-out of one stream to many consumers, none of which can hold up the others.

A MAVSDK stream is subscribed to once; its values are published into a :class:`Feed`,
and every consumer reads its own :class:`Subscription`. Publishing never waits: a
subscriber keeps at most `keep` values and drops its oldest when it falls behind, so a
slow consumer of snapshots (keep=1) sees only the newest one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Feed(Generic[T]):
    def __init__(self, keep: int = 1) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._keep = keep
        self._subscriptions: set[Subscription[T]] = set()
        self._latest: T | None = None
        self._closed = False

    @property
    def latest(self) -> T | None:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, value: T) -> None:
        if self._closed:
            return
        self._latest = value
        for sub in self._subscriptions:
            sub._put(value)

    def subscribe(self, keep: int | None = None, *, replay_latest: bool = False) -> Subscription[T]:
        """A new consumer; with `replay_latest` it first gets the value published last."""
        sub = Subscription(self, keep or self._keep)
        if self._closed:
            sub._end()
            return sub
        self._subscriptions.add(sub)
        if replay_latest and self._latest is not None:
            sub._put(self._latest)
        return sub

    def close(self) -> None:
        """Ends every subscription once it has drained what it holds."""
        self._closed = True
        for sub in list(self._subscriptions):
            sub._end()
        self._subscriptions.clear()

    def _remove(self, sub: Subscription[T]) -> None:
        self._subscriptions.discard(sub)


class Subscription(Generic[T]):
    def __init__(self, feed: Feed[T], keep: int) -> None:
        self._feed = feed
        self._values: deque[T] = deque(maxlen=keep)
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def _put(self, value: T) -> None:
        if len(self._values) == self._values.maxlen:
            self.dropped += 1
        self._values.append(value)
        self._ready.set()

    def _end(self) -> None:
        self._ended = True
        self._ready.set()

    def pending(self) -> int:
        return len(self._values)

    def get_nowait(self) -> T | None:
        """The oldest value held, or None."""
        if not self._values:
            return None
        value = self._values.popleft()
        if not self._values and not self._ended:
            self._ready.clear()
        return value

    async def get(self) -> T:
        """The next value; raises StopAsyncIteration once the feed is closed and drained."""
        while not self._values:
            if self._ended:
                raise StopAsyncIteration
            await self._ready.wait()
            if not self._values and not self._ended:
                self._ready.clear()
        value = self._values.popleft()
        if not self._values and not self._ended:
            self._ready.clear()
        return value

    def close(self) -> None:
        self._feed._remove(self)
        self._end()
        self._values.clear()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The fan-out every telemetry consumer reads from: no consumer can hold up another."""

from __future__ import annotations

import asyncio

import pytest

from groundstation.fleet.feed import Feed


def test_a_slow_consumer_sees_only_the_newest_snapshot_while_a_fast_one_sees_all():
    async def scenario():
        feed: Feed[int] = Feed(keep=1)
        fast, slow = feed.subscribe(keep=100), feed.subscribe()
        seen: list[int] = []

        async def read_fast():
            async for value in fast:
                seen.append(value)

        reader = asyncio.create_task(read_fast())
        for i in range(50):
            feed.publish(i)
            await asyncio.sleep(0)
        assert await asyncio.wait_for(slow.get(), 1.0) == 49
        assert slow.dropped == 49
        feed.close()
        await asyncio.wait_for(reader, 1.0)
        return seen

    assert asyncio.run(scenario()) == list(range(50))


def test_publishing_never_waits_for_a_consumer_that_does_not_read():
    async def scenario():
        feed: Feed[int] = Feed(keep=8)
        stuck = feed.subscribe()
        for i in range(10_000):
            feed.publish(i)
        return stuck.pending(), [stuck.get_nowait() for _ in range(8)]

    pending, values = asyncio.run(scenario())
    assert pending == 8
    assert values == list(range(9_992, 10_000))


def test_closing_the_feed_ends_every_subscription_after_what_it_holds():
    async def scenario():
        feed: Feed[str] = Feed(keep=4)
        sub = feed.subscribe()
        feed.publish("a")
        feed.publish("b")
        feed.close()
        return [v async for v in sub]

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_late_subscriber_can_start_from_the_latest_value():
    async def scenario():
        feed: Feed[int] = Feed()
        feed.publish(7)
        with feed.subscribe(replay_latest=True) as sub:
            return await asyncio.wait_for(sub.get(), 1.0), feed.latest

    assert asyncio.run(scenario()) == (7, 7)


def test_an_unsubscribed_consumer_gets_nothing_more():
    async def scenario():
        feed: Feed[int] = Feed()
        sub = feed.subscribe()
        sub.close()
        feed.publish(1)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(sub.get(), 1.0)

    asyncio.run(scenario())

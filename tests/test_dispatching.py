"""How a socket's consumer waits for its messages (conversations/dispatching.py): one at a time,
each source's in order, one turn of the event loop after each arrives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.exceptions import StopConsumer

from conversations.dispatching import dispatch_one_at_a_time

Message = dict[str, Any]


class Sources:
    """Two message sources, as a socket has (the browser's frames, the channel layer's events),
    and what the consumer handled from them."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[Message] = asyncio.Queue()
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self.handled: list[str] = []
        self.handling = 0  # handlers running at this moment
        self.most_at_once = 0
        self.release: dict[str, asyncio.Event] = {}

    async def dispatch(self, message: Message) -> None:
        self.handling += 1
        self.most_at_once = max(self.most_at_once, self.handling)
        try:
            if message["name"] in self.release:
                await self.release[message["name"]].wait()
            if message.get("stop"):
                raise StopConsumer
            if message.get("fail"):
                raise RuntimeError(message["name"])
            self.handled.append(message["name"])
        finally:
            self.handling -= 1

    def run(self) -> asyncio.Task[None]:
        return asyncio.create_task(
            dispatch_one_at_a_time([self.frames.get, self.events.get], self.dispatch)
        )


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_an_event_waits_for_the_frame_being_handled_then_is_handled_in_order() -> None:
    sources = Sources()
    sources.release["send"] = asyncio.Event()  # a send waits on the database, say
    consumer = sources.run()
    sources.frames.put_nowait({"name": "send"})
    for n in range(3):
        sources.events.put_nowait({"name": f"delta {n}"})
    for _ in range(20):
        await asyncio.sleep(0)
    assert sources.handled == []  # the events wait for the send's handler
    sources.release["send"].set()
    await _until(lambda: len(sources.handled) == 4)
    assert sources.handled == ["send", "delta 0", "delta 1", "delta 2"]
    assert sources.most_at_once == 1
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer


async def test_a_message_is_handled_one_turn_of_the_loop_after_it_arrives() -> None:
    """channels' own loop took three turns (a task per message, and asyncio.wait): on a busy
    worker every turn runs the other sockets' work first."""
    sources = Sources()
    consumer = sources.run()
    await asyncio.sleep(0)  # the readers wait
    for queue in (sources.events, sources.frames):
        turns = 0
        queue.put_nowait({"name": "message"})
        while not sources.handled:
            await asyncio.sleep(0)
            turns += 1
        assert turns == 1
        sources.handled.clear()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)


async def test_a_stop_ends_the_consumer_and_its_other_reader() -> None:
    sources = Sources()
    consumer = sources.run()
    sources.frames.put_nowait({"name": "disconnect", "stop": True})
    await asyncio.wait_for(consumer, 1)  # ends without an error
    assert consumer.exception() is None
    # Nobody reads the events any more: a message sent now stays unread.
    sources.events.put_nowait({"name": "late"})
    await asyncio.sleep(0.01)
    assert sources.handled == [] and sources.events.qsize() == 1


async def test_a_failing_handler_fails_the_consumer_with_its_error() -> None:
    sources = Sources()
    consumer = sources.run()
    sources.events.put_nowait({"name": "broken", "fail": True})
    with pytest.raises(RuntimeError, match="broken"):
        await asyncio.wait_for(consumer, 1)


async def test_a_consumer_cancelled_mid_handler_stops_handling() -> None:
    sources = Sources()
    sources.release["slow"] = asyncio.Event()
    consumer = sources.run()
    sources.frames.put_nowait({"name": "slow"})
    await _until(lambda: sources.handling == 1)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert sources.handling == 0  # the handler was cancelled with it, not left running

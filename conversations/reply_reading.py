"""Ollama's answer, read into memory from the moment it is asked.

A turn asks the model as soon as it knows what to ask, before the reply is saved (the model
works on its first token while the turn is written); the generation that publishes and saves
the reply takes the reading over once the reply exists. Until then the text gathers here.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from conversations.ollama import ChatChunk, OllamaClient
from conversations.prompting import ReplyRequest


class ReplyReading:
    """Reads the reply to ``request`` as a task of its own, started at once."""

    def __init__(
        self,
        client: OllamaClient,
        request: ReplyRequest,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """``on_sent`` is called once: when the request is written, or when the reading ends
        without having written it."""
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.final: ChatChunk | None = None
        # Set whenever text arrives; whoever publishes it clears it.
        self.arrived = asyncio.Event()
        # A fresh context: the reading belongs to the worker, not to the socket that asked.
        self.task: asyncio.Task[None] = asyncio.create_task(
            self._read(client, request, on_sent),
            name="reply-reading",
            context=contextvars.Context(),
        )

    async def _read(
        self, client: OllamaClient, request: ReplyRequest, on_sent: Callable[[], None] | None
    ) -> None:
        told = False

        def sent() -> None:
            nonlocal told
            if on_sent is not None and not told:
                told = True
                on_sent()

        chunks = client.chat_stream(
            model=request.model,
            messages=request.messages,
            options=request.options,
            keep_alive=request.keep_alive,
            think=request.think,
            on_sent=sent,
        )
        try:
            await self._take(chunks)
        finally:
            sent()  # whoever waits for the request is not left waiting

    async def _take(self, chunks: AsyncGenerator[ChatChunk, None]) -> None:
        async with aclosing(chunks):
            async for chunk in chunks:
                if chunk.thinking:
                    self.thinking.append(chunk.thinking)
                if chunk.content:
                    self.content.append(chunk.content)
                if chunk.thinking or chunk.content:
                    self.arrived.set()
                if chunk.done:
                    self.final = chunk

    def stop(self) -> None:
        """Leaving the stream closes the HTTP response, which makes Ollama stop."""
        self.task.cancel()

    async def abandon(self) -> None:
        """Stop, for a reply that will not exist (its turn could not be saved): whatever the
        reading ended with is nobody's to hear."""
        self.stop()
        await asyncio.wait([self.task])
        if not self.task.cancelled():
            self.task.exception()  # retrieved: not logged as never heard of

"""A test's stand-in for a browser tab on a conversation socket: it connects through the real
ASGI application (origin check, session, routing) and keeps each message as the page would
show it (a reply's rendered HTML, a user's text), by applying the frames' swaps as htmx does."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from chatsite.asgi import application


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class Tab:
    def __init__(self, conversation_id: int, *, cookie: str = "", origin: str = "http://localhost"):
        headers = [(b"host", b"localhost")]
        if origin:
            headers.append((b"origin", origin.encode()))
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.communicator = WebsocketCommunicator(
            application, f"/ws/conversations/{conversation_id}/", headers=headers
        )
        self.frames: list[str] = []
        self.contents: dict[int, str] = {}
        self.thinking: dict[int, str] = {}
        self.thinking_open: dict[int, bool] = {}
        # A streaming reply as the page has it: finished blocks (HTML) and the open tail.
        self.blocks: dict[int, str] = {}
        self.tails: dict[int, str] = {}
        # What the page showed of each reply while it streamed, before its final frame.
        self.streamed: dict[int, str] = {}
        self.statuses: dict[int, str] = {}
        # Replies whose final frame (the whole reply re-rendered, no longer streaming) arrived.
        self.finished: set[int] = set()

    async def connect(self) -> bool:
        connected, _ = await self.communicator.connect()
        return bool(connected)

    async def close(self) -> None:
        await self.communicator.disconnect()

    async def send(self, action: str, **fields: Any) -> None:
        frame = {"action": action, **fields, "HEADERS": {"HX-Request": "true"}}
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def next_frame(self, timeout: float = 5) -> str:
        frame: str = await self.communicator.receive_from(timeout=timeout)
        self.frames.append(frame)
        self._apply(frame)
        return frame

    async def until(self, predicate: Any, timeout: float = 10) -> None:
        """Read frames until ``predicate(self)`` holds."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await self.next_frame(timeout)

    async def until_finished(self, message_id: int, timeout: float = 10) -> str:
        await self.until(lambda tab: message_id in tab.finished, timeout)
        return self.statuses[message_id]

    async def nothing_more(self, timeout: float = 0.3) -> bool:
        return bool(await self.communicator.receive_nothing(timeout))

    def _apply(self, frame: str) -> None:
        for match in re.finditer(
            r'<article [^>]*id="msg-(\d+)"[^>]*data-role="(\w+)"[^>]*data-status="(\w+)".*?</article>',
            frame,
            re.S,
        ):
            message_id, role, status = int(match[1]), match[2], match[3]
            self.statuses[message_id] = status
            if status != "streaming" and 'hx-swap-oob="true"' in match[0].split(">", 1)[0]:
                self.finished.add(message_id)
            blocks = re.search(rf'id="msg-{message_id}-blocks">(.*?)</div>', match[0], re.S)
            if blocks:
                self.blocks[message_id] = blocks[1]
                tail = re.search(rf'id="msg-{message_id}-tail">(.*?)</div>', match[0], re.S)
                self.tails[message_id] = tail[1] if tail else ""
                self.contents[message_id] = blocks[1] + self.tails[message_id]
                self.streamed[message_id] = self.contents[message_id]
            else:
                body = re.search(rf'id="msg-{message_id}-content"[^>]*>(.*?)</div>', match[0], re.S)
                if body:
                    # Assistant replies are HTML (rendered Markdown); user messages are text.
                    self.contents[message_id] = (
                        body[1] if role == "assistant" else html.unescape(body[1])
                    )
            thinking = re.search(rf'id="msg-{message_id}-thinking">(.*?)</div>', match[0], re.S)
            if thinking:
                self.thinking[message_id] = html.unescape(thinking[1])
        for match in re.finditer(
            r'<details[^>]*id="msg-(\d+)-thinking-block"([^>]*)hx-swap-oob="true"[^>]*>.*?'
            r'id="msg-\1-thinking">(.*?)</div>',
            frame,
            re.S,
        ):
            self.thinking[int(match[1])] = html.unescape(match[3])
            self.thinking_open[int(match[1])] = " open" in match[2]
        for match in re.finditer(
            r'hx-swap-oob="beforeend:#msg-(\d+)-thinking">(.*?)</div>', frame, re.S
        ):
            message_id = int(match[1])
            self.thinking[message_id] = self.thinking.get(message_id, "") + html.unescape(match[2])
        for match in re.finditer(
            r'hx-swap-oob="beforeend:#msg-(\d+)-blocks">(.*?)</div>', frame, re.S
        ):
            message_id = int(match[1])
            self.blocks[message_id] = self.blocks.get(message_id, "") + match[2]
            self.contents[message_id] = self.blocks[message_id] + self.tails.get(message_id, "")
            self.streamed[message_id] = self.contents[message_id]
        for match in re.finditer(
            r'<div id="msg-(\d+)-tail" hx-swap-oob="true">(.*?)</div>', frame, re.S
        ):
            message_id = int(match[1])
            self.tails[message_id] = match[2]
            self.contents[message_id] = self.blocks.get(message_id, "") + match[2]
            self.streamed[message_id] = self.contents[message_id]

    def error_text(self) -> str:
        for frame in reversed(self.frames):
            found = re.search(r'id="chat-error"[^>]*>(.*?)</div>', frame, re.S)
            if found:
                return html.unescape(found[1]).strip()
        return ""

"""A test's stand-in for a browser tab on a conversation socket: it connects through the real
ASGI application (origin check, session, routing) and keeps the reply text as the page would
show it, by applying the frames' swaps the way htmx does."""

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
            r'<article [^>]*id="msg-(\d+)"[^>]*data-status="(\w+)".*?</article>', frame, re.S
        ):
            message_id = int(match[1])
            self.statuses[message_id] = match[2]
            if match[2] != "streaming" and 'hx-swap-oob="true"' in match[0].split(">", 1)[0]:
                self.finished.add(message_id)
            body = re.search(rf'id="msg-{message_id}-content"[^>]*>(.*?)</div>', match[0], re.S)
            if body:
                self.contents[message_id] = html.unescape(body[1])
            thinking = re.search(rf'id="msg-{message_id}-thinking">(.*?)</div>', match[0], re.S)
            if thinking:
                self.thinking[message_id] = html.unescape(thinking[1])
        for match in re.finditer(
            r'<details[^>]*id="msg-(\d+)-thinking-block"[^>]*hx-swap-oob="true"[^>]*>.*?'
            r'id="msg-\1-thinking">(.*?)</div>',
            frame,
            re.S,
        ):
            self.thinking[int(match[1])] = html.unescape(match[2])
        for match in re.finditer(
            r'hx-swap-oob="beforeend:#msg-(\d+)-(content|thinking)">(.*?)</div>', frame, re.S
        ):
            target = self.contents if match[2] == "content" else self.thinking
            message_id = int(match[1])
            target[message_id] = target.get(message_id, "") + html.unescape(match[3])

    def error_text(self) -> str:
        for frame in reversed(self.frames):
            found = re.search(r'id="chat-error"[^>]*>(.*?)</div>', frame, re.S)
            if found:
                return html.unescape(found[1]).strip()
        return ""

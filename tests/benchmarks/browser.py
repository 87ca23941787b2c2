"""What a browser does to the app, timed: log in, open a conversation's socket, send a message
as htmx's ws extension sends the composer form, and read the frames until the reply is done.

Replies come from the fake Ollama's clock models, whose every token is the moment it left the
fake server (``t`` + microseconds of the monotonic clock all processes share). A token's lag is
the time the frame carrying it was read here minus that stamp.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

_STAMP = re.compile(r"\bt(\d{6,})")
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_STREAMING_REPLY = re.compile(
    r'id="msg-(\d+)"[^>]*data-role="assistant"[^>]*data-status="streaming"'
)
_STATUS = re.compile(r'data-status="(\w+)"')
_ERROR = re.compile(r'id="chat-error"[^>]*>([^<]+)<')
# A reply that sends nothing for this long is taken as lost: the run says so, and goes on.
FRAME_TIMEOUT_SECONDS = 30


def now_us() -> int:
    return time.monotonic_ns() // 1000


def log_in(base_url: str, username: str, password: str) -> str:
    """The Cookie header of a session opened through the login form, as a browser gets it."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        page = http.get("/accounts/login/")
        token = _CSRF.search(page.text)
        if token is None:
            raise RuntimeError("the login page has no CSRF token")
        response = http.post(
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        if response.status_code != 302 or "sessionid" not in http.cookies:
            raise RuntimeError(f"logging in as {username} failed ({response.status_code})")
        return f"sessionid={http.cookies['sessionid']}"


@dataclass
class Reply:
    """One reply as a tab saw it; times in microseconds of the monotonic clock."""

    sent_at: int
    reply_id: int = 0
    first_token_at: int | None = None
    finished_at: int | None = None
    status: str = ""
    # For each token: when the tab read it, and that minus when it left the fake server.
    arrivals: list[int] = field(default_factory=list)
    lags: list[int] = field(default_factory=list)

    @property
    def first_token_us(self) -> int | None:
        return None if self.first_token_at is None else self.first_token_at - self.sent_at


class Tab:
    """One open conversation page."""

    def __init__(self, socket: ClientConnection, conversation_id: int) -> None:
        self.socket = socket
        self.conversation_id = conversation_id

    @classmethod
    async def open(cls, base_url: str, cookie: str, conversation_id: int) -> Tab:
        socket = await connect(
            f"{base_url.replace('http', 'ws', 1)}/ws/conversations/{conversation_id}/",
            origin=Origin(base_url),
            additional_headers={"Cookie": cookie},
            open_timeout=60,
            max_size=None,
            # Pings would wake every idle socket; the browser's htmx sends none either.
            ping_interval=None,
        )
        tab = cls(socket, conversation_id)
        await tab.socket.recv()  # the snapshot every (re)connecting page is sent
        return tab

    async def close(self) -> None:
        await self.socket.close()

    async def send(self, action: str, **fields: Any) -> None:
        """A form as htmx's ws-send posts it: its fields and the request headers, one object."""
        headers = {
            "HX-Request": "true",
            "HX-Trigger": "composer",
            "HX-Trigger-Name": None,
            "HX-Target": "composer",
            "HX-Current-URL": f"/conversations/{self.conversation_id}/",
        }
        await self.socket.send(json.dumps({"action": action, **fields, "HEADERS": headers}))

    async def reply_to(
        self,
        content: str,
        *,
        stop_after_first: bool = False,
        stop: asyncio.Event | None = None,
    ) -> Reply:
        """Send a message and read frames until its reply is finished; press Stop after the
        first token, or once ``stop`` is set."""
        reply = Reply(sent_at=now_us())
        await self.send("send", content=content)
        seen = 0
        stopping = False
        while reply.finished_at is None:
            if stop is not None and stop.is_set() and reply.reply_id and not stopping:
                stopping = True
                await self.send("stop", message_id=str(reply.reply_id))
            try:
                frame = await asyncio.wait_for(self.socket.recv(), FRAME_TIMEOUT_SECONDS)
            except TimeoutError:
                raise RuntimeError(
                    f"conversation {self.conversation_id}: nothing for "
                    f"{FRAME_TIMEOUT_SECONDS} s, reply {reply.reply_id or '(not started)'} lost"
                ) from None
            arrived = now_us()
            assert isinstance(frame, str)
            if "<article" in frame:  # a turn starting (with its first text, if it came), or
                # a reply finished (whole, again: its tokens are not new)
                if not reply.reply_id and (started := _STREAMING_REPLY.search(frame)):
                    reply.reply_id = int(started[1])
                elif reply.reply_id and (status := _status_of(reply.reply_id, frame)):
                    reply.status = status
                    if status != "streaming":
                        reply.finished_at = arrived
                        continue
            elif 'id="chat-error"' in frame and (error := _ERROR.search(frame)):
                raise RuntimeError(f"the app refused the message: {error[1].strip()}")
            fresh = [int(stamp) for stamp in _STAMP.findall(frame) if int(stamp) > seen]
            if not fresh:
                continue
            seen = max(fresh)
            reply.arrivals.extend(arrived for _ in fresh)
            reply.lags.extend(arrived - stamp for stamp in fresh)
            if reply.first_token_at is None:
                reply.first_token_at = arrived
                if stop_after_first:
                    await self.send("stop", message_id=str(reply.reply_id))
        return reply


def _status_of(message_id: int, frame: str) -> str:
    """The status of the message's article in the frame, or "" when it has none."""
    _, found, rest = frame.partition(f'id="msg-{message_id}"')
    status = _STATUS.search(rest) if found else None
    return status[1] if status else ""


async def open_tabs(
    base_url: str, cookie: str, conversation_ids: list[int], *, at_once: int = 50
) -> list[Tab]:
    """Tabs on these conversations, opened a few at a time like users arriving."""
    limit = asyncio.Semaphore(at_once)

    async def one(conversation_id: int) -> Tab:
        async with limit:
            return await Tab.open(base_url, cookie, conversation_id)

    return list(await asyncio.gather(*(one(c) for c in conversation_ids)))


async def close_tabs(tabs: list[Tab]) -> None:
    await asyncio.gather(*(tab.close() for tab in tabs), return_exceptions=True)


async def direct_first_chunk(http: httpx.AsyncClient, model: str, content: str) -> int:
    """Microseconds from sending a chat request straight to the fake Ollama to reading its first
    content chunk; the stream is then left, as the app leaves it on Stop."""
    started = now_us()
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True}
    async with http.stream("POST", "/api/chat", json=body) as response:
        async for line in response.aiter_lines():
            if json.loads(line).get("message", {}).get("content"):
                return now_us() - started
    raise RuntimeError(f"{model} answered without content")

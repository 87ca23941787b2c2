"""One HTTP exchange of the fake Ollama, on an h11 connection, and the record tests read."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import h11

from conversations.fake_ollama.wire import go_json


@dataclass
class RecordedRequest:
    """What a client sent, and how the exchange ended, for tests to inspect."""

    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)
    status: int | None = None
    chunks_sent: int = 0
    disconnected: bool = False
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "status": self.status,
            "chunks_sent": self.chunks_sent,
            "disconnected": self.disconnected,
            "finished": self.finished,
        }


class Exchange:
    """One request and its response on a connection."""

    def __init__(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        body: bytes,
        record: RecordedRequest,
    ) -> None:
        self.conn, self.reader, self.writer = conn, reader, writer
        self.method = request.method.decode()
        self.body = body
        self.record = record
        self.gone = asyncio.Event()
        self.aborted = False
        self._watcher: asyncio.Task[None] | None = None

    def _headers(self, content_type: str | None, length: int | None) -> list[tuple[str, str]]:
        headers = [("Date", formatdate(usegmt=True))]
        if content_type:
            headers.insert(0, ("Content-Type", content_type))
        if length is not None:
            headers.append(("Content-Length", str(length)))
        return headers

    async def _write(self, *events: Any) -> bool:
        # The record is marked finished before the last bytes leave: a client can read the
        # whole response (and a test can look at the record) before drain() returns here.
        if any(isinstance(event, h11.EndOfMessage) for event in events):
            self.record.finished = True
        try:
            for event in events:
                data = self.conn.send(event)
                if data:
                    self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, h11.LocalProtocolError):
            self.record.finished = False
            self._mark_gone()
            return False
        return True

    def _mark_gone(self) -> None:
        if not self.gone.is_set():
            self.gone.set()
            if not self.record.finished:
                self.record.disconnected = True

    async def send_bytes(self, status: int, body: bytes, content_type: str | None) -> None:
        self.record.status = status
        payload = b"" if self.method == "HEAD" else body
        events: list[Any] = [
            h11.Response(status_code=status, headers=self._headers(content_type, len(body)))
        ]
        if payload:
            events.append(h11.Data(data=payload))
        events.append(h11.EndOfMessage())
        await self._write(*events)

    async def send_json(self, status: int, value: Any) -> None:
        await self.send_bytes(status, go_json(value).encode(), "application/json; charset=utf-8")

    async def send_error(self, status: int, message: str) -> None:
        await self.send_json(status, {"error": message})

    async def send_text(self, status: int, text: str, content_type: str = "text/plain") -> None:
        await self.send_bytes(status, text.encode(), content_type)

    async def start_stream(self) -> bool:
        self.record.status = 200
        response = h11.Response(
            status_code=200, headers=self._headers("application/x-ndjson", None)
        )
        ok = await self._write(response)
        self._watcher = asyncio.create_task(self._watch_for_disconnect())
        return ok

    async def send_line(self, value: Any) -> bool:
        if self.gone.is_set():
            return False
        ok = await self._write(h11.Data(data=(go_json(value) + "\n").encode()))
        if ok:
            self.record.chunks_sent += 1
        return ok

    async def end_stream(self) -> None:
        await self._write(h11.EndOfMessage())
        await self._stop_watching()

    def abort(self) -> None:
        """Drop the connection mid-response, as a crashing server or a broken network does."""
        self.aborted = True
        self.record.finished = False
        self.writer.transport.abort()

    async def pause(self, seconds: float) -> bool:
        """Wait, but stop early when the client goes away. True while the client is there."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return not self.gone.is_set()
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def wait_until_gone(self) -> None:
        await self.gone.wait()

    async def _watch_for_disconnect(self) -> None:
        # The client sends nothing more until the response ends, so reading here only ever
        # sees the end of the connection (or an early next request, which h11 keeps).
        try:
            while True:
                data = await self.reader.read(65536)
                self.conn.receive_data(data)
                if not data:
                    self._mark_gone()
                    return
        except (ConnectionError, h11.RemoteProtocolError):
            self._mark_gone()

    async def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

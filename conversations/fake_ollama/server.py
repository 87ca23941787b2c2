"""The fake Ollama's HTTP server: asyncio streams and h11, so it can do what real servers do on
the wire (chunked NDJSON, a cut connection, a stall) and notice when a client goes away."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import h11

from conversations.fake_ollama.catalogue import FakeModel, default_catalogue
from conversations.fake_ollama.endpoints import (
    DEFAULT_KEEP_ALIVE,
    FOREVER,
    ROUTES,
    RUNNER_STOPPED,
    SERVER_BUSY,
    VERSION,
)
from conversations.fake_ollama.exchange import Exchange, RecordedRequest
from conversations.fake_ollama.validation import RequestRejected, normalize_name
from conversations.fake_ollama.wire import now_utc

__all__ = ["RUNNER_STOPPED", "SERVER_BUSY", "VERSION", "FakeOllamaServer", "RecordedRequest"]


class FakeOllamaServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[FakeModel] | None = None,
        *,
        pull_step_seconds: float = 0.02,
        log_path: Path | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: serve HTTPS with this server context, as Ollama behind a TLS proxy does."""
        self.host, self.port = host, port
        self.tls = tls
        self.models: dict[str, FakeModel] = {
            normalize_name(m.name): m
            for m in (models if models is not None else default_catalogue())
        }
        self.loaded: dict[str, datetime] = {}
        self.requests: list[RecordedRequest] = []
        self.pull_step_seconds = pull_step_seconds
        self.log_path = log_path
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._exchanges: set[Exchange] = set()

    # --- for tests -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def model(self, name: str) -> FakeModel:
        return self.models[normalize_name(name)]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def start(self) -> FakeOllamaServer:
        """Serve from a background thread until stop(); returns once it accepts connections."""
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._open())
            started.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-ollama", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake Ollama server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            # Stop listening and end every connection before the loop goes away.
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        listening = await self._open()
        if on_ready is not None:
            on_ready()
        try:
            await listening.serve_forever()
        finally:
            await self._close()

    async def _open(self) -> asyncio.Server:
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Let every handler end by itself: cancelling them would make asyncio log errors.
            for exchange in list(self._exchanges):
                exchange._mark_gone()
            for writer in list(self._connections):
                writer.transport.abort()
            if self._handlers:
                await asyncio.wait(self._handlers, timeout=5)
            await self._server.wait_closed()

    # --- HTTP ------------------------------------------------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                received = await self._read_request(conn, reader)
                if received is None:
                    break
                request, body = received
                exchange = self._exchange(conn, reader, writer, request, body)
                self._exchanges.add(exchange)
                try:
                    await self._dispatch(exchange)
                finally:
                    self._exchanges.discard(exchange)
                    await exchange._stop_watching()
                    self._log(exchange.record)
                if exchange.aborted or exchange.gone.is_set():
                    break
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            self._connections.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            if not writer.transport.is_closing():
                writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    def _exchange(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        body: bytes,
    ) -> Exchange:
        try:
            parsed: Any = json.loads(body) if body.strip() else None
        except json.JSONDecodeError:
            parsed = None
        record = RecordedRequest(
            method=request.method.decode(),
            path=request.target.decode().split("?", 1)[0],
            body=parsed if isinstance(parsed, dict) else None,
            headers={k.decode(): v.decode(errors="replace") for k, v in request.headers},
        )
        self.requests.append(record)
        return Exchange(conn, reader, writer, request, body, record)

    async def _dispatch(self, exchange: Exchange) -> None:
        methods = ROUTES.get(exchange.record.path)
        if methods is None:
            await exchange.send_text(404, "404 page not found")
            return
        handler = methods.get(exchange.method)
        if handler is None:
            await exchange.send_text(405, "405 method not allowed")
            return
        try:
            await handler(self, exchange)
        except RequestRejected as rejected:
            await exchange.send_error(rejected.status, rejected.message)

    def _log(self, record: RecordedRequest) -> None:
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record.to_json()) + "\n")

    # --- model state -------------------------------------------------------------------------

    def find(self, name: str) -> FakeModel | None:
        return self.models.get(normalize_name(name))

    def keep_loaded(self, model: FakeModel, keep_alive: float | None) -> None:
        seconds = DEFAULT_KEEP_ALIVE if keep_alive is None else keep_alive
        key = normalize_name(model.name)
        if seconds == 0:
            self.loaded.pop(key, None)
        else:
            self.loaded[key] = now_utc() + (FOREVER if seconds < 0 else timedelta(seconds=seconds))

    def loaded_now(self) -> list[tuple[FakeModel, datetime]]:
        now = now_utc()
        return [
            (self.models[key], expires)
            for key, expires in self.loaded.items()
            if expires > now and key in self.models
        ]

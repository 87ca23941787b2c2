"""The Ollama client's connections (conversations/ollama/network.py), over real sockets, on both
event loops the worker can run on: made and kept alive, dropped when the server has closed
them, TLS to an Ollama behind a proxy, timeouts, and flow control in both directions."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import httpcore
import httpx
import pytest
import trustme

from conversations.fake_ollama import FakeOllamaServer, expected_reply
from conversations.ollama import ChatMessage, OllamaClient, OllamaError, OllamaUnreachable, network
from conversations.ollama import client as client_module
from conversations.ollama.client import POOL_LIMITS
from conversations.ollama.network import AsyncioBackend, AsyncioTransport

# The worker runs on uvloop's event loop (chatsite/serve.py), the tests in-process on asyncio's.
pytestmark = pytest.mark.both_event_loops

HELLO = [ChatMessage("user", "Hello there")]
HELLO_JSON = [{"role": "user", "content": "Hello there"}]
VERSION_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    b'{"version":"0.12.0"}'
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A loopback server that does what ``handler`` does with each connection; its URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def private_authority(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 from a private authority, and that
    authority's certificate, as an operator would hand it to SSL_CERT_FILE."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    authority_file = directory / "authority.pem"
    authority.cert_pem.write_to_path(str(authority_file))
    return context, authority_file


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the client opens, as (host, port)."""
    connections: list[tuple[str, int]] = []
    connect = AsyncioBackend.connect_tcp

    async def counted(self: AsyncioBackend, host: str, port: int, *args: Any, **kw: Any) -> Any:
        connections.append((host, port))
        return await connect(self, host, port, *args, **kw)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", counted)
    return connections


async def test_replies_stream_over_one_connection_made_on_asyncio_and_kept_alive(
    fake_ollama: FakeOllamaServer, opened: list[tuple[str, int]]
) -> None:
    async with OllamaClient(fake_ollama.url) as client:
        for _ in range(3):
            chunks = [c async for c in client.chat_stream(model="llama3.2", messages=HELLO)]
            assert "".join(c.content for c in chunks) == expected_reply("llama3.2", HELLO_JSON)
        assert await client.version()
    # Through this module's backend (httpx still sends through the pool it was given), and
    # the one connection served all four requests.
    assert opened == [("127.0.0.1", fake_ollama.port)]


async def test_a_request_goes_out_at_once_not_held_for_more_to_send(
    fake_ollama: FakeOllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request is written in a few small pieces: with Nagle's algorithm on, the last would
    wait for the server's acknowledgement of the first (up to 40 ms on Linux)."""
    nodelay: list[int] = []
    connect = AsyncioBackend._connect

    async def checked(self: AsyncioBackend, *args: Any) -> network.AsyncioStream:
        stream = await connect(self, *args)
        sock = stream.get_extra_info("socket")
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return stream

    monkeypatch.setattr(AsyncioBackend, "_connect", checked)
    async with OllamaClient(fake_ollama.url) as client:
        assert await client.version()
    assert nodelay and all(nodelay)


async def test_a_request_on_a_kept_connection_is_written_without_a_turn_of_the_loop(
    fake_ollama: FakeOllamaServer,
) -> None:
    """On a worker relaying other replies, every turn the event loop takes before a request is
    written runs their work first. httpcore took two such turns per request, one per lock it
    takes (conversations/ollama/pool_locks.py): here nothing else runs in between."""
    async with OllamaClient(fake_ollama.url) as client:
        await _turns_before_written(client)  # makes the connection
        for _ in range(2):  # on the connection kept
            assert await _turns_before_written(client) == 0


class _RecordingTransport:
    """A connection's transport, recording each hand-off of bytes to it (a write, or the
    pieces of one writelines)."""

    def __init__(self, transport: asyncio.Transport, handed: list[list[bytes]]) -> None:
        self._transport = transport
        self._handed = handed

    def write(self, data: bytes) -> None:
        self._handed.append([bytes(data)])
        self._transport.write(data)

    def writelines(self, pieces: Sequence[bytes]) -> None:
        self._handed.append([bytes(piece) for piece in pieces])
        self._transport.writelines(pieces)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """What every connection's transport is handed, in order, one list per hand-off."""
    handed: list[list[bytes]] = []
    make_stream = network.AsyncioStream.__init__

    def recording(self: network.AsyncioStream, transport: Any, protocol: Any) -> None:
        make_stream(self, cast(asyncio.Transport, _RecordingTransport(transport, handed)), protocol)

    monkeypatch.setattr(network.AsyncioStream, "__init__", recording)
    return handed


async def test_a_request_goes_out_in_one_write_not_one_per_piece(
    handed: list[list[bytes]],
) -> None:
    """httpcore writes a request's headers, then its body: each write woke the server on its
    own (and on loopback ran it before the write returned). Both go out together, as the
    client starts waiting for the response."""
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        requests.append(head + await reader.readexactly(length))
        writer.write(VERSION_REPLY)
        await writer.drain()

    async with (
        raw_server(answer) as url,
        httpx.AsyncClient(transport=AsyncioTransport(limits=POOL_LIMITS)) as http,
    ):
        response = await http.post(f"{url}/api/chat", json={"model": "llama3.2"})
    assert response.json() == {"version": "0.12.0"}
    assert len(handed) == 1  # one hand-off to the transport …
    assert len(handed[0]) == 2  # … of both pieces, headers then body …
    assert b"".join(handed[0]) == requests[0]  # … which are what the server read
    assert requests[0].endswith(b'{"model":"llama3.2"}')


async def test_a_small_write_not_followed_by_a_read_goes_out_at_the_next_turn(
    handed: list[list[bytes]],
) -> None:
    received: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(5))

    async with raw_server(record) as url:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", int(url.rsplit(":", 1)[1]))
        await stream.write(b"hello")
        assert handed == []  # held: more may follow at once …
        await asyncio.sleep(0)
        assert handed == [[b"hello"]]  # … and sent when the writer lets the loop turn
        await _until(lambda: received == [b"hello"])
        await stream.aclose()


async def _turns_before_written(client: OllamaClient) -> int:
    """How many times other work ran between asking for a reply and its request written."""
    loop = asyncio.get_running_loop()
    others_ran = 0
    written_after: list[int] = []

    def other_work() -> None:
        nonlocal others_ran
        others_ran += 1
        if not written_after:
            loop.call_soon(other_work)

    loop.call_soon(other_work)
    chunks = client.chat_stream(
        model="llama3.2", messages=HELLO, on_sent=lambda: written_after.append(others_ran)
    )
    assert "".join([c.content async for c in chunks]) == expected_reply("llama3.2", HELLO_JSON)
    assert others_ran > 0  # the other work did run, while the reply streamed
    return written_after[0]


@contextmanager
def address_that_does_not_answer() -> Iterator[tuple[str, int]]:
    """A loopback address where a connection is neither accepted nor refused, as on a route
    that drops packets: a listener whose one-place queue is taken, so the kernel drops the
    next connection's handshake."""
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        yield listener.getsockname()


async def test_a_host_name_whose_first_address_does_not_answer_connects_through_the_next(
    fake_ollama: FakeOllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name with an address that drops packets (typically a broken IPv6 route) before
    one that works: the next address is tried 250 ms later, well within the connect timeout,
    rather than after it has run out."""
    resolve = network._address_infos

    with address_that_does_not_answer() as silent:

        async def two_addresses(loop: Any, host: str, port: int) -> Sequence[Any]:
            if host != "ollama.test":
                return await resolve(loop, host, port)
            tcp = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*tcp, silent), (*tcp, ("127.0.0.1", fake_ollama.port))]

        monkeypatch.setattr(network, "_address_infos", two_addresses)
        url = f"http://ollama.test:{fake_ollama.port}"
        async with OllamaClient(url, connect_timeout=3) as client:
            chunks = [c async for c in client.chat_stream(model="llama3.2", messages=HELLO)]
    assert "".join(c.content for c in chunks) == expected_reply("llama3.2", HELLO_JSON)


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    opened: list[tuple[str, int]],
) -> None:
    async def answer_then_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(VERSION_REPLY)  # keep-alive, as HTTP/1.1 is by default
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # then the server drops it, as Ollama's idle timeout or a proxy does

    async with raw_server(answer_then_hang_up) as url, OllamaClient(url) as client:
        assert await client.version() == "0.12.0"
        await asyncio.sleep(0.2)
        assert await client.version() == "0.12.0"  # a new connection, no error
    assert len(opened) == 2


def answer_twice_closing_the_first(
    listener: socket.socket, close_now: threading.Event, closed: threading.Event
) -> None:
    """A server in a thread of its own: answers one request, closes that connection when told,
    then answers one request on the next connection."""
    for turn in range(2):
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received and (data := connection.recv(4096)):
                received += data
            connection.sendall(VERSION_REPLY)
            if turn == 0:
                close_now.wait(5)
        closed.set()


async def test_a_connection_the_server_closed_before_the_loop_noticed_is_not_reused(
    opened: list[tuple[str, int]],
) -> None:
    """The server closes an idle connection just before the next request, so the event loop has
    not read the close yet (it has not run since): the socket itself says so, and the request
    goes out on a new connection rather than failing on the closed one."""
    close_now, closed = threading.Event(), threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = threading.Thread(
            target=answer_twice_closing_the_first, args=(listener, close_now, closed), daemon=True
        )
        server.start()
        host, port = listener.getsockname()
        async with OllamaClient(f"http://{host}:{port}") as client:
            assert await client.version() == "0.12.0"
            close_now.set()
            # Blocking: the event loop does not run meanwhile, so it has not read the close.
            assert closed.wait(5)
            assert await client.version() == "0.12.0"
        server.join(5)
    assert not server.is_alive()
    assert opened == [(host, port), (host, port)]


class CountingServer:
    """A loopback server answering ``/api/version`` on keep-alive connections, counting the
    connections it accepted, the requests each carried, and the connections that ended."""

    def __init__(self, *, idle_close_seconds: float | None = None) -> None:
        self.requests_per_connection: list[int] = []
        self.ended = 0
        self.idle_close_seconds = idle_close_seconds

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.requests_per_connection)
        self.requests_per_connection.append(0)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_close_seconds):
                        await reader.readuntil(b"\r\n\r\n")
                except (TimeoutError, asyncio.IncompleteReadError):
                    return  # left idle (as a proxy closes it), or closed by the client
                self.requests_per_connection[index] += 1
                writer.write(VERSION_REPLY)
                await writer.drain()
        finally:
            # Counted once the socket is closed, not when closing is asked for: a test that
            # waits for the server to be gone then finds the connection closed, as a client
            # later than the close would.
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.ended += 1

    @property
    def accepted(self) -> int:
        return len(self.requests_per_connection)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def _version_over(stream: httpcore.AsyncNetworkStream) -> bytes:
    await stream.write(b"GET /api/version HTTP/1.1\r\nHost: ollama\r\n\r\n")
    return await stream.read(1024)


@asynccontextmanager
async def backend_to(
    server: CountingServer,
) -> AsyncIterator[tuple[AsyncioBackend, Callable[[], Awaitable[httpcore.AsyncNetworkStream]]]]:
    """One ``AsyncioBackend`` and a way to connect it to ``server``; what it opened, and the
    backend, are closed after."""
    backend = AsyncioBackend()
    streams: list[httpcore.AsyncNetworkStream] = []
    async with raw_server(server.handle) as url:
        port = int(url.rsplit(":", 1)[1])

        async def connect() -> httpcore.AsyncNetworkStream:
            streams.append(await backend.connect_tcp("127.0.0.1", port))
            return streams[-1]

        try:
            yield backend, connect
        finally:
            for stream in streams:
                await stream.aclose()
            await backend.aclose()


@pytest.fixture
def ready_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "READY_AFTER_SECONDS", 0)


async def test_a_connection_is_kept_ready_for_the_next_request(ready_at_once: None) -> None:
    server = CountingServer()
    async with backend_to(server) as (backend, connect):
        first = await connect()
        await _until(lambda: server.accepted == 2)  # the one kept ready
        second = await connect()
        assert server.accepted == 2  # the ready one: nothing to wait for
        assert await _version_over(second) == VERSION_REPLY
        assert server.requests_per_connection[:2] == [0, 1]
        await _until(lambda: server.accepted == 3)  # and the next is kept ready
        for stream in (first, second):
            await stream.aclose()
        await backend.aclose()
        await _until(lambda: server.ended == 3)  # closing closes the ready one too
        await asyncio.sleep(0.05)
        assert server.accepted == 3  # and none is opened after


async def test_a_ready_connection_the_server_closed_is_not_used(ready_at_once: None) -> None:
    server = CountingServer(idle_close_seconds=0.05)
    async with backend_to(server) as (_backend, connect):
        await connect()
        await _until(lambda: server.ended == 2)  # the server closed both while idle
        await asyncio.sleep(0.01)
        server.idle_close_seconds = None
        second = await connect()
        assert await _version_over(second) == VERSION_REPLY  # on a new connection, no error
        assert server.requests_per_connection[:3] == [0, 0, 1]


async def test_a_ready_connection_too_old_is_not_used(
    ready_at_once: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "READY_MAX_AGE_SECONDS", 0.05)
    server = CountingServer()
    async with backend_to(server) as (_backend, connect):
        await connect()
        await _until(lambda: server.accepted == 2)
        await asyncio.sleep(0.1)
        second = await connect()
        assert await _version_over(second) == VERSION_REPLY
        assert server.requests_per_connection[:3] == [0, 0, 1]
        await _until(lambda: server.ended == 1)  # the old one is closed


async def test_a_server_gone_is_reported_by_the_next_request_not_by_the_ready_connection(
    ready_at_once: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = CountingServer(idle_close_seconds=0.05)
    async with raw_server(server.handle) as url:
        client = OllamaClient(url)
        assert await client.version() == "0.12.0"
        await _until(lambda: server.accepted == 2)  # the ready one too, before the server goes
    await _until(lambda: server.ended == 2)  # gone, its connections closed
    try:
        with pytest.raises(OllamaUnreachable):
            await client.version()
        await asyncio.sleep(0.05)  # the ready connection it tried to open again failed too
    finally:
        await client.aclose()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_after_a_stop_the_next_reply_does_not_wait_for_a_connection(
    fake_ollama: FakeOllamaServer, ready_at_once: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Stop closes the reply's connection (that is how Ollama is told to stop): the next
    reply's request goes out on the connection kept ready."""
    connected: list[float] = []
    backend_connect = AsyncioBackend._connect

    async def counted(self: AsyncioBackend, address: Any, timeout: float | None) -> Any:
        connected.append(asyncio.get_running_loop().time())
        return await backend_connect(self, address, timeout)

    monkeypatch.setattr(AsyncioBackend, "_connect", counted)
    async with OllamaClient(fake_ollama.url) as client:
        async for _first in client.chat_stream(model="llama3.2", messages=HELLO):
            break  # the user pressed Stop: the response, and its connection, are closed
        await _until(lambda: len(connected) == 2)  # the one kept ready
        monkeypatch.setattr(network, "READY_AFTER_SECONDS", 60)  # none more during the reply
        chunks = [c async for c in client.chat_stream(model="llama3.2", messages=HELLO)]
        assert "".join(c.content for c in chunks) == expected_reply("llama3.2", HELLO_JSON)
        assert len(connected) == 2  # the reply did not open a connection of its own


def _chunk(line: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(line), line)


async def test_a_response_not_ended_after_its_last_line_still_ends_the_reply(
    monkeypatch: pytest.MonkeyPatch, opened: list[tuple[str, int]]
) -> None:
    """The client reads the end of a response to keep its connection; a server that never
    sends that end costs the connection, not the reply."""
    monkeypatch.setattr(client_module, "END_OF_RESPONSE_SECONDS", 0.2)
    answered = 0

    async def done_then_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        await reader.readuntil(b"}")  # the request's body
        answered += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + _chunk(
                b'{"model":"m","created_at":"2026-11-21T10:00:00Z",'
                b'"message":{"role":"assistant","content":"Hi"},"done":false}\n'
            )
            + _chunk(
                b'{"model":"m","created_at":"2026-11-21T10:00:00Z",'
                b'"message":{"role":"assistant","content":""},"done":true,'
                b'"done_reason":"stop"}\n'
            )
        )
        await writer.drain()
        await reader.read()  # and never the end of the response

    # Not a measure of speed: a reply held until the stall timeout (60 s) fails here.
    async with (
        asyncio.timeout(10),
        raw_server(done_then_hang) as url,
        OllamaClient(url, stall_timeout=60) as client,
    ):
        for _ in range(2):
            chunks = [c async for c in client.chat_stream(model="m", messages=HELLO)]
            assert [c.content for c in chunks] == ["Hi", ""] and chunks[-1].done
    assert answered == 2 and len(opened) == 2  # each unfinished response took its connection


@pytest.fixture
def tls_ollama(tmp_path: Path) -> Iterator[tuple[FakeOllamaServer, Path]]:
    """The fake Ollama behind TLS, and the authority that signed its certificate."""
    context, authority_file = private_authority(tmp_path)
    fake = FakeOllamaServer(tls=context).start()
    try:
        yield fake, authority_file
    finally:
        fake.stop()


async def test_an_ollama_behind_tls_streams_with_the_operators_certificate(
    tls_ollama: tuple[FakeOllamaServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, authority_file = tls_ollama
    monkeypatch.setenv("SSL_CERT_FILE", str(authority_file))
    assert fake.url.startswith("https://")
    async with OllamaClient(fake.url) as client:
        chunks = [c async for c in client.chat_stream(model="llama3.2", messages=HELLO)]
    assert "".join(c.content for c in chunks) == expected_reply("llama3.2", HELLO_JSON)


async def test_an_untrusted_certificate_is_refused_and_says_why(
    tls_ollama: tuple[FakeOllamaServer, Path],
) -> None:
    fake, _ = tls_ollama  # the private authority is not trusted
    async with OllamaClient(fake.url) as client:
        with pytest.raises(OllamaUnreachable) as refused:
            await client.version()
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.detail


async def test_large_responses_over_tls_arrive_whole_over_one_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[tuple[str, int]]
) -> None:
    context, authority_file = private_authority(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority_file))
    body = bytes(range(256)) * (4 * 1024)  # 1 MiB each: reading pauses and resumes under TLS

    async def two_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        await reader.read()

    async with (
        raw_server(two_answers, tls=context) as url,
        httpx.AsyncClient(transport=AsyncioTransport(limits=POOL_LIMITS)) as http,
    ):
        for _ in range(2):
            read = bytearray()
            async with http.stream("GET", url) as response:
                async for piece in response.aiter_raw():
                    read += piece
                    await asyncio.sleep(0.005)  # slower than the server
            assert bytes(read) == body
    assert len(opened) == 1


async def test_a_proxy_from_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request_lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_lines.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        writer.write(VERSION_REPLY)
        await writer.drain()

    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with raw_server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        async with OllamaClient("http://gpu-box.invalid:11434") as client:
            assert await client.version() == "0.12.0"
    assert request_lines == [b"GET http://gpu-box.invalid:11434/api/version HTTP/1.1"]


async def test_a_server_that_never_answers_times_out_with_a_clear_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the request and says nothing until the client leaves

    async with raw_server(silent) as url, OllamaClient(url, request_timeout=0.3) as client:
        with pytest.raises(OllamaError, match="did not answer in time") as timed_out:
            await client.version()
    assert "ReadTimeout" in timed_out.value.detail


async def test_a_large_write_waits_for_a_slow_reader_and_arrives_whole() -> None:
    """An image-laden request can be megabytes: its write waits while the server does not
    read, rather than piling up in memory or failing."""
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB, more than loopback's socket buffers
    reading = asyncio.Event()
    received: dict[str, str] = {}

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        reading.set()
        received["digest"] = hashlib.sha256(await reader.readexactly(len(data))).hexdigest()
        writer.close()

    async with raw_server(slow_reader) as url:
        port = int(url.rsplit(":", 1)[1])
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        await stream.write(data, timeout=10)
        assert reading.is_set()  # the write returned only once the server read
        assert await stream.read(1, timeout=10) == b""  # the server has all of it, and closed
        await stream.aclose()
    assert received["digest"] == hashlib.sha256(data).hexdigest()


async def test_a_reader_slower_than_the_server_pauses_it_and_loses_nothing() -> None:
    paused: list[bool] = []
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB, sent at once

    async def fast_writer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    read = bytearray()
    async with (
        raw_server(fast_writer) as url,
        httpx.AsyncClient(transport=AsyncioTransport(limits=POOL_LIMITS)) as http,
        http.stream("GET", url) as response,
    ):
        async for piece in response.aiter_raw():
            read += piece
            stream = response.extensions["network_stream"]
            paused.append(stream._protocol.reading_paused)
            await asyncio.sleep(0.01)  # a consumer slower than loopback
    assert bytes(read) == body
    assert any(paused)  # reading was paused while the buffer was full …
    assert not paused[-1]  # … and resumed as it emptied

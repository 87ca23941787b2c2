"""httpx's connections to Ollama on the event loop's own transports (asyncio's, or uvloop's,
which daphne runs on), not on anyio streams.

A streaming reply arrives as one small read per token. httpcore's default backend wraps every
read in an anyio cancel scope and pauses and resumes the socket around it (two ``epoll_ctl``
calls): at 2,000 tokens a second that was a tenth of the worker's CPU (docs/performance.md).
Here the connection's protocol keeps what arrives in a buffer, so a read takes what is there or
waits on one future, and a timer exists only for a read or write that has a timeout.

httpcore takes a network backend for exactly this (``AsyncConnectionPool(network_backend=…)``).
Errors are raised as httpcore's own exceptions, which httpx maps as it always does, so the
client sees the same ``httpx`` errors as with the default backend.
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import aiohappyeyeballs
import httpcore
import httpx

# Reading pauses when this much is waiting unread, and resumes below the low mark: a reply the
# worker cannot keep up with backs up into Ollama, not into memory.
HIGH_WATER_BYTES = 256 * 1024
LOW_WATER_BYTES = 64 * 1024
# Writes smaller than this in all are held until the writer reads, or the event loop's next
# turn, and go out as one (AsyncioStream.write); anything larger goes out at once.
COALESCE_MAX_BYTES = 64 * 1024


class _Buffering(asyncio.Protocol):
    """The state of one connection, kept up to date by asyncio's callbacks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the peer closed its side, or the connection was lost
        self.error: BaseException | None = None
        self._reading_paused = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection: asyncio's, or uvloop's (which does not subclass asyncio's).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= HIGH_WATER_BYTES and not self._reading_paused:
            assert self.transport is not None  # noqa: S101
            self.transport.pause_reading()
            self._reading_paused = True
        _wake(self._data_waiter)

    def eof_received(self) -> bool | None:
        self.ended = True
        _wake(self._data_waiter)
        return None  # HTTP/1.1 has nothing to send after the server's end: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        _wake(self._data_waiter)
        _wake(self._drain_waiter)

    def pause_writing(self) -> None:
        self._drain_waiter = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _wake(self._drain_waiter)
        self._drain_waiter = None

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    async def readable(self) -> None:
        """Until there is something to read, or the connection has ended."""
        if self.buffer or self.ended:
            return
        self._data_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._data_waiter
        finally:
            self._data_waiter = None

    async def drained(self) -> None:
        """Until the transport takes writes again, if it paused them (its buffer was full)."""
        if self._drain_waiter is not None:
            # Shielded: a write that gives up (its timeout) must not cancel what the next
            # write waits on.
            await asyncio.shield(self._drain_waiter)

    def take(self, max_bytes: int) -> bytes:
        if len(self.buffer) <= max_bytes:
            data = bytes(self.buffer)
            self.buffer.clear()
        else:
            data = bytes(self.buffer[:max_bytes])
            del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= LOW_WATER_BYTES:
            assert self.transport is not None  # noqa: S101
            self.transport.resume_reading()
            self._reading_paused = False
        return data


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


@contextmanager
def _raising(timeout_as: type[Exception], error_as: type[Exception]) -> Iterator[None]:
    """asyncio's errors as httpcore's. TimeoutError is an OSError: it is caught first."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout_as(str(exc) or "timed out") from exc
    except OSError as exc:  # ssl.SSLError included
        raise error_as(str(exc) or type(exc).__name__) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Buffering) -> None:
        self._transport = transport
        self._protocol = protocol
        # Written, not yet handed to the transport (see ``write``).
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._flush_scheduled = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush()  # what was written goes out before its answer is waited for
        protocol = self._protocol
        if not protocol.buffer and not protocol.ended:
            with _raising(httpcore.ReadTimeout, httpcore.ReadError):
                if timeout is None:  # a stream's reads: no timer (ndjson.py watches for stalls)
                    await protocol.readable()
                else:
                    async with asyncio.timeout(timeout):
                        await protocol.readable()
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """httpcore writes a request in pieces, its headers and then its body, without
        waiting in between. Sent one by one, each piece woke the server on its own; on
        loopback the kernel then ran the server on the writer's processor before the write
        returned (measured on this 2-core machine: 0.3 ms a piece, where the write itself
        takes 0.07 ms). Small pieces are held and go out together when the writer reads (for
        a request: at once, to wait for the response) or at the event loop's next turn,
        whichever comes first."""
        if not buffer:
            return
        protocol = self._protocol
        if self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        if self._held_bytes < COALESCE_MAX_BYTES:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
            return
        self._flush()
        with _raising(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                await protocol.drained()
        if protocol.error is not None:
            raise httpcore.WriteError(str(protocol.error))

    def _flush(self) -> None:
        """Hand what is held to the transport, as one write."""
        self._flush_scheduled = False
        if not self._held:
            return
        held, self._held, self._held_bytes = self._held, [], 0
        if not self._transport.is_closing():  # else the read that follows says why
            self._transport.writelines(held)

    async def aclose(self) -> None:
        # As anyio closes a socket: politely, then at once if that did not take (also when
        # cancelled meanwhile: a TLS close could otherwise wait for the peer).
        try:
            self._flush()
            if not self._transport.is_closing():
                self._transport.close()
                await asyncio.sleep(0)
        finally:
            self._transport.abort()

    def discard(self) -> None:
        """Close a connection never handed to httpcore (one kept ready, no longer wanted)."""
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        self._flush()
        try:
            with _raising(httpcore.ConnectTimeout, httpcore.ConnectError):
                async with asyncio.timeout(timeout):
                    transport = await loop.start_tls(
                        self._transport,
                        self._protocol,
                        ssl_context,
                        server_hostname=server_hostname,
                    )
        except BaseException:
            self._transport.abort()
            raise
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks this of an idle connection before reusing it: anything to read
            # (usually the server having closed it) means it cannot be. What the loop has read
            # says so; if it has read nothing, the socket is asked, as httpcore's own backends
            # ask it: a close that arrived after the loop last polled is seen there (uvloop
            # polls later than asyncio's loop, and reused a connection the server had closed).
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.ended or _readable(self._transport)
        name = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return None if name is None else self._transport.get_extra_info(name)


def _readable(transport: asyncio.BaseTransport) -> bool:
    """Whether the transport's socket has something to read (or is closed), without waiting."""
    sock = transport.get_extra_info("socket")
    if transport.is_closing() or sock is None:
        return True
    if not hasattr(select, "poll"):  # Windows; select() would refuse a descriptor over 1,023
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _connected_socket(
    loop: asyncio.AbstractEventLoop, host: str, port: int, local_address: str | None
) -> socket.socket:
    """A socket connected to ``host``. A host name's addresses are raced as anyio (and asyncio's
    own loop) race them, the next one 250 ms after the last, so that an unreachable IPv6
    address does not use up the whole connect timeout; aiohappyeyeballs does this on any event
    loop (uvloop's own connect tries the addresses one after another)."""
    try:
        return await aiohappyeyeballs.start_connection(
            await _address_infos(loop, host, port),
            local_addr_infos=await _address_infos(loop, local_address, 0)
            if local_address
            else None,
            happy_eyeballs_delay=0.25,
            interleave=1,
            loop=loop,
        )
    except RuntimeError as exc:  # uvloop's way of failing some connects (aiohttp#10362)
        raise OSError(str(exc)) from exc


async def _address_infos(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> Sequence[aiohappyeyeballs.AddrInfoType]:
    if _is_address(host):  # no lookup: asyncio would ask its thread pool all the same
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


# A connection kept ready is opened this long after the last one was taken: not while the
# request that took it is being sent, on the same event loop, and soon enough for a message
# sent right after the last one was stopped (after half a second, as first chosen, a send a
# tenth of a second after a Stop found none and connected itself).
READY_AFTER_SECONDS = 0.05
# A connection kept ready longer than this is not used: under the idle timeouts of the usual
# proxies (60 s), so that one is not taken just as a proxy closes it, and a firewall has not
# forgotten it. The next request connects itself, and another is kept ready.
READY_MAX_AGE_SECONDS = 30.0

# Where a connection goes: host, port, local address, socket options.
_Address = tuple[str, int, str | None, tuple[Any, ...]]


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections on the running event loop (both loops set TCP_NODELAY on them).

    One connection to each server is kept ready, so that a reply's request does not wait for
    one. Replies need new connections often: a Stop closes the reply's response, which is how
    Ollama is told to stop, and the pool closes connections idle for longer than its keep-alive
    expiry (5 s; a person's next message usually comes later). Opening one took about half a
    millisecond on loopback at one reply, more on a busy worker, and a round trip or more to
    another machine. The ready connection is checked as the pool checks an idle one before use
    (one the server has closed is replaced, not used). Failing to open one is left to the next
    request, which connects itself and reports what is wrong."""

    def __init__(self) -> None:
        self._ready: dict[_Address, tuple[AsyncioStream, float]] = {}
        self._opening: dict[_Address, asyncio.Task[None]] = {}
        self._scheduled: dict[_Address, asyncio.TimerHandle] = {}
        self._closed = False

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address: _Address = (host, port, local_address, tuple(socket_options or ()))
        if (opening := self._opening.get(address)) is not None:
            # One is on its way: sooner than another, and within this request's own timeout.
            await asyncio.wait([opening], timeout=timeout)
        stream = self._take_ready(address)
        if stream is None:
            stream = await self._connect(address, timeout)
        self._schedule_ready(address, timeout)
        return stream

    def _take_ready(self, address: _Address) -> AsyncioStream | None:
        stream, opened_at = self._ready.pop(address, (None, 0.0))
        if stream is None:
            return None
        too_old = asyncio.get_running_loop().time() - opened_at > READY_MAX_AGE_SECONDS
        if too_old or stream.get_extra_info("is_readable"):  # readable: the server closed it
            stream.discard()
            return None
        return stream

    async def _connect(self, address: _Address, timeout: float | None) -> AsyncioStream:
        host, port, local_address, socket_options = address
        loop = asyncio.get_running_loop()
        with _raising(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                sock = await _connected_socket(loop, host, port, local_address)
                try:
                    # Set before the transport, which then sets TCP_NODELAY whatever they say
                    # (nothing here asks otherwise).
                    for option in socket_options:
                        sock.setsockopt(*option)
                    transport, protocol = await loop.create_connection(_Buffering, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        return AsyncioStream(transport, protocol)

    def _schedule_ready(self, address: _Address, timeout: float | None) -> None:
        if self._closed or address in self._scheduled:
            return
        self._scheduled[address] = asyncio.get_running_loop().call_later(
            READY_AFTER_SECONDS, self._open_ready, address, timeout
        )

    def _open_ready(self, address: _Address, timeout: float | None) -> None:
        del self._scheduled[address]
        if self._closed or address in self._ready or address in self._opening:
            return
        self._opening[address] = asyncio.get_running_loop().create_task(
            self._keep_ready(address, timeout)
        )

    async def _keep_ready(self, address: _Address, timeout: float | None) -> None:
        try:
            stream = await self._connect(address, timeout)
        except (httpcore.ConnectError, httpcore.ConnectTimeout):
            return  # the next request connects itself, and says what is wrong
        finally:
            self._opening.pop(address, None)
        if self._closed or address in self._ready:
            stream.discard()
        else:
            self._ready[address] = (stream, asyncio.get_running_loop().time())

    async def aclose(self) -> None:
        """Close the connections kept ready, and open no more."""
        self._closed = True
        for handle in self._scheduled.values():
            handle.cancel()
        self._scheduled.clear()
        opening = list(self._opening.values())
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        for stream, _opened_at in self._ready.values():
            stream.discard()
        self._ready.clear()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's own HTTP transport (its request handling and error mapping), its connections
    made by ``AsyncioBackend``. A proxy from the environment keeps httpx's usual transport."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        # As httpx does by default: certifi's certificates, or SSL_CERT_FILE or SSL_CERT_DIR.
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        self._backend = AsyncioBackend()
        # httpx builds its pool with no way to pass a network backend: the same pool again,
        # with one. tests/test_ollama_network.py fails if httpx stops sending through it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self._backend,
        )

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self._backend.aclose()

    async def __aexit__(self, *args: Any) -> None:
        await self.aclose()  # httpx's closes only the pool

"""An async client for Ollama's HTTP API, written to OLLAMA_API.md.

One ``OllamaClient`` wraps one long-lived ``httpx.AsyncClient`` (connection pooling). Streams are
async generators: leaving one early (``break`` inside ``contextlib.aclosing``, or the task being
cancelled) closes the HTTP response, which is how Ollama is told to stop generating.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, suppress
from typing import Any

import httpx
import orjson

from conversations.ollama.errors import (
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    OllamaError,
    OllamaResponseError,
    OllamaServerError,
    OllamaUnreachable,
    ServerBusy,
    StreamError,
    StreamInterrupted,
    StreamStalled,
)
from conversations.ollama.ndjson import lines_until_stalled
from conversations.ollama.network import AsyncioTransport
from conversations.ollama.pool_locks import httpcore_locks_fast
from conversations.ollama.types import (
    ChatChunk,
    ChatMessage,
    FormatValue,
    GenerateResult,
    KeepAlive,
    LocalModel,
    PullProgress,
    RunningModel,
    ShowResult,
    ThinkValue,
)

# How long the end of a streamed response may take to follow its last line.
END_OF_RESPONSE_SECONDS = 1.0
# Every streaming reply holds a connection; the pool must not make replies queue.
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)
USER_AGENT = "chatsite (+https://github.com/ollama/ollama/blob/main/docs/api.md)"


class OllamaClient:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        stall_timeout: float = 60.0,
        first_chunk_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``request_timeout`` bounds the quick metadata calls (tags, show, …). Generation has
        no read timeout before its first chunk unless ``first_chunk_timeout`` is given, because
        loading a model can take minutes; once output flows, ``stall_timeout`` bounds the gap
        between two chunks."""
        self.base_url = base_url.rstrip("/")
        self.stall_timeout = stall_timeout
        httpcore_locks_fast()  # a request goes out without two turns of a busy event loop
        if transport is None and not _proxy_from_environment():
            transport = AsyncioTransport(limits=POOL_LIMITS)
        self._generation_timeout = httpx.Timeout(
            connect=connect_timeout, read=first_chunk_timeout, write=request_timeout, pool=None
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=True,
            limits=POOL_LIMITS,  # for httpx's own transports, used with a proxy
            transport=transport,
        )

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OllamaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- generation --------------------------------------------------------------------------

    async def chat_stream(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        options: Mapping[str, Any] | None = None,
        format: FormatValue | None = None,
        think: ThinkValue | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        keep_alive: KeepAlive | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> AsyncGenerator[ChatChunk, None]:
        """The reply chunk by chunk; the last one has ``done=True`` and the metrics.
        ``on_sent`` is called once the whole request is written.

        Raises StreamError, StreamInterrupted or StreamStalled once output has started."""
        payload = _chat_payload(model, messages, options, format, think, tools, keep_alive)
        async for data in self._stream("/api/chat", payload, model, _is_done, on_sent):
            yield ChatChunk.from_json(data)

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        options: Mapping[str, Any] | None = None,
        format: FormatValue | None = None,
        think: ThinkValue | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        keep_alive: KeepAlive | None = None,
    ) -> ChatChunk:
        """The whole reply at once (``stream: false``)."""
        payload = _chat_payload(model, messages, options, format, think, tools, keep_alive)
        payload["stream"] = False
        data = await self._json("POST", "/api/chat", payload, model, self._generation_timeout)
        return ChatChunk.from_json(data)

    async def generate(
        self,
        *,
        model: str,
        prompt: str,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        format: FormatValue | None = None,
        think: ThinkValue | None = None,
        images: Sequence[bytes] = (),
        keep_alive: KeepAlive | None = None,
        read_timeout: float | None = None,
    ) -> GenerateResult:
        """A one-shot completion (``stream: false``), e.g. for a conversation's title.
        ``read_timeout`` bounds the wait for a background job no one watches."""
        payload: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False}
        if system is not None:
            payload["system"] = system
        if images:
            payload["images"] = ChatMessage("user", "", images=images).to_json()["images"]
        _add_common(payload, options, format, think, keep_alive)
        timeout = self._generation_timeout
        if read_timeout is not None:
            timeout = httpx.Timeout(
                connect=timeout.connect, read=read_timeout, write=timeout.write, pool=None
            )
        data = await self._json("POST", "/api/generate", payload, model, timeout)
        return GenerateResult.from_json(data)

    async def load(self, model: str, *, keep_alive: KeepAlive | None = None) -> ChatChunk:
        """Load a model into memory without generating (``done_reason`` is ``load``)."""
        payload: dict[str, Any] = {"model": model, "messages": []}
        if keep_alive is not None:
            payload["keep_alive"] = keep_alive
        data = await self._json("POST", "/api/chat", payload, model, self._generation_timeout)
        return ChatChunk.from_json(data)

    async def unload(self, model: str) -> ChatChunk:
        """Unload a model now (``done_reason`` is ``unload``)."""
        payload = {"model": model, "messages": [], "keep_alive": 0}
        data = await self._json("POST", "/api/chat", payload, model, self._generation_timeout)
        return ChatChunk.from_json(data)

    # --- models ------------------------------------------------------------------------------

    async def version(self) -> str:
        data = await self._json("GET", "/api/version", None, None)
        return str(data.get("version", ""))

    async def tags(self) -> list[LocalModel]:
        data = await self._json("GET", "/api/tags", None, None)
        return [LocalModel.from_json(item) for item in _models_list(data)]

    async def ps(self) -> list[RunningModel]:
        data = await self._json("GET", "/api/ps", None, None)
        return [RunningModel.from_json(item) for item in _models_list(data)]

    async def show(self, model: str) -> ShowResult:
        data = await self._json("POST", "/api/show", {"model": model}, model)
        return ShowResult.from_json(data)

    async def delete(self, model: str) -> None:
        await self._request("DELETE", "/api/delete", {"model": model}, model)

    async def pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        """Download progress, ending with status ``success``. An error after the download
        started (unknown model, network) arrives as StreamError."""
        payload = {"model": model, "stream": True}
        async for data in self._stream("/api/pull", payload, model, _is_success):
            yield PullProgress.from_json(data)

    # --- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        model: str | None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                **_json_body(payload),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise _http_error(response.status_code, response.text, model)
        return response

    async def _json(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        model: str | None,
        timeout: httpx.Timeout | None = None,
    ) -> dict[str, Any]:
        response = await self._request(method, path, payload, model, timeout)
        return _decode_object(response.text)

    async def _stream(
        self,
        path: str,
        payload: Mapping[str, Any],
        model: str,
        is_last: Callable[[Mapping[str, Any]], bool],
        on_sent: Callable[[], None] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        request = self._http.build_request(
            "POST",
            path,
            **_json_body(payload),
            timeout=self._generation_timeout,
            extensions={"trace": _when_sent(on_sent)} if on_sent else None,
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        try:
            if response.status_code >= 400:
                body = await self._read_error_body(response)
                raise _http_error(response.status_code, body, model)
            if response.headers.get("content-type", "").startswith("application/json"):
                # A load/unload reply is one JSON object even when streaming was asked for.
                yield _decode_object(await response.aread())
                return
            lines = lines_until_stalled(response.aiter_bytes(), self.stall_timeout)
            async with aclosing(lines):
                try:
                    async for line in lines:
                        data = _decode_object(line)
                        if data.get("error"):
                            raise StreamError(str(data["error"]))
                        yield data
                        if is_last(data):
                            await _read_to_the_end(lines)
                            return
                except httpx.TransportError as exc:
                    raise StreamInterrupted(f"{type(exc).__name__}: {exc}") from exc
            raise StreamInterrupted("the stream ended before its last chunk")
        finally:
            # Closing the response mid-stream is what makes Ollama stop generating.
            await response.aclose()

    async def _read_error_body(self, response: httpx.Response) -> str:
        try:
            return (await response.aread()).decode(errors="replace")
        except httpx.TransportError:
            return ""

    def _transport_error(self, exc: httpx.TransportError) -> OllamaError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return OllamaUnreachable(self.base_url, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return OllamaError(
                f"Ollama at {self.base_url} did not answer in time.",
                detail=f"{type(exc).__name__}: {exc}",
            )
        return StreamInterrupted(f"{type(exc).__name__}: {exc}")


def _when_sent(on_sent: Callable[[], None]) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace callback (its extension for watching a request's steps) that calls
    ``on_sent`` once the request's body is written."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            on_sent()

    return trace


def _proxy_from_environment() -> bool:
    """Whether HTTP_PROXY, HTTPS_PROXY or ALL_PROXY is set. httpx routes through such a proxy
    with transports of its own, and only when it is given no transport: then it keeps them."""
    return any(scheme in {"http", "https", "all"} for scheme in urllib.request.getproxies())


async def _read_to_the_end(lines: AsyncIterator[bytes]) -> None:
    """Read what follows the last line: only the end of the response, at once. A response
    closed before its end takes its connection with it, and every reply opened a new one
    (with TLS, a handshake per reply). A server that does not end the response in time, or
    sends more, only costs the connection."""
    with suppress(TimeoutError, httpx.TransportError, StreamStalled):
        async with asyncio.timeout(END_OF_RESPONSE_SECONDS):
            async for _ in lines:
                pass


def _is_done(data: Mapping[str, Any]) -> bool:
    return data.get("done") is True


def _is_success(data: Mapping[str, Any]) -> bool:
    return data.get("status") == "success"


def _chat_payload(
    model: str,
    messages: Sequence[ChatMessage],
    options: Mapping[str, Any] | None,
    format: FormatValue | None,
    think: ThinkValue | None,
    tools: Sequence[Mapping[str, Any]] | None,
    keep_alive: KeepAlive | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [message.to_json() for message in messages],
        "stream": True,
    }
    if tools:
        payload["tools"] = list(tools)
    _add_common(payload, options, format, think, keep_alive)
    return payload


def _add_common(
    payload: dict[str, Any],
    options: Mapping[str, Any] | None,
    format: FormatValue | None,
    think: ThinkValue | None,
    keep_alive: KeepAlive | None,
) -> None:
    """Only what is set is sent: an absent field means the server's (or model's) default."""
    if options:
        payload["options"] = dict(options)
    if format is not None:
        payload["format"] = format
    if think is not None:
        payload["think"] = think
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive


def _json_body(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's body and its type: the JSON httpx's ``json=`` makes (compact, UTF-8, not
    ASCII-escaped; a float may be spelt differently, 0.00001 for 1e-05, the same number to
    Ollama), encoded by orjson: a long conversation's history took the standard library 91 µs
    of the 170 µs it took to build its request. What orjson refuses, or would write where
    httpx refused (a dataclass, a date), is left to httpx's ``json=`` itself, which encodes or
    refuses it as before. orjson writes NaN as null where httpx raised: options are checked to
    be finite numbers when they are saved (``ollama_options``), and keep_alive is a string of at
    most 20 characters."""
    if payload is None:
        return {}
    try:
        body = orjson.dumps(
            payload, option=orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
        )
    except orjson.JSONEncodeError:  # what orjson does not take (an integer beyond 64 bits)
        return {"json": payload}
    return {"content": body, "headers": {"Content-Type": "application/json"}}


def _decode_object(text: str | bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {text[:200]!r}")
    return data


def _models_list(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    models = data.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise MalformedResponse(f"'models' is not a list of objects: {str(models)[:200]}")
    return models


def _http_error(status: int, body: str, model: str | None) -> OllamaResponseError:
    """Ollama's error body is ``{"error": "..."}``; a few paths answer in plain text."""
    message = body.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        pass
    else:
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
    message = message or f"HTTP {status}"
    if status == 404 and model is not None:
        return ModelNotFound(model, message)
    if status == 400:
        return BadRequest(message)
    if status in (429, 503):
        return ServerBusy(message, status)
    return OllamaServerError(status, message)

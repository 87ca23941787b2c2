"""Our Ollama client against the fake server over a real socket, and against MockTransport for
what no server produces."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from PIL import Image

from conversations.fake_ollama import FakeOllamaServer, expected_reply
from conversations.fake_ollama.server import RUNNER_STOPPED
from conversations.ollama import (
    BadRequest,
    ChatMessage,
    MalformedResponse,
    ModelNotFound,
    OllamaClient,
    OllamaServerError,
    OllamaUnreachable,
    ServerBusy,
    StreamError,
    StreamInterrupted,
    StreamStalled,
)
from conversations.prompting import ReplyRequest
from conversations.reply_reading import ReplyReading

HELLO = [ChatMessage("user", "Hello there")]
HELLO_JSON = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
async def client(fake_ollama: FakeOllamaServer):
    async with OllamaClient(fake_ollama.url, stall_timeout=2) as client:
        yield client


async def collect(client: OllamaClient, model: str, **kwargs: Any) -> list[Any]:
    return [chunk async for chunk in client.chat_stream(model=model, messages=HELLO, **kwargs)]


# --- generation ----------------------------------------------------------------------------


async def test_a_streamed_reply_joins_into_exactly_what_the_model_said(
    client: OllamaClient,
) -> None:
    chunks = await collect(client, "llama3.2")

    assert "".join(c.content for c in chunks) == expected_reply("llama3.2", HELLO_JSON)
    final = chunks[-1]
    assert final.done and final.done_reason == "stop"
    assert final.metrics.eval_count == len(chunks) - 1
    assert final.metrics.tokens_per_second and final.metrics.tokens_per_second > 0
    assert not any(c.done for c in chunks[:-1])


async def test_thinking_arrives_separately_from_the_answer(client: OllamaClient) -> None:
    chunks = await collect(client, "qwen3")
    thinking = "".join(c.thinking for c in chunks)
    assert thinking.startswith('The user wrote "Hello there"')
    assert "".join(c.content for c in chunks) == expected_reply("qwen3", HELLO_JSON)


async def test_the_request_carries_exactly_what_the_api_expects(
    client: OllamaClient, fake_ollama: FakeOllamaServer
) -> None:
    image = io.BytesIO()
    Image.new("RGB", (3, 2)).save(image, format="PNG")
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "What is it?", images=[image.getvalue()]),
    ]
    async with aclosing(
        client.chat_stream(
            model="llava",
            messages=messages,
            options={"temperature": 0.2, "num_ctx": 4096},
            keep_alive="10m",
            think=False,
            format="json",
        )
    ) as chunks:
        reply = "".join([c.content async for c in chunks])

    [request] = fake_ollama.requests_to("/api/chat")
    assert request.body is not None
    sent_image = request.body["messages"][1]["images"][0]
    assert not sent_image.startswith("data:")  # raw base64, no data: prefix
    assert request.body == {
        "model": "llava",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is it?", "images": [sent_image]},
        ],
        "stream": True,
        "options": {"temperature": 0.2, "num_ctx": 4096},
        "format": "json",
        "think": False,
        "keep_alive": "10m",
    }
    assert json.loads(reply) == {"reply": "I see 1 image: image 1 is a PNG of 3x2."}


async def test_a_non_streamed_chat_and_a_generate(client: OllamaClient) -> None:
    whole = await client.chat(model="llama3.2", messages=HELLO)
    assert whole.content == expected_reply("llama3.2", HELLO_JSON)
    assert whole.done_reason == "stop"

    title = await client.generate(model="llama3.2", prompt="Hello there", system="Title it.")
    assert title.response == expected_reply("llama3.2", HELLO_JSON)
    assert title.metrics.eval_count


async def test_load_and_unload(client: OllamaClient, fake_ollama: FakeOllamaServer) -> None:
    loaded = await client.load("llama3.2", keep_alive=-1)
    assert (loaded.done, loaded.done_reason) == (True, "load")
    assert [m.name for m in await client.ps()] == ["llama3.2:latest"]

    unloaded = await client.unload("llama3.2")
    assert unloaded.done_reason == "unload"
    assert await client.ps() == []
    assert fake_ollama.requests_to("/api/chat")[-1].body == {
        "model": "llama3.2",
        "messages": [],
        "keep_alive": 0,
    }


async def test_a_slow_first_token_is_waited_for(fake_ollama: FakeOllamaServer) -> None:
    fake_ollama.model("slow").first_token_delay = 1.5
    # Short metadata and stall timeouts must not cut a model that takes long to start.
    async with OllamaClient(fake_ollama.url, request_timeout=0.5, stall_timeout=0.5) as client:
        chunks = await collect(client, "slow")
    assert chunks[-1].done
    assert chunks[-1].metrics.load_duration and chunks[-1].metrics.load_duration >= 1.5e9


# --- models --------------------------------------------------------------------------------


async def test_tags_ps_show_version(client: OllamaClient) -> None:
    tags = {m.name: m for m in await client.tags()}
    assert tags["qwen3:latest"].capabilities == ("completion", "tools", "thinking")
    assert tags["qwen3:latest"].context_length == 40_960
    assert tags["llama3.2:latest"].details.parameter_size == "3.2B"
    assert await client.ps() == []

    shown = await client.show("llava")
    assert shown.capabilities == ("completion", "vision")
    assert shown.context_length == 32_768
    assert await client.version() == "0.33.0"


async def test_pull_then_delete(client: OllamaClient) -> None:
    statuses = [p.status async for p in client.pull("gemma3:1b")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "gemma3:1b" in [m.name for m in await client.tags()]

    await client.delete("gemma3:1b")
    assert "gemma3:1b" not in [m.name for m in await client.tags()]


async def test_pulling_an_unknown_model_is_a_stream_error(client: OllamaClient) -> None:
    with pytest.raises(StreamError) as error:
        async for _ in client.pull("no-such-model"):
            pass
    assert error.value.server_message == "pull model manifest: file does not exist"


async def test_on_sent_is_told_once_the_request_is_written_before_the_first_chunk(
    client: OllamaClient,
) -> None:
    """A turn waits for this before it writes its reply: the request must be on its way."""
    events: list[str] = []
    async for chunk in client.chat_stream(
        model="llama3.2", messages=HELLO, on_sent=lambda: events.append("sent")
    ):
        events.append("chunk" if not chunk.done else "done")
    assert events[0] == "sent"
    assert events.count("sent") == 1
    assert events[-1] == "done"


async def test_a_reading_whose_request_never_left_still_says_so() -> None:
    """Whoever waits for the request is not left waiting when Ollama cannot be reached."""
    told: list[str] = []
    request = ReplyRequest(
        model="llama3.2", messages=HELLO, options={}, keep_alive=None, think=None, history_dropped=0
    )
    async with OllamaClient(f"http://127.0.0.1:{closed_port()}") as dead:
        reading = ReplyReading(dead, request, on_sent=lambda: told.append("x"))
        with pytest.raises(OllamaUnreachable):
            await reading.task
    assert told == ["x"]


# --- errors --------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_dead_ollama_is_unreachable_with_advice() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with OllamaClient(url) as client:
        with pytest.raises(OllamaUnreachable) as error:
            await collect(client, "llama3.2")
        with pytest.raises(OllamaUnreachable):
            await client.tags()
    assert str(error.value) == (
        f"Ollama is not reachable at {url}: start it with `ollama serve`, "
        "or point OLLAMA_HOST at the right server."
    )


async def test_an_unknown_host_is_unreachable() -> None:
    async with OllamaClient("http://no-such-host.invalid:11434") as client:
        with pytest.raises(OllamaUnreachable):
            await client.version()


async def test_an_unknown_model_is_model_not_found(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as error:
        await collect(client, "mistral")
    assert str(error.value) == (
        "Model 'mistral' is not installed on the Ollama server: an admin can install it with "
        "`ollama pull mistral`, or pick another model."
    )
    assert error.value.server_message == "model 'mistral' not found"
    with pytest.raises(ModelNotFound):
        await client.show("mistral")


async def test_a_refused_request_is_a_bad_request_with_ollamas_words(client: OllamaClient) -> None:
    with pytest.raises(BadRequest) as error:
        await collect(client, "llama3.2", think=True)
    assert error.value.server_message == '"llama3.2" does not support thinking'
    assert str(error.value) == 'Ollama refused the request: "llama3.2" does not support thinking'


async def test_a_full_queue_is_server_busy(client: OllamaClient) -> None:
    with pytest.raises(ServerBusy) as error:
        await collect(client, "busy")
    assert error.value.status_code == 503


async def test_a_wrongly_typed_option_is_a_server_error(client: OllamaClient) -> None:
    with pytest.raises(OllamaServerError) as error:
        await collect(client, "llama3.2", options={"num_ctx": "big"})
    assert error.value.status_code == 500
    assert error.value.server_message == 'option "num_ctx" must be of type integer'


async def test_an_error_line_mid_stream_is_a_stream_error_after_the_text_so_far(
    client: OllamaClient,
) -> None:
    received = []
    with pytest.raises(StreamError) as error:
        async for chunk in client.chat_stream(model="broken", messages=HELLO):
            received.append(chunk.content)
    assert error.value.server_message == RUNNER_STOPPED
    assert len(received) == 5


async def test_a_cut_connection_is_stream_interrupted(client: OllamaClient) -> None:
    received = []
    with pytest.raises(StreamInterrupted) as error:
        async for chunk in client.chat_stream(model="cutoff", messages=HELLO):
            received.append(chunk.content)
    assert not isinstance(error.value, StreamStalled)
    assert len(received) == 5


async def test_a_stalled_stream_is_abandoned_after_the_stall_timeout(
    fake_ollama: FakeOllamaServer,
) -> None:
    async with OllamaClient(fake_ollama.url, stall_timeout=0.3) as client:
        with pytest.raises(StreamStalled) as error:
            await collect(client, "stall")
    assert "0.3 seconds" in str(error.value)
    # Giving up closed the connection, so the server stops too.
    assert fake_ollama.wait_for(lambda: fake_ollama.requests_to("/api/chat")[0].disconnected)


# --- cancelling ------------------------------------------------------------------------------


async def test_leaving_the_stream_early_closes_the_response_and_ollama_sees_it(
    fake_ollama: FakeOllamaServer,
) -> None:
    fake_ollama.model("llama3.2").tokens_per_second = 50
    fake_ollama.model("llama3.2").reply_tokens = 500
    async with OllamaClient(fake_ollama.url) as client:
        async with aclosing(client.chat_stream(model="llama3.2", messages=HELLO)) as chunks:
            async for chunk in chunks:
                if chunk.content:
                    break
        request = fake_ollama.requests_to("/api/chat")[0]
        assert await asyncio.to_thread(fake_ollama.wait_for, lambda: request.disconnected)
        assert not request.finished
        assert request.chunks_sent < 500


async def test_cancelling_the_task_closes_the_response(fake_ollama: FakeOllamaServer) -> None:
    fake_ollama.model("llama3.2").tokens_per_second = 50
    fake_ollama.model("llama3.2").reply_tokens = 500
    async with OllamaClient(fake_ollama.url) as client:
        first_chunk = asyncio.Event()

        async def consume() -> None:
            async for _ in client.chat_stream(model="llama3.2", messages=HELLO):
                first_chunk.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_chunk.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        request = fake_ollama.requests_to("/api/chat")[0]
        assert await asyncio.to_thread(fake_ollama.wait_for, lambda: request.disconnected)


async def test_the_shared_client_follows_the_settings(settings) -> None:  # type: ignore[no-untyped-def]
    from conversations.ollama import close_client, get_client

    settings.OLLAMA_BASE_URL = "http://ollama.internal:11434"
    settings.OLLAMA_STALL_TIMEOUT = 7
    client = get_client()
    assert get_client() is client  # one pool per process (per event loop)
    assert (client.base_url, client.stall_timeout) == ("http://ollama.internal:11434", 7)
    await close_client()
    assert client.is_closed


# --- what no server produces: MockTransport -------------------------------------------------


def mock_client(handler: Any) -> OllamaClient:
    return OllamaClient("http://ollama.test", transport=httpx.MockTransport(handler))


def ndjson(*lines: str, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/x-ndjson"},
        content="".join(line + "\n" for line in lines).encode(),
    )


FINAL = '{"model":"m","message":{"role":"assistant","content":""},"done":true}'


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0.2, "min_p": 0.00001, "stop": ["«fin»", "\u2028"]},
        {"seed": 2**70},  # beyond what orjson encodes: httpx encodes it itself
    ],
)
async def test_the_request_body_is_the_json_httpx_would_send(options: dict[str, Any]) -> None:
    """The body is encoded by orjson for speed: the same JSON as httpx's ``json=`` (compact,
    UTF-8, not ASCII-escaped) and the same type, whatever the history holds."""
    messages = [ChatMessage("system", "Réponds «brièvement» 🙂"), ChatMessage("user", 'a "b"\n\\')]
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return ndjson(FINAL)

    client = mock_client(handler)
    assert [c.done async for c in client.chat_stream(model="m", messages=messages, options=options)]
    [ours] = sent
    expected = httpx.Request(
        "POST",
        "http://ollama.test/api/chat",
        json={
            "model": "m",
            "messages": [message.to_json() for message in messages],
            "stream": True,
            "options": options,
        },
    )
    assert json.loads(ours.content) == json.loads(expected.content)
    assert "Réponds «brièvement» 🙂".encode() in ours.content  # as written, not escaped
    assert b'","' in ours.content and b'", "' not in ours.content  # compact
    assert ours.headers["content-type"] == expected.headers["content-type"]
    assert ours.headers["content-length"] == str(len(ours.content))


async def test_a_line_that_is_not_utf8_is_a_malformed_response() -> None:
    client = mock_client(
        lambda request: httpx.Response(
            200,
            headers={"content-type": "application/x-ndjson"},
            content=b'{"model":"m","message":{"role":"assistant","content":"\xff"},"done":false}\n',
        )
    )
    with pytest.raises(MalformedResponse):
        await collect(client, "m")


async def test_a_malformed_line_is_a_malformed_response() -> None:
    client = mock_client(
        lambda request: ndjson(
            '{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}',
            "{not json",
            FINAL,
        )
    )
    received = []
    with pytest.raises(MalformedResponse) as error:
        async for chunk in client.chat_stream(model="m", messages=HELLO):
            received.append(chunk.content)
    assert received == ["Hi"]
    assert "{not json" in error.value.detail


async def test_blank_lines_are_skipped() -> None:
    client = mock_client(
        lambda request: ndjson(
            '{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}',
            "",
            FINAL,
        )
    )
    assert [c.content for c in await collect(client, "m")] == ["Hi", ""]


async def test_a_stream_that_ends_without_done_is_interrupted() -> None:
    client = mock_client(
        lambda request: ndjson(
            '{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}'
        )
    )
    with pytest.raises(StreamInterrupted):
        await collect(client, "m")


async def test_an_older_server_without_optional_fields_still_parses() -> None:
    client = mock_client(
        lambda request: ndjson(
            '{"model":"m","message":{"role":"assistant","content":"Hi","future":1},"done":false,'
            '"new_field":{"x":1}}',
            '{"model":"m","done":true}',  # no message, no done_reason, no metrics
        )
    )
    chunks = await collect(client, "m")
    assert [c.content for c in chunks] == ["Hi", ""]
    assert chunks[-1].done_reason is None
    assert chunks[-1].metrics.tokens_per_second is None


async def test_a_wrongly_typed_field_is_malformed() -> None:
    client = mock_client(
        lambda request: ndjson(
            '{"model":"m","message":{"role":"assistant","content":42},"done":false}'
        )
    )
    with pytest.raises(MalformedResponse):
        await collect(client, "m")


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (404, "404 page not found", OllamaServerError),  # a plain-text 404 with no model
        (429, '{"error":"too many requests"}', ServerBusy),
        (502, "<html>Bad Gateway</html>", OllamaServerError),
    ],
)
async def test_http_errors_map_to_classes(
    status: int, body: str, error_class: type[OllamaServerError | ServerBusy]
) -> None:
    client = mock_client(lambda request: httpx.Response(status, text=body))
    with pytest.raises(error_class) as error:
        await client.version()
    assert error.value.status_code == status


async def test_a_proxy_answering_404_in_plain_text_for_a_model_is_model_not_found() -> None:
    client = mock_client(lambda request: httpx.Response(404, text="404 page not found"))
    with pytest.raises(ModelNotFound) as error:
        await collect(client, "m")
    assert error.value.server_message == "404 page not found"


async def test_a_load_reply_to_a_streaming_request_is_one_chunk() -> None:
    client = mock_client(
        lambda request: httpx.Response(
            200,
            headers={"content-type": "application/json; charset=utf-8"},
            content=b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
            b'"done_reason":"load"}',
        )
    )
    chunks = await collect(client, "m")
    assert [(c.done, c.done_reason) for c in chunks] == [(True, "load")]

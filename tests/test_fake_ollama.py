"""The fake Ollama is faithful: the official client cannot tell it from the real server, and
the wire details of OLLAMA_API.md hold."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime

import httpx
import ollama
import pytest
from PIL import Image

from conversations.fake_ollama import FakeOllamaServer, expected_reply
from conversations.fake_ollama.server import RUNNER_STOPPED, SERVER_BUSY

HELLO = [{"role": "user", "content": "Hello there"}]


def png(width: int = 4, height: int = 3) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def client(fake_ollama: FakeOllamaServer) -> ollama.Client:
    return ollama.Client(host=fake_ollama.url)


# --- the official client, sync -------------------------------------------------------------


def test_a_streamed_chat_parses_and_joins_into_the_expected_reply(client: ollama.Client) -> None:
    chunks = list(client.chat(model="llama3.2", messages=HELLO, stream=True))

    assert all(isinstance(c, ollama.ChatResponse) for c in chunks)
    assert "".join(c.message.content for c in chunks) == expected_reply("llama3.2", HELLO)
    assert [c.done for c in chunks].count(True) == 1
    final = chunks[-1]
    assert final.done and final.done_reason == "stop"
    assert final.eval_count == len(chunks) - 1
    assert final.total_duration and final.eval_duration and final.prompt_eval_count
    assert chunks[0].model == "llama3.2"  # echoed exactly as sent


def test_a_chat_without_streaming_returns_the_whole_reply(client: ollama.Client) -> None:
    response = client.chat(model="llama3.2:latest", messages=HELLO)
    assert response.message.content == expected_reply("llama3.2:latest", HELLO)
    assert response.done_reason == "stop"


def test_a_thinking_model_thinks_before_it_answers(client: ollama.Client) -> None:
    chunks = list(client.chat(model="qwen3", messages=HELLO, stream=True))
    kinds = ["thinking" if c.message.thinking else "content" for c in chunks if not c.done]
    assert kinds[0] == "thinking" and kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k != "thinking")  # all thinking comes first

    quiet = client.chat(model="qwen3", messages=HELLO, think=False)
    assert quiet.message.thinking is None


def test_thinking_on_a_model_without_it_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as error:
        client.chat(model="llama3.2", messages=HELLO, think=True)
    assert (error.value.status_code, error.value.error) == (
        400,
        '"llama3.2" does not support thinking',
    )


def test_a_vision_model_reports_the_images_it_received(client: ollama.Client) -> None:
    response = client.chat(
        model="llava",
        messages=[{"role": "user", "content": "What is this?", "images": [png(4, 3), png(8, 8)]}],
    )
    assert response.message.content == (
        "I see 2 images: image 1 is a PNG of 4x3; image 2 is a PNG of 8x8."
    )


def test_generate_streams_and_returns_context(client: ollama.Client) -> None:
    chunks = list(client.generate(model="llama3.2", prompt="Hello there", stream=True))
    assert "".join(c.response for c in chunks) == expected_reply("llama3.2", HELLO)
    assert chunks[-1].context

    whole = client.generate(model="llama3.2", prompt="Hello there")
    assert whole.response == expected_reply("llama3.2", HELLO)


def test_list_ps_and_show_parse_into_the_clients_types(client: ollama.Client) -> None:
    listed = client.list()
    names = [m.model for m in listed.models]
    assert "llama3.2:latest" in names
    assert all(isinstance(m.modified_at, datetime) for m in listed.models)
    assert listed.models == sorted(listed.models, key=lambda m: m.modified_at, reverse=True)

    assert client.ps().models == []
    client.chat(model="llama3.2", messages=HELLO)
    running = client.ps().models
    assert [m.model for m in running] == ["llama3.2:latest"]
    assert isinstance(running[0].expires_at, datetime)

    shown = client.show("qwen3")
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert shown.modelinfo["qwen3.context_length"] == 40_960
    assert shown.details.family == "qwen3"


def test_pull_reports_progress_layer_by_layer(client: ollama.Client) -> None:
    progress = list(client.pull("gemma3:1b", stream=True))

    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = [p for p in progress if p.status.startswith("pulling ") and p.digest]
    assert layer[0].completed is None and layer[0].total  # "completed" absent until above 0
    assert any(p.completed == p.total for p in layer)
    assert "gemma3:1b" in [m.model for m in client.list().models]


def test_errors_arrive_with_the_real_status_codes_and_messages(client: ollama.Client) -> None:
    cases = [
        (lambda: client.chat(model="nope", messages=HELLO), 404, "model 'nope' not found"),
        (
            lambda: client.chat(model="llama3.2", messages=HELLO, options={"temperature": "hot"}),
            500,
            'option "temperature" must be of type float32',
        ),
        (lambda: client.chat(model="busy", messages=HELLO), 503, SERVER_BUSY),
        (lambda: client.show("missing"), 404, "model 'missing:latest' not found"),
        (lambda: client.delete("missing"), 404, "model 'missing' not found"),
    ]
    for call, status, message in cases:
        with pytest.raises(ollama.ResponseError) as error:
            call()
        assert (error.value.status_code, error.value.error) == (status, message)


def test_an_error_after_output_started_has_status_minus_one(client: ollama.Client) -> None:
    received = []
    with pytest.raises(ollama.ResponseError) as error:
        for chunk in client.chat(model="broken", messages=HELLO, stream=True):
            received.append(chunk.message.content)
    assert (error.value.status_code, error.value.error) == (-1, RUNNER_STOPPED)
    assert len(received) == 5


def test_delete_and_copy_answer_with_an_empty_body(
    client: ollama.Client, fake_ollama: FakeOllamaServer
) -> None:
    assert client.copy("llama3.2", "backup").status == "success"
    assert "backup:latest" in [m.model for m in client.list().models]
    assert client.delete("backup").status == "success"
    assert "backup:latest" not in [m.model for m in client.list().models]
    response = httpx.post(
        f"{fake_ollama.url}/api/copy", json={"source": "llama3.2", "destination": "b2"}
    )
    assert (response.status_code, response.content) == (200, b"")


# --- the official client, async ------------------------------------------------------------


async def test_the_async_client_streams_chat_and_reads_everything_else(
    fake_ollama: FakeOllamaServer,
) -> None:
    client = ollama.AsyncClient(host=fake_ollama.url)
    text = ""
    async for chunk in await client.chat(model="qwen3", messages=HELLO, stream=True):
        text += chunk.message.content
    assert text == expected_reply("qwen3", HELLO)
    assert (await client.generate(model="llama3.2", prompt="Hello there")).done
    assert (await client.list()).models
    assert (await client.ps()).models
    assert (await client.show("llava")).capabilities == ["completion", "vision"]
    statuses = [p.status async for p in await client.pull("phi4-mini", stream=True)]
    assert statuses[-1] == "success"
    with pytest.raises(ollama.ResponseError) as error:
        await client.chat(model="llama3.2", messages=HELLO, think="maybe")  # type: ignore[arg-type]
    assert error.value.status_code == 400
    assert error.value.error.startswith('invalid think value: "maybe"')
    with pytest.raises(ollama.ResponseError) as error:
        async for _ in await client.chat(model="broken", messages=HELLO, stream=True):
            pass
    assert error.value.status_code == -1


# --- the wire, byte for byte -------------------------------------------------------------


def test_streams_are_ndjson_with_metrics_only_on_the_last_line(
    fake_ollama: FakeOllamaServer,
) -> None:
    response = httpx.post(
        f"{fake_ollama.url}/api/chat", json={"model": "llama3.2", "messages": HELLO}
    )

    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text.endswith("\n") and "\n\n" not in response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert list(lines[0]) == ["model", "created_at", "message", "done"]
    assert lines[0]["created_at"].endswith("Z")
    assert all("eval_count" not in line and "done_reason" not in line for line in lines[:-1])
    assert list(lines[-1])[:5] == ["model", "created_at", "message", "done", "done_reason"]


def test_a_single_object_has_the_json_content_type_and_no_newline(
    fake_ollama: FakeOllamaServer,
) -> None:
    response = httpx.post(
        f"{fake_ollama.url}/api/chat",
        json={"model": "llama3.2", "messages": HELLO, "stream": False},
    )
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert not response.text.endswith("\n")


@pytest.mark.parametrize(
    ("keep_alive", "reason"), [(None, "load"), ("10m", "load"), (0, "unload"), ("0s", "unload")]
)
def test_empty_messages_load_or_unload_in_one_object_whatever_stream_says(
    fake_ollama: FakeOllamaServer, keep_alive: object, reason: str
) -> None:
    body: dict[str, object] = {"model": "llama3.2", "messages": [], "stream": True}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    response = httpx.post(f"{fake_ollama.url}/api/chat", json=body)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    data = response.json()
    assert (data["done"], data["done_reason"], data["message"]) == (
        True,
        reason,
        {"role": "assistant", "content": ""},
    )
    loaded = [m["name"] for m in httpx.get(f"{fake_ollama.url}/api/ps").json()["models"]]
    assert loaded == ([] if reason == "unload" else ["llama3.2:latest"])


def test_a_negative_keep_alive_keeps_the_model_for_centuries(fake_ollama: FakeOllamaServer) -> None:
    httpx.post(f"{fake_ollama.url}/api/chat", json={"model": "llama3.2", "keep_alive": -1})
    expires = httpx.get(f"{fake_ollama.url}/api/ps").json()["models"][0]["expires_at"]
    assert int(expires[:4]) > 2300


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "missing request body"),
        (b'{"model": "llama3.2", "messages": [', 400, "unexpected EOF"),
        (b"{nope}", 400, "invalid character 'n' looking for beginning of object key string"),
        (b'{"messages": []}', 400, "model is required"),
        (b'{"model": "  "}', 400, "model is required"),
        (b'{"model": "bad name!"}', 400, "invalid model name"),
        (
            b'{"model": "llama3.2", "messages": "hi"}',
            400,
            "json: cannot unmarshal string into Go struct field ChatRequest.messages of type "
            "[]api.Message",
        ),
        (
            b'{"model": "llama3.2", "keep_alive": "10", "messages": []}',
            400,
            'time: missing unit in duration "10"',
        ),
        (b'{"model": "llama3.2", "keep_alive": true}', 400, "Unsupported type: 'bool'"),
        (
            b'{"model": "llama3.2", "think": 3}',
            400,
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
        (
            b'{"model": "llava", "messages": [{"role": "user", "content": "x", '
            b'"images": ["data:image/png;base64,AAAA"]}]}',
            400,
            "illegal base64 data at input byte 4",
        ),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], '
            b'"options": {"stop": "###"}}',
            500,
            'option "stop" must be of type array',
        ),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], '
            b'"options": {"num_ctx": "big"}}',
            500,
            'option "num_ctx" must be of type integer',
        ),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], '
            b'"format": "xml"}',
            500,
            'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object',
        ),
        (
            b'{"model": "nomic-embed-text", "messages": [{"role": "user", "content": "x"}]}',
            400,
            '"nomic-embed-text" does not support chat',
        ),
    ],
)
def test_bad_chat_requests_get_ollamas_own_status_and_words(
    fake_ollama: FakeOllamaServer, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(f"{fake_ollama.url}/api/chat", content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": message}


def test_tools_on_a_model_without_them_name_the_full_model(fake_ollama: FakeOllamaServer) -> None:
    fake_ollama.model("llava").capabilities = ("completion", "vision")
    response = httpx.post(
        f"{fake_ollama.url}/api/chat",
        json={"model": "llava", "messages": HELLO, "tools": [{"type": "function"}]},
    )
    assert response.json() == {
        "error": "registry.ollama.ai/library/llava:latest does not support tools"
    }


def test_generate_with_no_model_is_a_404(fake_ollama: FakeOllamaServer) -> None:
    response = httpx.post(f"{fake_ollama.url}/api/generate", json={"prompt": "hi"})
    assert (response.status_code, response.json()) == (404, {"error": "model '' not found"})


def test_unknown_paths_and_wrong_methods_answer_in_plain_text(
    fake_ollama: FakeOllamaServer,
) -> None:
    missing = httpx.get(f"{fake_ollama.url}/api/nothing")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["content-type"].startswith("text/plain")
    wrong = httpx.get(f"{fake_ollama.url}/api/chat")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_liveness_and_version(fake_ollama: FakeOllamaServer) -> None:
    assert httpx.get(fake_ollama.url).text == "Ollama is running"
    head = httpx.head(fake_ollama.url)
    assert (head.status_code, head.content) == (200, b"")
    assert httpx.get(f"{fake_ollama.url}/api/version").json() == {"version": "0.33.0"}


def test_pulling_an_unknown_model_fails_after_the_manifest_line_with_status_200(
    fake_ollama: FakeOllamaServer,
) -> None:
    response = httpx.post(f"{fake_ollama.url}/api/pull", json={"model": "no-such-model"})
    assert response.status_code == 200
    assert [json.loads(line) for line in response.text.splitlines()] == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    whole = httpx.post(
        f"{fake_ollama.url}/api/pull", json={"model": "no-such-model", "stream": False}
    )
    assert (whole.status_code, whole.json()) == (
        500,
        {"error": "pull model manifest: file does not exist"},
    )


def test_the_fake_records_what_it_was_sent(fake_ollama: FakeOllamaServer) -> None:
    httpx.post(
        f"{fake_ollama.url}/api/chat",
        json={
            "model": "llama3.2",
            "messages": HELLO,
            "options": {"temperature": 0.2},
            "keep_alive": "5m",
            "stream": False,
        },
    )
    [request] = fake_ollama.requests_to("/api/chat")
    assert request.body == {
        "model": "llama3.2",
        "messages": HELLO,
        "options": {"temperature": 0.2},
        "keep_alive": "5m",
        "stream": False,
    }
    assert (request.status, request.finished, request.disconnected) == (200, True, False)


def test_num_predict_cuts_the_reply_with_done_reason_length(client: ollama.Client) -> None:
    response = client.chat(model="llama3.2", messages=HELLO, options={"num_predict": 3})
    assert response.done_reason == "length"
    assert response.message.content == "Hello from llama3.2!"


def test_json_format_gives_a_json_reply(client: ollama.Client) -> None:
    response = client.chat(model="llama3.2", messages=HELLO, format="json")
    assert "reply" in json.loads(response.message.content)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
    }
    shaped = client.chat(model="llama3.2", messages=HELLO, format=schema)
    assert json.loads(shaped.message.content) == {"city": "example", "n": 1}


def test_images_sent_as_base64_by_the_official_client_are_what_the_fake_decodes(
    client: ollama.Client, fake_ollama: FakeOllamaServer
) -> None:
    image = png(2, 2)
    client.chat(model="llava", messages=[{"role": "user", "content": "x", "images": [image]}])
    sent = fake_ollama.requests_to("/api/chat")[0].body
    assert sent is not None
    assert base64.b64decode(sent["messages"][0]["images"][0]) == image

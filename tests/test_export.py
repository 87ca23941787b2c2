"""Transcripts: every format on a conversation with every feature, downloads, the zip of all,
the command line, and nobody else's conversations."""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from conversations.export import (
    FORMATS,
    export_entries,
    in_batches,
    to_html,
    to_json_document,
    to_markdown,
    to_text,
    transcript_of,
    zip_stream,
)
from conversations.models import Conversation, Message, MessageImage
from conversations.services import message_image_attach
from tests.conftest import TITLE, png

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"
EXPORTED = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def test_markdown_matches_its_golden_file(rich: Conversation) -> None:
    text = to_markdown(transcript_of(rich, exported_at=EXPORTED))
    golden("export.md", text)
    assert text.startswith('# Plan "B" for Zürich ✓\n')
    assert "<details><summary>Thinking</summary>" in text
    assert "```python" in text
    assert "**⚠ Stopped before the end.**" in text
    assert "**⚠ Failed: Ollama is not reachable" in text
    assert "*Image: map.png (PNG, 4×3)*" in text
    assert "<sub>50 tokens · 25.0 tokens/s · done: stop</sub>" in text
    # Model output cannot become live HTML in a Markdown viewer; code stays as written.
    assert "<script>" not in text and "&lt;script>alert(1)&lt;/script>" in text
    assert "    return {'A': 12}[route]" in text


def test_text_matches_its_golden_file_and_wraps(rich: Conversation) -> None:
    text = to_text(transcript_of(rich, exported_at=EXPORTED))
    golden("export.txt", text)
    assert "USER (2026-03-14T09:26:53Z):" in text
    assert "ASSISTANT (2026-03-14T09:27:53Z, llama3.2:latest):" in text
    assert "[STOPPED BEFORE THE END]" in text
    assert "  [FAILED]\n  Ollama is not reachable at" in text
    assert all(len(line) <= 78 for line in text.splitlines())


def test_html_is_standalone_sanitized_and_highlighted(rich: Conversation) -> None:
    page = to_html(transcript_of(rich, exported_at=EXPORTED))
    golden("export.html", page)
    assert "<script" not in page.lower()
    assert 'href="javascript:' not in page  # shown as text, never a link
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<span class="k">def</span>' in page  # Pygments
    assert "<table>" in page and "<style>" in page
    assert 'src="data:image/png;base64,' in page
    assert "Compare these two &lt;b&gt;routes&lt;/b&gt;" in page  # user text is text


def test_json_keeps_everything(rich: Conversation) -> None:
    document = to_json_document(transcript_of(rich, exported_at=EXPORTED))
    golden("export.json", json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    assert document["schema"].endswith("/v1")
    conversation = document["conversation"]
    assert conversation["title"] == TITLE
    assert conversation["system_prompt"] == {
        "name": "Brief",
        "version": None,
        "text": "Be brief.\nUse metric units.",
    }
    assert conversation["options"] == {"temperature": 0.3}
    statuses = [m["status"] for m in conversation["messages"]]
    assert statuses == ["complete", "complete", "complete", "stopped", "complete", "error"]
    image = conversation["messages"][0]["images"][0]
    assert base64.b64decode(image["data"]) == png()
    assert (image["content_type"], image["width"], image["height"]) == ("image/png", 4, 3)
    assert conversation["messages"][1]["stats"]["eval_count"] == 50
    assert conversation["messages"][1]["created_at"] == "2026-03-14T09:27:53Z"


# --- downloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_owner_downloads_each_format_with_a_safe_file_name(
    client: Client, user: User, rich: Conversation, fmt: str
) -> None:
    client.force_login(user)
    response = client.get(f"/conversations/{rich.pk}/export/{fmt}/")
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[fmt].content_type
    disposition = response["Content-Disposition"]
    assert disposition == f"attachment; filename*=utf-8''plan-b-for-z%C3%BCrich-{rich.pk}.{fmt}"
    assert "\n" not in disposition and '"' not in disposition
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_nobody_else_can_download_it(
    client: Client, other_user: User, rich: Conversation, fmt: str
) -> None:
    client.force_login(other_user)
    assert client.get(f"/conversations/{rich.pk}/export/{fmt}/").status_code == 404


def test_an_unknown_format_is_404(client: Client, user: User, rich: Conversation) -> None:
    client.force_login(user)
    assert client.get(f"/conversations/{rich.pk}/export/exe/").status_code == 404
    assert client.get("/export/?format=exe").status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client: Client, rich: Conversation) -> None:
    assert client.get(f"/conversations/{rich.pk}/export/md/")["Location"].startswith(
        "/accounts/login/"
    )
    assert client.get("/export/")["Location"].startswith("/accounts/login/")


def test_all_conversations_stream_as_one_zip_of_the_users_own(
    client: Client, user: User, other_user: User, rich: Conversation
) -> None:
    Conversation.objects.create(owner=user, title="Second", model_name="x")
    Conversation.objects.create(owner=other_user, title="Not yours", model_name="x")
    client.force_login(user)

    response = client.get("/export/?format=all")

    assert response.streaming
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[attr-defined]
    names = sorted(archive.namelist())
    assert len(names) == 2 * len(FORMATS)
    assert not any("not-yours" in name for name in names)
    assert (
        json.loads(archive.read(f"plan-b-for-zürich-{rich.pk}.json"))["conversation"]["title"]
        == TITLE
    )


def test_a_streamed_zip_leaves_no_garbage_cycles_behind_its_batches(
    user: User, language_model: object
) -> None:
    """Each batch of conversations must be freed as soon as it is written. Reference cycles
    would wait for a full garbage collection, which a big process runs rarely: memory would
    grow with the number of conversations (the benchmark measures it; this counts it)."""
    for number in range(120):  # three batches
        conversation = Conversation.objects.create(owner=user, title=f"C{number}", model_name="x")
        message = conversation.messages.create(role="user", content="hi")
        message_image_attach(
            message=message,
            upload=SimpleUploadedFile("dot.png", png(), content_type="image/png"),
        )
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to count it
    try:
        entries = export_entries(in_batches(Conversation.objects.filter(owner=user)), ["json"])
        for _ in zip_stream(entries):
            pass
        gc.collect()
        kept_by_cycles = [
            o for o in gc.garbage if isinstance(o, Conversation | Message | MessageImage)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept_by_cycles == []


def test_a_zip_of_one_format(client: Client, user: User, rich: Conversation) -> None:
    client.force_login(user)
    response = client.get("/export/?format=md")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[attr-defined]
    assert archive.namelist() == [f"plan-b-for-zürich-{rich.pk}.md"]


# --- the command line -------------------------------------------------------------------------


def test_the_command_writes_one_conversation_to_a_file(rich: Conversation, tmp_path: Path) -> None:
    target = tmp_path / "out.md"
    out = io.StringIO()
    call_command("export_conversations", "--format", "md", "--output", str(target), stdout=out)
    assert target.read_text().startswith('# Plan "B" for Zürich ✓')
    assert "Exported 1 conversation to" in out.getvalue()


def test_the_command_zips_a_users_conversations_since_a_date(
    rich: Conversation, user: User, other_user: User, tmp_path: Path
) -> None:
    Conversation.objects.create(owner=user, title="Recent", model_name="x")
    Conversation.objects.create(owner=other_user, title="Other", model_name="x")
    target = tmp_path / "all.zip"
    call_command(
        "export_conversations",
        "--format",
        "json",
        "--user",
        "alice",
        "--output",
        str(target),
        stdout=io.StringIO(),
    )
    assert len(zipfile.ZipFile(target).namelist()) == 2
    call_command(
        "export_conversations",
        "--format",
        "txt",
        "--user",
        "alice",
        "--since",
        "2026-06-01",
        "--output",
        str(tmp_path / "recent.txt"),
        stdout=io.StringIO(),
    )
    assert (tmp_path / "recent.txt").read_text().startswith("Recent")


def test_the_command_says_what_is_wrong(rich: Conversation) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("export_conversations", "--format", "md", "--user", "nobody")
    with pytest.raises(CommandError, match="--since must be a date"):
        call_command("export_conversations", "--format", "md", "--since", "yesterday")


# --- the admin, and the privacy of transcripts ------------------------------------------------


@pytest.fixture
def staff_client(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def test_admins_cannot_read_or_export_transcripts_by_default(
    staff_client: Client, rich: Conversation, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_CAN_READ_TRANSCRIPTS = False
    page = staff_client.get(f"/admin/conversations/conversation/{rich.pk}/change/").content.decode()
    assert "Route" not in page and "Zürich" not in page and "Be brief" not in page
    listing = staff_client.get("/admin/conversations/conversation/").content.decode()
    assert "Zürich" not in listing
    response = staff_client.post(
        "/admin/conversations/conversation/",
        {"action": "export_selected", "_selected_action": [rich.pk]},
        follow=True,
    )
    assert "Transcripts are private" in response.content.decode()
    assert response["Content-Type"].startswith("text/html")


def test_admins_may_export_when_the_operator_allows_it(
    staff_client: Client, rich: Conversation, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_CAN_READ_TRANSCRIPTS = True
    page = staff_client.get(f"/admin/conversations/conversation/{rich.pk}/change/").content.decode()
    # The transcript is shown as the chat shows it: Markdown rendered, through the sanitizer.
    assert "Route <strong>A</strong> is shorter." in page
    response = staff_client.post(
        "/admin/conversations/conversation/",
        {"action": "export_selected", "_selected_action": [rich.pk]},
    )
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[attr-defined]
    assert archive.namelist() == [f"plan-b-for-zürich-{rich.pk}.json"]


@pytest.mark.parametrize(
    ("source", "inert"),
    [
        ("a <b>bold</b> move", "a &lt;b>bold&lt;/b> move"),
        ("use `<div>` here", "use `<div>` here"),
        (
            "```html\n<script>x</script>\n```\n<img src=x>",
            "```html\n<script>x</script>\n```\n&lt;img src=x>",
        ),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<!-- hidden -->", "&lt;!-- hidden -->"),
    ],
)
def test_markdown_export_makes_html_inert_outside_code(source: str, inert: str) -> None:
    from conversations.export import inert_html

    assert inert_html(source) == inert

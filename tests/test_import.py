"""Importing a JSON export: a round trip that keeps everything, and nothing half-imported."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversations.export import to_json_document, transcript_of
from conversations.importing import ImportRefused, import_upload
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def upload(document: object, name: str = "export.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(document).encode())


def without_export_time(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "exported_at"}


def test_export_import_export_gives_the_same_document(rich: Conversation, other_user: User) -> None:
    original = to_json_document(transcript_of(rich))

    [copy] = import_upload(owner=other_user, upload=upload(original))

    assert copy.owner == other_user and copy.pk != rich.pk
    again = to_json_document(transcript_of(copy))
    assert without_export_time(again) == without_export_time(original)
    assert copy.model == rich.model  # matched by name


def test_an_unknown_model_is_kept_as_text(rich: Conversation, user: User) -> None:
    document = to_json_document(transcript_of(rich))
    document["conversation"]["model"] = "mystery:7b"
    [copy] = import_upload(owner=user, upload=upload(document))
    assert (copy.model, copy.model_name) == (None, "mystery:7b")


def test_a_zip_of_exports_is_imported_whole(rich: Conversation, user: User) -> None:
    document = to_json_document(transcript_of(rich))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.json", json.dumps(document))
        archive.writestr("b.json", json.dumps(document))
        archive.writestr("a.md", "# not read")
    imported = import_upload(owner=user, upload=SimpleUploadedFile("all.zip", buffer.getvalue()))
    assert len(imported) == 2


def broken(rich: Conversation, path: list[Any], value: object) -> dict[str, Any]:
    document = to_json_document(transcript_of(rich))
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (["schema"], "something/else", "unknown schema"),
        (["conversation", "messages", 0, "role"], "robot", "message 1: unknown role 'robot'"),
        (["conversation", "messages", 1, "status"], "lost", "message 2: unknown status 'lost'"),
        (["conversation", "messages", 0, "created_at"], "yesterday", "not an ISO 8601 time"),
        (["conversation", "messages", 0, "images", 0, "data"], "!!!", "the data is not base64"),
        (
            ["conversation", "messages", 0, "images", 0, "data"],
            base64.b64encode(b"<svg/>").decode(),
            "not an image",
        ),
        (["conversation", "options"], {"temprature": 1}, "'temprature' is not an Ollama option"),
        (["conversation", "title"], 42, "the title must be text"),
    ],
)
def test_a_broken_file_is_refused_saying_what_is_wrong_and_nothing_is_kept(
    rich: Conversation,
    user: User,
    path: list[object],
    value: object,
    words: str,
) -> None:
    before = (Conversation.objects.count(), Message.objects.count())
    with pytest.raises(ImportRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        import_upload(owner=user, upload=upload(broken(rich, path, value)))
    assert (Conversation.objects.count(), Message.objects.count()) == before


def test_one_bad_file_in_a_zip_imports_none_of_them(rich: Conversation, user: User) -> None:
    good = to_json_document(transcript_of(rich))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.json", json.dumps(good))
        archive.writestr("bad.json", "{not json")
    before = Conversation.objects.count()
    with pytest.raises(ImportRefused, match="bad.json is not a JSON export"):
        import_upload(owner=user, upload=SimpleUploadedFile("all.zip", buffer.getvalue()))
    assert Conversation.objects.count() == before


def test_an_oversized_file_is_refused(user: User, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_MAX_IMPORT_BYTES = 100
    with pytest.raises(ImportRefused, match="larger than the limit"):
        import_upload(owner=user, upload=SimpleUploadedFile("big.json", b" " * 101))


def test_the_import_page_creates_conversations_for_the_importer_only(
    client: Client,
    rich: Conversation,
    other_user: User,
) -> None:
    client.force_login(other_user)
    document = to_json_document(transcript_of(rich))
    response = client.post("/conversations/import/", {"file": upload(document)})
    copy = Conversation.objects.get(owner=other_user)
    assert response.status_code == 302
    assert response["Location"] == f"/conversations/{copy.pk}/"
    assert Conversation.objects.filter(owner=rich.owner).count() == 1


def test_the_import_page_explains_a_refusal(client: Client, user: User) -> None:
    client.force_login(user)
    response = client.post("/conversations/import/", {"file": SimpleUploadedFile("x.json", b"[]")})
    assert response.status_code == 400
    assert "Nothing was imported" in response.content.decode()
    assert not Conversation.objects.exists()

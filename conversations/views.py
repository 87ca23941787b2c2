from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from conversations import selectors
from conversations.export import (
    FORMATS,
    export_entries,
    filename_for,
    in_batches,
    transcript_of,
    zip_stream,
)
from conversations.forms import (
    ConversationOptionsForm,
    NewConversationForm,
    RenameForm,
    SendForm,
    first_error,
)
from conversations.importing import ImportRefused, import_upload
from conversations.models import Conversation, MessageImage
from conversations.ownership import conversations_of, get_conversation_for_user
from conversations.prompting import context_budget
from conversations.selectors import (
    conversation_state,
    models_with_locked_prompts,
    prompts_on_offer,
)
from conversations.services import (
    conversation_options_set,
    conversation_start,
    conversation_update,
)
from conversations.sidebar import SEARCH_MAX_CHARS, sidebar_page, sidebar_search
from conversations.turn_start import turn_announce_and_start
from conversations.turns import (
    Turn,
    TurnRefused,
    lost_replies_sweep,
    refusal_text,
    turn_send,
)
from conversations.user_options import USER_OPTIONS

# What Ollama uses when nobody sets a temperature (OLLAMA_API.md, section 6).


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails  # set by django-htmx's middleware


def _sidebar_context(request: HttpRequest, current_id: int | None) -> dict[str, Any]:
    return {"page": sidebar_page(request.user), "current_id": current_id, "archived": False}


def _image_limits() -> dict[str, int]:
    """What the image picker says a message may carry."""
    return {
        "max_images": settings.CHAT_MAX_IMAGES_PER_MESSAGE,
        "max_image_bytes": settings.CHAT_MAX_IMAGE_BYTES,
    }


def _current_id(request: HttpRequest) -> int | None:
    """The conversation the page shows, for highlighting it in lists a fragment redraws."""
    value = request.GET.get("current") or request.POST.get("current") or ""
    return int(value) if value.isdigit() else None


def _new_conversation_context(
    request: HttpRequest, form: NewConversationForm | None = None, chat_error: str = ""
) -> dict[str, Any]:
    models = models_with_locked_prompts()
    default = next((m for m in models if m.is_default), models[0] if models else None)
    wanted = str(form.data.get("model", "")) if form is not None else ""
    selected = next((m for m in models if str(m.pk) == wanted), default)
    return {
        **_sidebar_context(request, None),
        "conversation": None,
        "models": models,
        "selected_model": selected,
        "selected_model_id": selected.pk if selected else None,
        "selected_prompt_id": str(form.data.get("system_prompt", "")) if form is not None else "",
        "prompts": list(prompts_on_offer()),
        "any_vision": any(m.supports_vision for m in models),
        **_image_limits(),
        "form": form,
        "chat_error": chat_error,
    }


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "conversations/chat.html", _new_conversation_context(request))


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    lost_replies_sweep(conversation_id=conversation.pk)
    context = {
        **_sidebar_context(request, conversation.pk),
        **_settings_context(conversation, settings_form_for(conversation)),
        **conversation_state(conversation),
        **_image_limits(),
    }
    return render(request, "conversations/chat.html", context)


def _create(request: HttpRequest) -> tuple[Conversation, Turn] | HttpResponse:
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        return render(
            request, "conversations/chat.html", _new_conversation_context(request, form), status=400
        )
    conversation = conversation_start(
        owner=request.user,  # type: ignore[arg-type]
        model=form.cleaned_data["model"],
        system_prompt=form.cleaned_data["system_prompt"],
    )
    try:
        turn = turn_send(
            conversation=conversation,
            content=form.cleaned_data["content"],
            images=request.FILES.getlist("images"),
        )
    except (TurnRefused, ValidationError) as refused:
        conversation.delete()
        context = _new_conversation_context(request, form, chat_error=refusal_text(refused))
        return render(request, "conversations/chat.html", context, status=400)
    return conversation, turn


@require_GET
def sidebar(request: HttpRequest) -> HttpResponse:
    """A page of the sidebar: the next one as the user scrolls, or the archive."""
    archived = request.GET.get("archived") == "1"
    page = sidebar_page(
        request.user,
        cursor=request.GET.get("cursor", ""),
        archived=archived,
        previous_group=request.GET.get("group", "")[:40],
    )
    context = {"page": page, "archived": archived, "current_id": _current_id(request)}
    return render(request, "conversations/chat.html#sidebar_page", context)


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:SEARCH_MAX_CHARS].strip()
    if not query:
        return sidebar(request)
    context = {
        "results": sidebar_search(request.user, query),
        "query": query,
        "current_id": _current_id(request),
    }
    return render(request, "conversations/chat.html#search_results", context)


def _after_change(request: HtmxHttpRequest, conversation: Conversation) -> HttpResponse:
    """Redraw the conversation's header actions and the sidebar, or reload without htmx."""
    if not request.htmx:
        return HttpResponseRedirect(reverse("conversation", args=[conversation.pk]))
    context = {
        **_sidebar_context(request, conversation.pk),
        "conversation": conversation,
        "oob": True,
    }
    return render(request, "conversations/chat.html#conversation_changed", context)


@require_GET
def message_image(request: HttpRequest, conversation_id: int, image_id: int) -> FileResponse:
    """An image the user attached, to its owner only. Served as an attachment-safe image: the
    type was checked on upload, and nosniff keeps the browser from guessing another one."""
    conversation = get_conversation_for_user(request.user, conversation_id)
    image = get_object_or_404(MessageImage, pk=image_id, message__conversation=conversation)
    response = FileResponse(image.file.open("rb"), content_type=image.content_type)
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
def older_messages(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    before = request.GET.get("before", "")
    if not before.isdigit():
        raise Http404("No such message.")
    context = {"conversation": conversation, **selectors.older_messages(conversation, int(before))}
    return render(request, "conversations/chat.html#older_page", context)


@require_POST
def conversation_rename(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        conversation_update(conversation=conversation, title=form.cleaned_data["title"])
    return _after_change(request, conversation)


def _settings_context(conversation: Conversation, form: ConversationOptionsForm) -> dict[str, Any]:
    """The settings form, each field with the value the model uses when the field is blank."""
    model = conversation.model
    defaults = dict(model.default_options or {}) if model else {}
    fields = []
    for field in form:
        if field.name == "num_ctx" and model is not None:
            default: Any = context_budget(model, defaults)
        else:
            default = defaults.get(field.name, USER_OPTIONS[field.name].ollama_default)
        field.field.widget.attrs["placeholder"] = default
        fields.append((field, default))
    return {"conversation": conversation, "settings_form": form, "settings_fields": fields}


def settings_form_for(conversation: Conversation) -> ConversationOptionsForm:
    options = conversation.options or {}
    form = ConversationOptionsForm(model=conversation.model)
    form.initial = {name: options.get(name) for name in form.fields}
    return form


@require_POST
def conversation_settings(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    form = ConversationOptionsForm(request.POST, model=conversation.model)
    saved = form.is_valid()
    if saved:
        conversation_options_set(conversation=conversation, overrides=form.cleaned_data)
    context = {**_settings_context(conversation, form), "saved": saved}
    return render(
        request,
        "conversations/chat.html#conversation_settings",
        context,
        status=200 if saved else 400,
    )


@require_POST
def conversation_pin(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    conversation_update(conversation=conversation, pinned=request.POST.get("pinned") == "1")
    return _after_change(request, conversation)


@require_POST
def conversation_archive(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    conversation_update(conversation=conversation, archived=request.POST.get("archived") == "1")
    return _after_change(request, conversation)


@require_POST
def conversation_delete(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_conversation_for_user(request.user, conversation_id)
    conversation.delete()  # a reply still streaming notices at its next checkpoint and stops
    home_url = reverse("home")
    if request.htmx:
        return HttpResponseClientRedirect(home_url)
    return HttpResponseRedirect(home_url)


@require_POST
async def conversation_new(request: HttpRequest) -> HttpResponse:
    """Start a conversation with its first message, then show it while the reply streams.

    Async, so the reply's generation runs on the server's event loop and outlives this
    request."""
    created = await sync_to_async(_create)(request)
    if isinstance(created, HttpResponse):
        return created
    conversation, turn = created
    await turn_announce_and_start(conversation.pk, turn)
    return HttpResponseRedirect(reverse("conversation", args=[conversation.pk]))


def _send_with_images(request: HttpRequest, conversation_id: int) -> tuple[Turn | None, str]:
    conversation = get_conversation_for_user(request.user, conversation_id)
    form = SendForm(request.POST)
    if not form.is_valid():
        return None, first_error(form)
    try:
        turn = turn_send(
            conversation=conversation,
            content=form.cleaned_data["content"],
            images=request.FILES.getlist("images"),
        )
    except (TurnRefused, ValidationError) as refused:
        return None, refusal_text(refused)
    return turn, ""


@require_POST
async def conversation_send(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """A message with images, which a websocket frame cannot carry. The page hears of the turn
    over its socket, like any other; this answers 204, or the reason in words (400)."""
    turn, refused = await sync_to_async(_send_with_images)(request, conversation_id)
    if turn is None:
        return HttpResponse(refused, status=400, content_type="text/plain; charset=utf-8")
    await turn_announce_and_start(conversation_id, turn)
    return HttpResponse(status=204)


@require_GET
def conversation_export(request: HttpRequest, conversation_id: int, fmt: str) -> HttpResponse:
    chosen = FORMATS.get(fmt)
    if chosen is None:
        raise Http404("No such export format.")
    conversation = get_conversation_for_user(request.user, conversation_id)
    response = HttpResponse(
        chosen.render(transcript_of(conversation)), content_type=chosen.content_type
    )
    response["Content-Disposition"] = content_disposition_header(
        True, filename_for(conversation, chosen.extension)
    )
    return response


@require_GET
def export_all(request: HttpRequest) -> StreamingHttpResponse:
    """All of the user's conversations as one zip, streamed one conversation at a time."""
    wanted = request.GET.get("format", "all")
    formats = list(FORMATS) if wanted == "all" else [wanted]
    if not set(formats) <= set(FORMATS):
        raise Http404("No such export format.")
    conversations = in_batches(conversations_of(request.user))
    response = StreamingHttpResponse(
        zip_stream(export_entries(conversations, formats)), content_type="application/zip"
    )
    stamp = timezone.now().strftime("%Y-%m-%d")
    response["Content-Disposition"] = content_disposition_header(True, f"conversations-{stamp}.zip")
    return response


@require_POST
def conversation_import(request: HttpRequest) -> HttpResponse:
    """New conversations, owned by the importing user, from a JSON export or a zip of them."""
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise ImportRefused("Choose a JSON export (or a zip of them) to import.")
        imported = import_upload(owner=request.user, upload=upload)  # type: ignore[arg-type]
    except ImportRefused as refused:
        context = _new_conversation_context(request, chat_error=f"Nothing was imported: {refused}")
        return render(request, "conversations/chat.html", context, status=400)
    return HttpResponseRedirect(reverse("conversation", args=[imported[0].pk]))

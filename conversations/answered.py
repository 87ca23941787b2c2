"""What each conversation's last reply asked Ollama and what the model said, kept by the worker
that wrote it: its next text send can build its request from them and ask Ollama before its
turn reads the database.

That turn still builds the request from the database, under the conversation's lock, and
compares (turn_start.py): the same, it keeps what was asked; different (a turn on another
worker, a setting, model or prompt changed meanwhile), it stops it and asks again. Nothing here
is ever sent anywhere without that check, so a stale entry costs a request asked twice, never
a wrong reply.

Only the event loop touches this (the generation that saves a reply, the socket that sends):
no lock. Bounded by characters kept, the least recently answered conversation going first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from conversations.prompting import ReplyRequest, next_request

# About 20 MB of text: a few hundred conversations at their context's size.
MAX_KEPT_CHARACTERS = 20_000_000


@dataclass(frozen=True)
class Answered:
    request: ReplyRequest
    reply: str

    @property
    def characters(self) -> int:
        return len(self.reply) + sum(len(m.content) for m in self.request.messages)


_kept: OrderedDict[int, Answered] = OrderedDict()
_kept_characters = 0


def answered_remember(conversation_id: int, request: ReplyRequest, reply: str) -> None:
    """A reply to ``request`` was saved saying ``reply``. A request with images is not kept
    (they are large, and read from files): its conversation's next send asks the database
    first."""
    global _kept_characters
    _forget(conversation_id)
    if any(message.images for message in request.messages):
        return
    answered = Answered(request, reply)
    _kept[conversation_id] = answered
    _kept_characters += answered.characters
    while _kept_characters > MAX_KEPT_CHARACTERS and _kept:
        _forget(next(iter(_kept)))


def answered_take(conversation_id: int) -> Answered | None:
    """What the conversation's last reply asked and said, if this worker kept it; forgotten
    either way, since the turn that takes it changes the conversation."""
    answered = _kept.get(conversation_id)
    _forget(conversation_id)
    return answered


def answered_next_request(answered: Answered, content: str) -> ReplyRequest:
    """The request that answers ``content`` sent next, if nothing else changed."""
    return next_request(answered.request, answered.reply, content)


def _forget(conversation_id: int) -> None:
    global _kept_characters
    answered = _kept.pop(conversation_id, None)
    if answered is not None:
        _kept_characters -= answered.characters


def answered_forget_all() -> None:
    """Nothing kept (between tests: a database emptied gives its ids out again)."""
    global _kept_characters
    _kept.clear()
    _kept_characters = 0

"""A fake Ollama server that behaves, on the wire, like the real one (OLLAMA_API.md §14).

It serves tests and demos on machines without Ollama or model weights. Run it with
``python manage.py fake_ollama --port N``, or start ``FakeOllamaServer`` in a test.
"""

from __future__ import annotations

from conversations.fake_ollama.catalogue import FakeModel, default_catalogue
from conversations.fake_ollama.replies import expected_reply
from conversations.fake_ollama.server import FakeOllamaServer, RecordedRequest

__all__ = [
    "FakeModel",
    "FakeOllamaServer",
    "RecordedRequest",
    "default_catalogue",
    "expected_reply",
]

"""What a page shows of a reply: its Markdown rendered and sanitized, as HTML or as the text
the browser's ``textContent`` gives."""

from __future__ import annotations

import html
import re

from conversations.rendering import render_markdown


def rendered(markdown: str) -> str:
    return str(render_markdown(markdown))


def shown_text(markdown: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown)))

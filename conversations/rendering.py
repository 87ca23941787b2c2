"""Model output as HTML: Markdown rendered once, sanitized once, here and nowhere else.

Raw HTML in the Markdown source is escaped (markdown-it with ``html`` off), and the result is
cleaned again with an allow-list (nh3): no scripts, no event handlers, no styles, no htmx
attributes, no ``javascript:`` or ``data:`` URLs; links open in a new tab without a referrer.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "span", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}
CODE_STYLE = "default"
CODE_STYLE_DARK = "monokai"


def _highlight(code: str, language: str, attributes: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    return str(highlight(code, lexer, HtmlFormatter(nowrap=True)))


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(
        ["table", "strikethrough"]
    )


def markdown_block_starts(text: str) -> list[int]:
    """The line on which each top-level block of the Markdown text starts."""
    return [line for line, _ in _block_starts(_markdown().parse(text))]


def _block_starts(tokens: list[Token]) -> list[tuple[int, int]]:
    """(line, index of its first token) for each top-level block."""
    starts: list[tuple[int, int]] = []
    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting < 0 or not token.map:
            continue
        if not starts or token.map[0] != starts[-1][0]:
            starts.append((token.map[0], index))
    return starts


def render_markdown(text: str) -> SafeString:
    """Untrusted Markdown (a model's reply) as safe HTML."""
    return _sanitize(_markdown().render(text))


def render_markdown_split(text: str) -> tuple[int, SafeString, SafeString]:
    """The line on which the last top-level block starts (0 when there is only one), the HTML
    of the blocks before it and that of the last block. Parsed once: this runs for every frame
    of a streaming reply."""
    if _is_plain_line(text):
        return 0, SafeString(""), _plain_paragraph(text)
    md = _markdown()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    starts = _block_starts(tokens)
    line, first = starts[-1] if len(starts) > 1 else (0, 0)
    head = _sanitize(md.renderer.render(tokens[:first], md.options, env)) if first else None
    tail = _sanitize(md.renderer.render(tokens[first:], md.options, env))
    return line, head or SafeString(""), tail


# Punctuation that neither starts Markdown inside a line (no * _ ` ~ [ ] \\ < > & |) nor is
# changed by escaping or by the sanitizer.
_PLAIN_PUNCTUATION = str.maketrans("", "", " ,.;:?!'\"()%/+=@$#-")


def _is_plain_line(text: str) -> bool:
    """One line that starts with a letter (not a list marker, heading, quote, fence or
    indent) and holds only letters, digits, spaces and plain punctuation: Markdown makes it a
    paragraph of the same text. Most of a reply's open paragraph is such a line, and checking
    costs a few microseconds where parsing costs tens, on every frame."""
    return text[:1].isalpha() and text.translate(_PLAIN_PUNCTUATION).isalnum()


def _plain_paragraph(text: str) -> SafeString:
    # What markdown-it and the sanitizer make of a plain line (tests/test_rendering.py compares
    # the two): the text cannot hold a tag or an entity, there is nothing to escape.
    return mark_safe(f"<p>{text.rstrip(' ')}</p>\n")  # noqa: S308 - no < > & in plain text


@cache
def _cleaner() -> nh3.Cleaner:
    # Built once: nh3.clean() would build the same allow-list again for every frame.
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},
    )


def _sanitize(html: str) -> SafeString:
    return mark_safe(_cleaner().clean(html))  # noqa: S308 - cleaned by nh3 just now


@cache
def code_stylesheet() -> str:
    """Pygments' classes for code blocks, light and dark."""
    light = HtmlFormatter(style=CODE_STYLE).get_style_defs(".message-content pre")
    dark = HtmlFormatter(style=CODE_STYLE_DARK).get_style_defs(".message-content pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"

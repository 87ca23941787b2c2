"""Model output as HTML: Markdown rendered once, sanitized once, here and nowhere else.

Raw HTML in the Markdown source is escaped (markdown-it with ``html`` off), and the result is
cleaned again with an allow-list (nh3): no scripts, no event handlers, no styles, no htmx
attributes, no ``javascript:`` or ``data:`` URLs; links open in a new tab without a referrer.
"""

from __future__ import annotations

from functools import cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
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
    starts: list[int] = []
    for token in _markdown().parse(text):
        if token.level == 0 and token.nesting >= 0 and token.map and token.map[0] not in starts:
            starts.append(token.map[0])
    return starts


def render_markdown(text: str) -> SafeString:
    """Untrusted Markdown (a model's reply) as safe HTML."""
    html = _markdown().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},
    )
    return mark_safe(clean)  # noqa: S308 - cleaned by nh3 just above


@cache
def code_stylesheet() -> str:
    """Pygments' classes for code blocks, light and dark."""
    light = HtmlFormatter(style=CODE_STYLE).get_style_defs(".message-content pre")
    dark = HtmlFormatter(style=CODE_STYLE_DARK).get_style_defs(".message-content pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"

"""Model output as HTML: the sanitizer's allow-list, and Markdown rendered while it streams."""

from __future__ import annotations

import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conversations.fake_ollama.replies import SAMPLE_MARKDOWN
from conversations.rendering import (
    _is_plain_line,
    code_stylesheet,
    markdown_block_starts,
    render_markdown,
    render_markdown_split,
)
from conversations.streaming_markdown import StreamingMarkdown, split_rendering

DOCUMENT = (
    "# A heading\n\nSome *text* with `code`\nand a second line.\n\n"
    "- one\n- two\n\n  still two\n- three\n\n"
    "1. first\n2. second\n\n"
    "```python\ndef f():\n\n    return 1\n```\n\n"
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n\n"
    "> quoted\nlazily continued\n\n"
    "Setext heading\n---\n\n"
    "    indented code\n\n"
    "Ends with ~~struck~~ and a [link](https://example.com)."
)


def stream(text: str, pieces: list[str]) -> tuple[str, int]:
    """What a viewer's page holds after the pieces arrived: shown blocks plus the last tail,
    and how many blocks were rendered (each exactly once)."""
    renderer = StreamingMarkdown()
    shown, so_far, renders = "", "", 0
    tail = ""
    for piece in pieces:
        so_far += piece
        step = renderer.advance(so_far)
        shown += step.new_blocks
        tail = step.tail
        renders += bool(step.new_blocks)
        # At every moment the page equals the whole text so far, rendered at once.
        assert shown + tail == render_markdown(so_far), so_far
    assert so_far == text
    return shown + tail, renders


@pytest.mark.parametrize("text", [DOCUMENT, SAMPLE_MARKDOWN, "plain", "", "a\r\n\r\nb\rc"])
def test_a_stream_shows_what_rendering_the_whole_text_shows_at_every_character(text: str) -> None:
    result, _ = stream(text, list(text))
    assert result == render_markdown(text)


def test_a_stream_in_word_sized_pieces_renders_each_finished_block_once() -> None:
    words = DOCUMENT.split(" ")
    pieces = [words[0]] + [" " + word for word in words[1:]]
    result, renders = stream(DOCUMENT, pieces)
    assert result == render_markdown(DOCUMENT)
    assert renders >= 8  # the finished blocks went out one after another, not all at the end


def test_the_open_tail_stays_one_block_long_however_long_the_reply() -> None:
    renderer = StreamingMarkdown()
    text = "".join(f"Paragraph {n} with some words.\n\n" for n in range(2000))
    step = renderer.advance(text[: len(text) // 2])
    step = renderer.advance(text)
    assert len(step.tail) < 100  # not the whole reply again
    assert renderer.committed > len(text) - 100


def test_a_viewer_joining_mid_stream_gets_the_same_split_as_the_stream() -> None:
    renderer = StreamingMarkdown()
    renderer.advance(DOCUMENT[:150])
    head, tail = split_rendering(DOCUMENT[:150], renderer.committed)
    step = renderer.advance(DOCUMENT)
    assert head + step.new_blocks + step.tail == render_markdown(DOCUMENT)
    assert tail  # the part still open when the viewer joined


class Elements(HTMLParser):
    """The elements of an HTML fragment as a browser would parse them: (tag, attributes)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[x](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        "![x](data:image/png;base64,iVBORw0KGgo=)",
        '<div hx-get="/" hx-trigger="load">x</div>',
        '<p style="color:red" onclick="alert(1)">x</p>',
        "<svg onload=alert(1)>",
        "<iframe src=//evil></iframe>",
        '<form ws-send><input name="action" value="stop"></form>',
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
    ],
)
def test_raw_html_and_dangerous_urls_in_model_output_come_out_inert(source: str) -> None:
    elements = Elements(render_markdown(source)).found
    allowed_tags = {"p", "a", "code", "pre", "span", "strong", "em"}
    assert {tag for tag, _ in elements} <= allowed_tags
    for tag, attributes in elements:
        for name, value in attributes.items():
            assert not name.startswith(("on", "hx-", "ws-", "data-")), (tag, name)
            assert name != "style"
            assert not value.strip().lower().startswith(("javascript:", "data:")), (tag, value)


def test_links_open_in_a_new_tab_without_a_referrer() -> None:
    html = render_markdown("[docs](https://example.com/a)")
    assert 'href="https://example.com/a"' in html
    assert 'target="_blank"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_code_blocks_are_highlighted_with_classes_and_tables_keep_their_alignment() -> None:
    html = render_markdown("```python\ndef f():\n    pass\n```\n\n| a |\n|:-:|\n| 1 |\n")
    assert '<span class="k">def</span>' in html
    assert 'style="text-align:center"' in html


def test_the_code_stylesheet_served_to_browsers_is_the_one_the_renderer_uses() -> None:
    served = Path(__file__).resolve().parent.parent / "static" / "css" / "code.css"
    assert code_stylesheet() in served.read_text()


PLAIN_WORDS = ["Hello", "world", "it's", '"quoted"', "5%", "a/b", "x+y=z", "#3", "well-known"]
TRICKY = list("*_`~[]\\<>&|!#-+=.:)") + [
    "1.",
    "1)",
    "\u00a0",
    "\t",
    "\n",
    "é",
    "日本",
    "²",
    "\u0301",
]


def test_a_plain_line_is_rendered_without_parsing_exactly_as_markdown_renders_it() -> None:
    # The fast path for the open paragraph of a stream: whatever it takes as plain must come
    # out as markdown-it and the sanitizer make it, and markup must take the long way.
    rng = random.Random(8)  # noqa: S311 - a fixed sample, not a secret
    taken = 0
    for _ in range(20_000):
        pieces = [rng.choice(PLAIN_WORDS) for _ in range(rng.randint(1, 12))]
        for _ in range(rng.choice([0, 0, 1, 2])):  # markup alone, around a word, inside one
            at, mark = rng.randrange(len(pieces)), rng.choice(TRICKY)
            pieces[at] = rng.choice([f"{mark} {pieces[at]}", f"{mark}{pieces[at]}{mark}"])
            pieces[at] = rng.choice([pieces[at], f"{pieces[at][:2]}{mark}{pieces[at][2:]}"])
        text = rng.choice(["", " ", "  "]).join(pieces) + rng.choice(["", " ", "  "])
        line, head, tail = render_markdown_split(text)
        assert (line, head + tail) == (0, render_markdown(text)) or len(
            markdown_block_starts(text)
        ) > 1
        taken += _is_plain_line(text)
    assert 5_000 < taken < 15_000  # both paths were taken


@pytest.mark.parametrize(
    "text", ["1. a list", "- a list", "# heading", "> quote", "    code", "a *b*", "a `b`", "x"]
)
def test_only_plain_lines_take_the_fast_path(text: str) -> None:
    assert _is_plain_line(text) == (text == "x")

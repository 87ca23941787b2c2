"""Markdown for a reply that is still arriving, rendered in linear time.

Re-rendering the whole reply on every frame would cost O(n²) over a reply. Instead the text is
split into finished blocks and the open tail: a top-level block is finished once another one
has started after it (CommonMark never lets later text change a closed block, link reference
definitions aside). Finished blocks are rendered once and sent once; only the tail, one block
long, is rendered again on each frame. The final reply is rendered whole from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.safestring import SafeString

from conversations.rendering import (
    markdown_block_starts,
    render_markdown,
    render_markdown_split,
)


def normalize_newlines(text: str) -> str:
    # As markdown-it does before parsing, so that line numbers match character offsets.
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class RenderedStep:
    # HTML of the blocks finished since the previous step, to append after those already shown.
    new_blocks: SafeString
    # HTML of the open block, to replace the previous tail.
    tail: SafeString
    # How much of the (newline-normalized) text the shown blocks cover, new ones included.
    committed: int


class StreamingMarkdown:
    """Feed it the whole text so far; it answers with what changed on screen."""

    def __init__(self) -> None:
        self.committed = 0

    def advance(self, text: str) -> RenderedStep:
        source = normalize_newlines(text)
        open_part = source[self.committed :]
        # One parse of the open part gives both the split and the HTML on either side of it.
        line, new_blocks, tail = render_markdown_split(open_part)
        self.committed += _offset_of_line(open_part, line)
        return RenderedStep(new_blocks=new_blocks, tail=tail, committed=self.committed)


def split_rendering(text: str, committed: int) -> tuple[SafeString, SafeString]:
    """A streaming reply rendered as the stream's viewers have it: the blocks covering the first
    ``committed`` characters, and the rest."""
    source = normalize_newlines(text)
    committed = max(0, min(committed, len(source)))
    head = render_markdown(source[:committed]) if committed else SafeString("")
    return head, render_markdown(source[committed:])


def natural_split(text: str) -> int:
    """Where a fresh stream over the whole text would put the boundary: before the last block."""
    return _last_block_start(normalize_newlines(text))


def _last_block_start(source: str) -> int:
    """The offset at which the last top-level block starts, or 0 when there is only one."""
    starts = markdown_block_starts(source)
    return _offset_of_line(source, starts[-1]) if len(starts) > 1 else 0


def _offset_of_line(source: str, line: int) -> int:
    offset = 0
    for _ in range(line):
        offset = source.index("\n", offset) + 1
    return offset

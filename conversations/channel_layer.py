"""The channel layer of a single worker (no REDIS_URL): channels' in-memory layer, minus its
cost per open socket.

channels' ``InMemoryChannelLayer`` sweeps every channel and every group for expired entries on
each ``group_send`` and each ``receive``: a frame of one reply costs time in proportion to all
the sockets open on the worker (about 1 ms per frame with a thousand open, on a small machine),
and ``group_send`` starts a task per member. Here the sweep runs at most once a second, which
still drops expired messages and memberships, and a group is sent to member by member.
"""

from __future__ import annotations

import contextlib
from time import monotonic
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = monotonic()
        if now - self._swept_at >= SWEEP_SECONDS:
            self._swept_at = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"  # noqa: S101 - as channels
        self.require_valid_group_name(group)
        self._clean_expired()
        # send() never waits (a full channel raises at once): no task per member is needed.
        for channel in list(self.groups.get(group, ())):
            # As channels' layers do: a socket whose queue is full misses this message.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)

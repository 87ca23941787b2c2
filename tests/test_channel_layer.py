"""The single worker's channel layer: what channels' in-memory layer does, without sweeping
every socket's channel and group on every message (docs/performance.md)."""

from __future__ import annotations

import pytest
from channels.layers import InMemoryChannelLayer

from conversations.channel_layer import LocalChannelLayer


async def test_a_group_message_reaches_every_member_once() -> None:
    layer = LocalChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    outsider = await layer.new_channel()
    for channel in members:
        await layer.group_add("conversation-1", channel)
    await layer.group_add("conversation-2", outsider)

    await layer.group_send("conversation-1", {"type": "generation.delta", "seq": 1})

    for channel in members:
        assert await layer.receive(channel) == {"type": "generation.delta", "seq": 1}
    assert layer.channels == {}  # nothing more for anyone, the outsider included


async def test_a_socket_whose_queue_is_full_misses_the_message_and_the_others_get_it() -> None:
    layer = LocalChannelLayer(capacity=1)
    full, free = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conversation-1", full)
    await layer.group_add("conversation-1", free)
    await layer.send(full, {"type": "first"})

    await layer.group_send("conversation-1", {"type": "second"})

    assert await layer.receive(full) == {"type": "first"}
    assert await layer.receive(free) == {"type": "second"}


async def test_expired_entries_are_swept_at_most_once_a_second(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sweeps = []
    sweep = InMemoryChannelLayer._clean_expired

    def counted_sweep(self):  # type: ignore[no-untyped-def]
        sweeps.append(1)
        sweep(self)

    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", counted_sweep)
    clock = [1000.0]
    monkeypatch.setattr("conversations.channel_layer.monotonic", lambda: clock[0])
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("conversation-1", channel)

    for seq in range(100):
        await layer.group_send("conversation-1", {"type": "generation.delta", "seq": seq})
        await layer.receive(channel)
    assert len(sweeps) == 1

    clock[0] += 1
    await layer.group_send("conversation-1", {"type": "generation.delta", "seq": 100})
    assert len(sweeps) == 2


@pytest.mark.parametrize("group", ["conversation 1", "x" * 200])
async def test_group_names_are_checked_as_channels_checks_them(group: str) -> None:
    with pytest.raises(TypeError):
        await LocalChannelLayer().group_send(group, {"type": "x"})

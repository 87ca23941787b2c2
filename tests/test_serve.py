"""chatsite/serve.py: daphne on uvloop's event loop by default, on asyncio's own when
EVENT_LOOP says so, and a start-up refused with one line naming a wrong EVENT_LOOP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvloop

from chatsite.serve import event_loop_choice
from conversations.fake_ollama import FakeOllamaServer
from tests.conftest import live_server_environment
from tests.live_server import BASE_DIR, daphne_process


@pytest.mark.parametrize(
    ("setting", "loop_name", "loop_type"),
    [("", "uvloop", uvloop.Loop), ("asyncio", "asyncio", asyncio.BaseEventLoop)],
    ids=["uvloop by default", "asyncio's own when asked"],
)
def test_the_event_loop_chosen(setting: str, loop_name: str, loop_type: type) -> None:
    name, new_event_loop = event_loop_choice(setting)
    loop = new_event_loop()
    try:
        assert name == loop_name and isinstance(loop, loop_type)
    finally:
        loop.close()


def test_an_unknown_event_loop_is_refused_naming_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"EVENT_LOOP='libuv' is not an event loop; use one of: uvloop, asyncio\."
    ):
        event_loop_choice("libuv")


def test_serving_stops_at_once_on_an_unknown_event_loop_with_one_line_naming_it() -> None:
    env = {**os.environ, "EVENT_LOOP": "libuv"}
    finished = subprocess.run(
        [sys.executable, "-m", "chatsite.serve", "chatsite.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        "chatsite.serve: EVENT_LOOP='libuv' is not an event loop; use one of: uvloop, asyncio."
    )


@pytest.mark.parametrize(("setting", "loop_name"), [("", "uvloop"), ("asyncio", "asyncio")])
def test_the_worker_serves_on_the_event_loop_chosen(
    setting: str,
    loop_name: str,
    transactional_db: None,
    fake_ollama: FakeOllamaServer,
    tmp_path: Path,
) -> None:
    env = live_server_environment(fake_ollama, EVENT_LOOP=setting)
    with daphne_process(env, tmp_path / "daphne.log") as server:
        page = httpx.get(f"{server.url}/accounts/login/", timeout=30)
        assert page.status_code == 200 and 'name="username"' in page.text
        assert f"chatsite.serve: daphne on {loop_name}'s event loop" in server.log()

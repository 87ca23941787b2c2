"""The worker's garbage collector: what the worker loaded at start is frozen out of the
collector's way (its full collections paused streaming replies for up to 200 ms), and the
garbage that loading left behind is freed, not frozen."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

from chatsite.collector import collector_settle
from tests.live_server import BASE_DIR, server_environment


class Node:
    """An object the collector tracks, which can hold itself."""

    cycle: Node | None = None


def test_what_is_loaded_is_frozen_and_what_loading_left_behind_is_freed() -> None:
    loaded = Node()
    left_behind = Node()
    left_behind.cycle = left_behind  # only the collector can free it
    freed = weakref.ref(left_behind)
    del left_behind

    collector_settle()

    assert freed() is None
    # Frozen objects are in no generation: the collector does not go through them any more.
    assert all(tracked is not loaded for tracked in gc.get_objects())


def test_the_worker_freezes_its_code_once_the_application_is_loaded(tmp_path: Path) -> None:
    # In a process of its own, as a worker starts: this process may have frozen it already.
    env = server_environment(
        data_dir=tmp_path,
        static_root=tmp_path / "static",
        db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        secret_key="collector-test-" + "x" * 40,
    )
    check = (
        "import gc, chatsite.asgi as worker; "
        "print(gc.get_freeze_count(), any(o is worker.application for o in gc.get_objects()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    frozen, application_in_sight = result.stdout.split()
    assert int(frozen) > 10_000  # Django and the app, not a handful of objects
    assert application_in_sight == "False"

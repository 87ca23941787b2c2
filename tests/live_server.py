"""The app served by a real daphne process, for browser tests and anything that needs HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"Listening on TCP address [\d.]+:(\d+)")


@dataclass(frozen=True)
class LiveServer:
    url: str
    log_path: Path
    pid: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL for the database the test run created, so daphne uses the same one."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if user else ""
        host = settings_dict.get("HOST") or "localhost"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"no DATABASE_URL for {engine}")


def server_environment(
    *,
    data_dir: Path,
    static_root: Path,
    db_url: str,
    secret_key: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a production-like process: the real settings module, DEBUG off."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_")) and key not in {"DATABASE_URL"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secret_key,
            "DATA_DIR": str(data_dir),
            "STATIC_ROOT": str(static_root),
            "DATABASE_URL": db_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@contextmanager
def daphne_process(
    env: Mapping[str, str], log_path: Path, timeout: float = 30, port: int = 0
) -> Iterator[LiveServer]:
    """Run daphne (``python -m chatsite.serve chatsite.asgi:application``) on a loopback port (a
    free one unless given) until the block ends."""
    # Collected once per static root: the files do not change during a test run.
    if not (Path(env["STATIC_ROOT"]) / "staticfiles.json").exists():
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=BASE_DIR,
            env=dict(env),
            check=True,
        )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatsite.serve",  # daphne, on the event loop it runs on in production
                "-e",
                f"tcp:port={port}:interface=127.0.0.1",
                "chatsite.asgi:application",
            ],
            cwd=BASE_DIR,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_until_listening(process, log_path, timeout)
        yield LiveServer(url=url, log_path=log_path, pid=process.pid)
    finally:
        process_stop(process)


def process_stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the process to end (daphne then interrupts its replies), and kill it if it has not
    within 10 s."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_listening(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{log_path.read_text()}")
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            # Listening is not the same as answering: wait for the first real page.
            try:
                if httpx.get(f"{url}/accounts/login/", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"daphne did not answer within {timeout} s:\n{log_path.read_text()}")

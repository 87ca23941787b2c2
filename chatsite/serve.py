"""`python -m chatsite.serve [daphne's options] chatsite.asgi:application`: daphne, on uvloop's
event loop.

daphne runs Twisted's asyncio reactor on an event loop it makes when its server module is first
imported, unless a reactor is installed already: this installs one on uvloop's loop first, then
hands the command line to daphne. uvloop runs the worker's callbacks, timers and socket polling
in C; at 50 concurrent replies the first token came about a millisecond sooner, and its 99th
percentile about half as late (docs/performance.md, ninth round).

``EVENT_LOOP=asyncio`` runs daphne on asyncio's own loop instead, as plain ``daphne`` does; it
is also what runs where uvloop is not installed (it is not built for Windows).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_choice(setting: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop ``setting`` (EVENT_LOOP) names, "" for the default: its name, and what
    makes one. Raises ValueError, saying why, for a name that is not one of EVENT_LOOPS."""
    if setting not in ("", *EVENT_LOOPS):
        raise ValueError(
            f"EVENT_LOOP={setting!r} is not an event loop; use one of: {', '.join(EVENT_LOOPS)}."
        )
    if setting == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if setting == "uvloop":
            raise ValueError("EVENT_LOOP=uvloop, but uvloop is not installed here.") from None
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


def main() -> None:
    try:
        name, new_event_loop = event_loop_choice(os.environ.get("EVENT_LOOP", ""))
    except ValueError as error:
        sys.exit(f"chatsite.serve: {error}")
    # Before daphne's server module is imported: it keeps an asyncio reactor installed already.
    from twisted.internet import asyncioreactor

    loop = new_event_loop()
    if "ASGI_THREADS" in os.environ:  # as daphne does for the loop it would have made
        loop.set_default_executor(ThreadPoolExecutor(max_workers=int(os.environ["ASGI_THREADS"])))
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    print(f"chatsite.serve: daphne on {name}'s event loop", file=sys.stderr, flush=True)
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()

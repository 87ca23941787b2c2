"""The worker's garbage collector, told what the worker loaded for good.

From time to time Python's collector goes through every object that can hold others (a full
collection), and the worker does nothing else meanwhile: no token is relayed, no first token
sent. Most of those objects are what the worker loaded at start (Django, the app and their
modules, about 100,000 objects), and none of them will ever be garbage. Measured while replies
streamed (docs/performance.md, thirteenth round), full collections paused the worker for
45–200 ms; with what was loaded at start frozen, for a fraction of that.
"""

from __future__ import annotations

import gc


def collector_settle() -> None:
    """Once the worker's code is loaded: collect what loading left behind (frozen garbage would
    never be freed), then move everything else to the permanent generation, which the
    collector never goes through again. Objects made later are collected as always."""
    gc.collect()
    gc.freeze()

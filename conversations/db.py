"""A typed ``database_sync_to_async``: channels ships no type hints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def db(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` (which uses the ORM) in the thread Django's database code expects,
    closing stale connections around it, from async code."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(function))

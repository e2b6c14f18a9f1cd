"""Data loaded and committed once for a whole test module (loading all of MQM is the slow part of those
modules), then emptied: each test still runs in its own transaction, rolled back after it."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from django.core.management import call_command

T = TypeVar("T")


def committed_for_module(django_db_blocker, load: Callable[[], T]) -> Iterator[T]:
    """For a module-scoped fixture (`yield from`): commit what `load` writes, give its result to the
    module's tests, and afterwards empty every table, or later tests would meet this module's rows."""
    with django_db_blocker.unblock():
        try:
            result = load()
        except BaseException:
            call_command("flush", interactive=False, verbosity=0)
            raise
    try:
        yield result
    finally:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)

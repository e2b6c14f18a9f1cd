"""Base class for ErrorMap commands: domain errors become a clean CommandError (exit 1, no traceback)."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ErrorMapError


class ErrorMapCommand(BaseCommand):
    """Subclasses implement `run(**options)` instead of `handle`."""

    # The checks run once at deploy and in the test suite; every command paying ~0.7 s for them is waste.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options):
        try:
            return self.run(*args, **options)
        except ErrorMapError as exc:
            raise CommandError(str(exc)) from exc

    def run(self, *args, **options):  # pragma: no cover - abstract
        raise NotImplementedError

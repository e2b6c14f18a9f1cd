"""Base class for ErrorMap commands: domain errors become a clean CommandError (exit 1, no traceback);
reports print as one JSON object or a short summary."""
from __future__ import annotations

import json
from collections.abc import Callable

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

    def write_report(self, report: dict, *, as_json: bool, summary: Callable[[dict], str]) -> None:
        """Print a report as one JSON object, or as its human-readable summary."""
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) if as_json else summary(report))


def format_statistic(value: float | None) -> str:
    """A statistic to three decimals for summaries; "n/a" where it is undefined."""
    return "n/a" if value is None else f"{value:.3f}"

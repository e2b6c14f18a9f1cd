"""Base class for the commands of both apps: domain errors become a clean CommandError (exit 1, no
traceback); reports print as one JSON object or a short summary."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ErrorMapError


class JsonReport(Protocol):
    """A frozen report of a read or a stage that gives its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...


Report = TypeVar("Report", bound=JsonReport | dict[str, Any])


class ErrorMapCommand(BaseCommand):
    """Subclasses implement `run(**options)` instead of `handle`."""

    # The checks run once at deploy and in the test suite; every command paying ~0.7 s for them is waste.
    requires_system_checks: tuple[str, ...] = ()

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.run(*args, **options)
        except ErrorMapError as exc:
            raise CommandError(str(exc)) from exc

    def run(self, *args: Any, **options: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_report(self, report: Report, *, as_json: bool, summary: Callable[[Report], str]) -> None:
        """Print a report as one JSON object, or as its human-readable summary."""
        if not as_json:
            self.stdout.write(summary(report))
            return
        data = report if isinstance(report, dict) else report.to_dict()
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))


def format_statistic(value: float | None) -> str:
    """A statistic to three decimals for summaries; "n/a" where it is undefined."""
    return "n/a" if value is None else f"{value:.3f}"


def render_summary(rows: list[dict[str, Any]]) -> str:
    """The failure summary (selectors.failure_summary) as a fixed-width table; names are printed as
    data, never interpreted."""
    header = f"{'dataset':30} {'model':28} {'predictions':>11} {'failures':>8} {'share':>6} {'threshold':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        threshold = "-" if r["threshold"] is None else f"{r['threshold']:.3g}"
        lines.append(
            f"{r['dataset'][:30]:30} {r['model'][:28]:28} {r['predictions']:11d} {r['failures']:8d} "
            f"{r['failure_share']:6.1%} {threshold:>9}"
        )
    total_p = sum(r["predictions"] for r in rows)
    total_f = sum(r["failures"] for r in rows)
    lines.append(f"{'total':59} {total_p:11d} {total_f:8d} {(total_f / total_p if total_p else 0):6.1%}")
    return "\n".join(lines)

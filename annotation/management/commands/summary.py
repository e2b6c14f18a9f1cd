"""manage.py summary — failures per dataset and model, and how many were false failures, as a table or JSON."""
import json as json_module
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandParser

from annotation.selectors import failure_summary
from server.commands import ErrorMapCommand, render_summary
from taxonomy.core.signatures import FalseFailureRate
from taxonomy.services.signatures import false_failures_by_dataset_and_model


class Command(ErrorMapCommand):
    help = ("Print predictions, failures and the failure threshold per dataset and model, and the false-failure "
            "rate per dataset (labelled failures judged 'Not an error' or 'Broken item or bad reference').")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--taxonomy", help="NAME[@VERSION] whose labels give the false-failure rates "
                                               "(default: per source, the version with its labels)")

    def run(self, *args: Any, json: bool, taxonomy: str | None, **options: Any) -> None:
        rows = failure_summary()
        false_failures = false_failures_by_dataset_and_model(taxonomy=taxonomy)
        if json:
            for row in rows:
                row["false_failures"] = {
                    source: {"taxonomy_version": found["taxonomy_version"],
                             **_rate(found["rates"][(row["dataset"], row["model"])])}
                    for source, found in false_failures.items()
                    if (row["dataset"], row["model"]) in found["rates"]}
            self.stdout.write(json_module.dumps(rows, indent=2))
            return
        self.stdout.write(render_summary(rows))
        if false_failures:
            self.stdout.write("")
            self.stdout.write(render_false_failures(false_failures))


def _rate(rate: FalseFailureRate) -> dict[str, Any]:
    found = asdict(rate)
    found.pop("group")
    return found


def render_false_failures(false_failures: dict[str, dict[str, Any]]) -> str:
    """Per source and dataset: labelled failures, how many were judged not an error / a broken item."""
    header = f"{'false failures':14} {'dataset':30} {'labelled':>8} {'false':>6} {'rate':>6}  95% CI"
    lines = [header, "-" * len(header)]
    for source, found in false_failures.items():
        for dataset, r in sorted(found["datasets"].items()):
            lines.append(f"{source:14} {dataset[:30]:30} {r.labelled_failures:8d} {r.false_failures:6.3g} "
                         f"{r.rate:6.1%}  [{r.ci_low:.1%}, {r.ci_high:.1%}]")
    versions = ", ".join(f"{source}: {found['taxonomy_version']}" for source, found in false_failures.items())
    lines.append(f"(labels read from {versions}; a failure one of two annotators calls not an error counts 0.5)")
    return "\n".join(lines)

"""manage.py sample_failures — apply the failure rule and draw a reproducible, stratified work set."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.errors import ErrorMapError
from annotation.services.sampling import sample_failures
from server.commands import ErrorMapCommand


def _threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise ErrorMapError(f"--threshold expects DATASET=NUMBER, got {text!r}") from None


class Command(ErrorMapCommand):
    help = "Flag failures (score < threshold; default 0.7 x the dataset's mean) and sample them per (model, dataset)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ratio", type=float, default=0.1, help="share of each stratum's failures (default 0.1)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--dataset", action="append", default=[], help="repeatable")
        parser.add_argument("--model", action="append", default=[], help="repeatable")
        parser.add_argument("--name", help="work set name (default derived from ratio, seed and filters)")
        parser.add_argument(
            "--threshold", action="append", default=[], metavar="DATASET=VALUE",
            help="fix a dataset's success threshold (kept for later runs)",
        )

    def run(self, *args: Any, ratio: float, seed: int, dataset: list[str], model: list[str], name: str | None,
            threshold: list[str], **options: Any) -> None:
        report = sample_failures(
            ratio=ratio, seed=seed, datasets=dataset, models=model, name=name,
            thresholds=dict(_threshold(t) for t in threshold),
        )
        for s in report.strata:
            self.stdout.write(f"{s.dataset:32} {s.model:28} {s.failures:6} failures -> {s.sampled:5} sampled")
        verb = "created" if report.created else "unchanged (already drawn; a work set never changes)"
        self.stdout.write(self.style.SUCCESS(f"work set {report.work_set}: {report.sampled} failures, {verb}"))
        if report.differs_from_a_new_draw:
            self.stdout.write(
                f"note: results changed since it was drawn; a new draw with these parameters would differ in "
                f"{report.differs_from_a_new_draw} failures (draw one under another --name to include them)")

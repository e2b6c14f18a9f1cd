"""manage.py anchoring_report — how much seeing the judge's pre-label sways people (mixed projects)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from annotation.management.work_set_command import WorkSetCommand
from annotation.services.anchoring import anchoring_report
from server.commands import format_statistic

LABELS = {"judge_match": "people = judge", "gold_accuracy": "people = gold", "alpha": "alpha (people)"}


class Command(WorkSetCommand):
    help = ("Assisted vs blind tasks of a work set's mixed Label Studio project: the rate at which people's "
            "labels equal the judge's, their accuracy against gold, inter-annotator alpha, each with a 95% "
            "interval, and the assisted - blind difference (bootstrap over items).")
    taxonomy_help = "NAME or NAME@N when the work set has mixed projects under several versions"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
        parser.add_argument("--seed", type=int, default=0)

    def run(self, *args: Any, **o: Any) -> None:
        report = anchoring_report(work_set=o["work_set"], taxonomy=o["taxonomy"], reps=o["reps"], seed=o["seed"])
        self.write_report(report, as_json=o["json"], summary=summary)


def _interval(statistic: dict[str, Any]) -> str:
    if statistic["value"] is None:
        return f"n/a ({statistic['reason']})"
    ci = statistic["ci95"]
    text = format_statistic(statistic["value"])
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{text} (no interval: {statistic['reason']})"


def summary(report: dict[str, Any]) -> str:
    """The report as a short table: one row per statistic, assisted, blind and the difference."""
    arms = report["arms"]
    lines = [
        f"work set {report['work_set']} · {report['taxonomy_version']} · projects {report['projects']}",
        (f"tasks: {report['tasks']['assisted']} assisted, {report['tasks']['blind']} blind; labels: "
         f"{arms['assisted']['n_labels']} assisted, {arms['blind']['n_labels']} blind"),
        f"95 % intervals: {report['method']} ({report['reps']} resamples, seed {report['seed']})",
        f"{'':16} {'assisted':>28} {'blind':>28} {'assisted - blind':>30}",
    ]
    for name, label in LABELS.items():
        lines.append(f"{label:16} {_interval(arms['assisted']['statistics'][name]):>28} "
                     f"{_interval(arms['blind']['statistics'][name]):>28} "
                     f"{_interval(report['differences'][name]):>30}")
    return "\n".join(lines)

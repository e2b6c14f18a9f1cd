"""manage.py judge_learning_curve — the judge's kappa with gold as it learns from more gold labels."""
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from server.commands import format_statistic as fmt
from taxonomy.charts import learning_curve_png
from taxonomy.management.gold_judge_command import GoldJudgeCommand
from taxonomy.services.refinement import judge_learning_curve


class Command(GoldJudgeCommand):
    help = ("The judge's agreement with gold (Cohen's kappa with a 95% bootstrap interval, cross-fitted over "
            "K folds) as a function of how many gold labels it may learn from: 0, then doubling, then all. "
            "Runs the judge itself (offline: no network). Prints a table or JSON; --plot writes a PNG.")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--plot", metavar="PATH.png", help="also draw the curve into this PNG file")

    def run(self, *args: Any, **o: Any) -> None:
        report = judge_learning_curve(taxonomy=o["taxonomy"], judge=o["judge"], model=o["model"],
                                      folds=o["folds"], reps=o["reps"])
        if o["plot"]:
            learning_curve_png(report["points"], Path(o["plot"]),
                               title=f"{report['judge']} on {report['taxonomy']} ({report['folds']} folds)")
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(report: dict[str, Any]) -> str:
    """The curve as a table."""
    heading = f"{report['judge']} on {report['taxonomy']}: {report['n_items']} gold items, {report['folds']} folds"
    lines = [heading + " (cross-fitted)", f"{'n_gold':>7}  {'kappa':>6}  95% interval      accuracy"]
    for p in report["points"]:
        ci = p["ci95"] or [None, None]
        lines.append(f"{p['n_gold']:>7}  {fmt(p['kappa']):>6}  [{fmt(ci[0])}, {fmt(ci[1])}]  {fmt(p['accuracy']):>8}")
    return "\n".join(lines)

"""manage.py judge_learning_curve — the judge's kappa with gold as it learns from more gold labels."""
from pathlib import Path

from annotation.core.crossfit import DEFAULT_FOLDS
from server.commands import ErrorMapCommand
from server.commands import format_statistic as fmt
from taxonomy.services.refinement import JUDGES, judge_learning_curve
from taxonomy.charts import learning_curve_png


class Command(ErrorMapCommand):
    help = ("The judge's agreement with gold (Cohen's kappa with a 95% bootstrap interval, cross-fitted over "
            "K folds) as a function of how many gold labels it may learn from: 0, then doubling, then all. "
            "Runs the judge itself (offline: no network). Prints a table or JSON; --plot writes a PNG.")

    def add_arguments(self, parser):
        parser.add_argument("--taxonomy", required=True, help="NAME[@VERSION] (default: the latest version)")
        parser.add_argument("--judge", default="offline", choices=JUDGES)
        parser.add_argument("--model", help="OpenAI model name (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="held-out folds (default 5)")
        parser.add_argument("--reps", type=int, default=1000, help="bootstrap resamples (default 1000)")
        parser.add_argument("--plot", metavar="PATH.png", help="also draw the curve into this PNG file")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, *args, **o):
        report = judge_learning_curve(taxonomy=o["taxonomy"], judge=o["judge"], model=o["model"],
                                      folds=o["folds"], reps=o["reps"])
        if o["plot"]:
            learning_curve_png(report["points"], Path(o["plot"]),
                               title=f"{report['judge']} on {report['taxonomy']} ({report['folds']} folds)")
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(report: dict) -> str:
    """The curve as a table."""
    heading = f"{report['judge']} on {report['taxonomy']}: {report['n_items']} gold items, {report['folds']} folds"
    lines = [heading + " (cross-fitted)", f"{'n_gold':>7}  {'kappa':>6}  95% interval      accuracy"]
    for p in report["points"]:
        ci = p["ci95"] or [None, None]
        lines.append(f"{p['n_gold']:>7}  {fmt(p['kappa']):>6}  [{fmt(ci[0])}, {fmt(ci[1])}]  {fmt(p['accuracy']):>8}")
    return "\n".join(lines)

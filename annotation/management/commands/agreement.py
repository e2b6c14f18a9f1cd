"""manage.py agreement — how far annotators agree (Krippendorff's alpha, kappas, AC1, with CIs)."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.models import Label
from annotation.selectors import LabelFilter, default_version
from annotation.selectors.agreement import AgreementReport, compute_agreement
from annotation.services.runs import stage_run
from server.commands import ErrorMapCommand
from server.commands import format_statistic as fmt


class Command(ErrorMapCommand):
    help = "Agreement among annotators on the label table: an item is (dataset, example_id, model)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", action="append", default=[], help="repeatable")
        parser.add_argument("--model", action="append", default=[], help="repeatable")
        parser.add_argument("--source", action="append", default=[],
                            help="label source(s) to compare (default human; repeatable)")
        parser.add_argument("--annotator", action="append", default=[], help="repeatable")
        parser.add_argument("--taxonomy",
                            help="NAME[@VERSION] (default: the version with the most matching labels; printed)")
        parser.add_argument("--depth", type=int, help="cut category paths to this depth first")
        parser.add_argument("--reps", type=int, default=1000, help="bootstrap resamples (default 1000)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--ci-method", default="units", choices=["units", "kalpha"])
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, *args: Any, **o: Any) -> None:
        label_filter = LabelFilter(datasets=tuple(o["dataset"]), models=tuple(o["model"]),
                                   sources=tuple(o["source"] or [Label.Source.HUMAN]),
                                   annotators=tuple(o["annotator"]), taxonomy=o["taxonomy"])
        choice = default_version(label_filter)
        self.stderr.write(f"taxonomy version {choice}")
        config = {**label_filter.as_config(), "taxonomy_version": str(choice.version), "depth": o["depth"],
                  "reps": o["reps"], "seed": o["seed"], "ci_method": o["ci_method"]}
        with stage_run("agreement", config) as run:  # the statistics are a read; the command is the run
            report = compute_agreement(label_filter=label_filter, version=choice.version, depth=o["depth"],
                                       reps=o["reps"], seed=o["seed"], ci_method=o["ci_method"])
            run.counts = {"n_items": report.n_items, "n_annotators": report.n_annotators,
                          "krippendorff_alpha": report.krippendorff_alpha}
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(report: AgreementReport) -> str:
    """A short human-readable summary of an agreement report."""
    ci = report.ci95
    lines = [
        (f"{report.taxonomy_version}: {report.n_items} items, {report.n_annotators} annotators,"
        f" values are {'single categories' if report.level == 'nominal' else 'category sets (MASI)'};"
        f" annotators worked {report.annotation_mode}"),
        f"Krippendorff's alpha {fmt(report.krippendorff_alpha)}"
        + (f"  95% CI [{ci[0]:.3f}, {ci[1]:.3f}] ({report.ci_method.split(':')[0]} bootstrap)"
           if ci else ""),
        (f"Fleiss' kappa {fmt(report.fleiss_kappa)}   Gwet's AC1 {fmt(report.gwet_ac1)}"
        f"   Brennan-Prediger {fmt(report.brennan_prediger)}"
        f"   percent agreement {fmt(report.percent_agreement)}"),
        "alpha by depth: " + ", ".join(f"{d}: {fmt(v)}" for d, v in report.per_depth.items()),
        "per category (alpha, category vs rest):",
    ]
    lines += [f"  {fmt(v):>7}  {name}" for name, v in report.per_category.items()]
    lines.append("per annotator (agreement with others, alpha without them):")
    lines += [f"  {name}: {a.n_items} items, {fmt(a.agreement_with_others)},"
              f" alpha without {fmt(a.alpha_without)}"
              for name, a in report.per_annotator.items()]
    vs_gold = {name: a for name, a in report.per_annotator_vs_gold.items() if a.n_items}
    if vs_gold:
        lines.append("per annotator against gold (exact-match accuracy, Cohen's kappa):")
        lines += [f"  {name}: {a.n_items} items, accuracy {fmt(a.accuracy)}, kappa {fmt(a.cohen_kappa)}"
                  for name, a in vs_gold.items()]
    disagreements = report.disagreements
    lines.append(f"annotators disagree on {disagreements.n_items} items"
                 + (f", e.g. {', '.join(i.item for i in disagreements.items[:5])}"
                    if disagreements.items else "") + " (listed in --json)")
    lines += [f"undefined: {name}: {reason}" for name, reason in report.undefined.items()]
    return "\n".join(lines)

"""manage.py judge_audit — the judge against the human majority and against gold."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.core.crossfit import DEFAULT_FOLDS
from annotation.selectors import LabelFilter
from annotation.selectors.judge_audit import (
    Comparison,
    CrossFitted,
    GoldComparison,
    JudgeAuditReport,
    NotCrossFitted,
    audit_judge,
)
from annotation.services.runs import stage_run
from server.commands import ErrorMapCommand
from server.commands import format_statistic as fmt


class Command(ErrorMapCommand):
    help = "Judge reliability: accuracy, kappa, per-category P/R/F1, confusion, calibration, effect on alpha."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--judge", action="append", default=[],
                            help="judge or human annotator name (repeatable; default every judge); a person "
                                 "is compared with gold and with the majority of the other annotators")
        parser.add_argument("--dataset", action="append", default=[], help="repeatable")
        parser.add_argument("--model", action="append", default=[], help="repeatable")
        parser.add_argument("--taxonomy", help="NAME[@VERSION] (default: the version shared by the most judge "
                            "and human labels; printed)")
        parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                            help="folds for the cross-fitted figure of a judge that learns from gold (default 5)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, *args: Any, **o: Any) -> None:
        label_filter = LabelFilter(datasets=tuple(o["dataset"]), models=tuple(o["model"]), taxonomy=o["taxonomy"])
        config = {**label_filter.as_config(), "judges": o["judge"], "folds": o["folds"]}
        with stage_run("judge_audit", config) as run:  # the audit itself is a read; the command is the run
            report = audit_judge(label_filter=label_filter, judges=tuple(o["judge"]), folds=o["folds"])
            run.config = {**config, "taxonomy_version": report.taxonomy_version}
            run.counts = {"judges": len(report.judges),
                          "items_with_human_labels": report.n_items_with_human_labels}
            run.save(update_fields=["config"])
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(report: JudgeAuditReport) -> str:
    """A short human-readable summary of a judge audit."""
    lines = [f"taxonomy version {report.taxonomy_version} ({report.taxonomy_version_chosen})",
             (f"{report.taxonomy_version}: humans worked {report.human_annotation_mode};"
              f" {report.n_items_with_human_labels} items with human labels,"
              f" {report.n_items_with_gold} with gold")]
    for judge, audit in report.judges.items():
        lines.append(f"{audit.kind} {judge}: {audit.n_items_judged} items labelled")
        for name, part in (("vs_human_majority", audit.vs_human_majority), ("vs_gold", audit.vs_gold)):
            if not isinstance(part, Comparison):
                lines.append(f"  {name}: {part.reason}")
                continue
            lines.append(f"  {name}: {part.n_items} items, accuracy {fmt(part.accuracy)},"
                         f" Cohen's kappa {fmt(part.cohen_kappa)},"
                         f" ECE {fmt(part.calibration.expected_calibration_error)}")
            crossfit = part.cross_fitting if isinstance(part, GoldComparison) else None
            if isinstance(crossfit, CrossFitted) and crossfit.accuracy is not None:
                lines.append(f"    cross-fitted over {crossfit.folds} folds {crossfit.items_per_fold}:"
                             f" accuracy {fmt(crossfit.accuracy)}, Cohen's kappa {fmt(crossfit.cohen_kappa)}")
            elif isinstance(crossfit, NotCrossFitted):
                lines.append(f"    cross-fitted: {crossfit.reason}")
        others = "the other humans" if audit.kind == "human" else "humans"
        lines.append(f"  alpha {others} {fmt(audit.alpha_humans)} -> with {judge}"
                     f" {fmt(audit.alpha_with_judge)}: {audit.judge_effect_on_alpha} alpha")
    return "\n".join(lines)

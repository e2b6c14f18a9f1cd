"""manage.py signatures: each model's (or dataset's) failure signature, or a two-model comparison."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from annotation.errors import ErrorMapError
from annotation.models import Label
from server.commands import ErrorMapCommand
from taxonomy.services.signatures import (
    GROUP_BYS,
    SOURCES,
    CorrectedSignatureReport,
    compare_groups,
    comparison_to_dict,
    corrected_signatures,
    failure_signatures,
)


class Command(ErrorMapCommand):
    help = "Failure signatures: share of each category in each model's (or dataset's) errors, with 95% intervals."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--by", choices=GROUP_BYS, default="model")
        parser.add_argument("--source", choices=SOURCES, default=Label.Source.JUDGE,
                            help="judge, human (all annotators pooled) or gold")
        parser.add_argument("--taxonomy", default=None, help="NAME or NAME@N (default: the one with most labels)")
        parser.add_argument("--depth", type=int, default=1)
        parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                            help="test which categories differ between A and B")
        parser.add_argument("--correct-with", choices=["gold"], default=None,
                            help="with --source judge: correct each share for the judge's errors using the gold "
                                 "subset (prediction-powered inference), shown beside the raw judge and gold-only "
                                 "shares")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, *args: Any, **o: Any) -> None:
        if o["correct_with"]:
            if o["source"] != "judge" or o["compare"]:
                raise ErrorMapError("--correct-with gold corrects judge signatures: use it with --source judge "
                                   "and without --compare")
            self.write_corrected(corrected_signatures(taxonomy=o["taxonomy"], by=o["by"], depth=o["depth"]),
                                 as_json=o["json"])
            return
        if o["compare"]:
            comparison = compare_groups(a=o["compare"][0], b=o["compare"][1], taxonomy=o["taxonomy"],
                                        source=o["source"], by=o["by"], depth=o["depth"])
            if o["json"]:
                self.stdout.write(json.dumps(comparison_to_dict(comparison), indent=2))
                return
            self.stdout.write(f"{comparison.group_a} (n={comparison.n_a}) vs {comparison.group_b} "
                              f"(n={comparison.n_b}); {comparison.method}")
            if comparison.omnibus_p is not None:
                self.stdout.write(f"omnibus chi-square = {comparison.omnibus_chi2:.2f}, df = {comparison.omnibus_df}, "
                                  f"p = {comparison.omnibus_p:.3g}")
            for d in comparison.categories:
                mark = "*" if d.significant else " "
                self.stdout.write(f"{mark} {d.category[:50]:50} {d.share_a:7.1%} {d.share_b:7.1%} "
                                  f"{d.difference:+7.1%}  p_holm={d.p_holm:.3g}  {d.test}")
            return
        report = failure_signatures(taxonomy=o["taxonomy"], source=o["source"], by=o["by"], depth=o["depth"])
        if o["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
            return
        self.stdout.write(f"{report.taxonomy_version}, source={report.source}, by {report.by}, depth {report.depth}; "
                          f"{report.interval_method}")
        false_failures = {f.group: f for f in report.false_failures}
        for signature in report.signatures:
            self.stdout.write(f"\n{signature.group}  ({signature.n_errors} errors)")
            found = false_failures.get(signature.group)
            if found is not None and found.false_failures:
                self.stdout.write(f"  false failures (not errors): {found.false_failures:.3g} of "
                                  f"{found.labelled_failures} labelled = {found.rate:.1%}")
            for s in signature.shares:
                self.stdout.write(f"  {s.category[:60]:60} {s.count:9.1f} {s.share:7.1%}  "
                                  f"[{s.ci_low:.1%}, {s.ci_high:.1%}]")

    def write_corrected(self, report: CorrectedSignatureReport, *, as_json: bool) -> None:
        data = report.to_dict()
        if as_json:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(f"{data['taxonomy_version']}, judge corrected with gold, by {data['by']}, "
                          f"depth {data['depth']}")
        self.stdout.write(f"corrected: {data['interval_method']['corrected']}")
        for signature in data["signatures"]:
            self.stdout.write(f"\n{signature['group']}  ({signature['n_judged']} judged errors, {signature['n_gold']} "
                              f"with gold, {signature['n_gold_without_judge']} gold without a judge label left out)")
            if signature["reason"]:
                self.stdout.write(f"  no correction: {signature['reason']}")
            self.stdout.write(f"  {'category':40} {'judge [95% CI] width':>30} {'gold only':>30} {'corrected':>30}")
            for share in signature["shares"]:
                cells = [_cell(share[name]) for name in ("judge", "gold", "corrected")]
                self.stdout.write(f"  {share['category'][:40]:40} " + " ".join(f"{c:>30}" for c in cells))


def _cell(value: dict[str, Any] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value['share']:.1%} [{value['ci_low']:.1%}, {value['ci_high']:.1%}] {value['width']:.3f}"

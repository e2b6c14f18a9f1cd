"""manage.py plan_annotation — the next items for people, where their labels teach the most."""
from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from annotation.management.work_set_command import WorkSetCommand
from annotation.services.planning import plan_annotation


class Command(WorkSetCommand):
    help = ("Pick the next N items of a work set for people (and how many people each): categories where the "
            "judge agrees poorly with gold or that have few gold labels or wide intervals, items where judges "
            "disagree, low-confidence judge labels. Each pick says why.")
    taxonomy_help = "NAME or NAME@N (default: the version with judge labels on the work set)"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--budget", type=int, required=True, help="items to pick")
        parser.add_argument("--depth", type=int, default=1, help="category depth the plan balances (default 1)")

    def run(self, *args: Any, **o: Any) -> None:
        report = plan_annotation(work_set=o["work_set"], budget=o["budget"], taxonomy=o["taxonomy"],
                                 depth=o["depth"])
        self.write_report(report.to_dict(), as_json=o["json"], summary=summary)


def summary(report: dict[str, Any]) -> str:
    """Categories by need, then the picks with overlap and reasons."""
    lines = [(f"work set {report['work_set']} · {report['taxonomy_version']} · depth {report['depth']}: "
             f"{len(report['picks'])} of {report['candidates']} candidate items picked, "
             f"{report['annotations']} annotations ({report['gold_items']} gold items so far; "
             f"{report['without_judge']} items without a judge label left out)"),
             "", f"{'category':40} {'need':>6} {'gold':>5} {'kappa':>7} {'share CI width':>15}"]
    for c in report["categories"]:
        kappa = "n/a" if c["kappa"] is None else f"{c['kappa']:.3f}"
        lines.append(f"{c['category'][:40]:40} {c['need']:6.3f} {c['n_gold']:5d} {kappa:>7} "
                     f"{c['gold_share_width']:15.3f}")
    lines += ["", f"{'#':>4} {'overlap':>7} {'score':>7}  item · why"]
    for n, p in enumerate(report["picks"], 1):
        lines.append(f"{n:4d} {p['overlap']:7d} {p['score']:7.3f}  {p['dataset']}:{p['example_id']} "
                     f"{p['model']} · " + "; ".join(p["reasons"]))
    return "\n".join(lines)

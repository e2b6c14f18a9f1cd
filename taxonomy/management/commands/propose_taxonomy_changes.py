"""manage.py propose_taxonomy_changes — add / merge / split / rewrite / retire proposals, with evidence."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.judging import JUDGES
from server.commands import ErrorMapCommand
from taxonomy.services.proposals import SOURCES, propose_taxonomy_changes


class Command(ErrorMapCommand):
    help = ("Propose changes to a taxonomy version from its labels (add, merge, split, rewrite, retire), "
            "each with its evidence; proposals are stored, nothing is applied (see accept_proposals).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--taxonomy", required=True, help="NAME[@VERSION] (default: the latest version)")
        parser.add_argument("--source", default="human", choices=SOURCES,
                            help="labels to read for add, split and retire (merge and rewrite always read "
                                 "the human annotators' confusion); default human")
        parser.add_argument("--judge", choices=JUDGES,
                            help="who writes a rewrite's description: openai asks the judge, offline keeps the "
                                 "rule's (default: ERRORMAP_JUDGE, offline)")
        parser.add_argument("--model", help="model name for the openai judge (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, *args: Any, **o: Any) -> None:
        report = propose_taxonomy_changes(taxonomy=o["taxonomy"], source=o["source"], judge=o["judge"],
                                          model=o["model"])
        self.write_report(report, as_json=o["json"], summary=summary_text)


def summary_text(report: dict[str, Any]) -> str:
    """One line per proposal: id, kind, categories, new name and the headline evidence."""
    lines = [f"{report['taxonomy']}: {len(report['proposals'])} proposal(s)"]
    for p in report["proposals"]:
        lines.append(f"#{p['id']} {p['kind']}: {', '.join(p['categories'])} -> {p['new_name']}"
                     f" ({headline(p['kind'], p['evidence'])})")
    lines.append("accept with: manage.py accept_proposals NAME ID [ID ...] --by WHO")
    return "\n".join(lines)


def headline(kind: str, e: dict[str, Any]) -> str:
    """The figure that triggered a proposal, in words."""
    if kind == "add":
        return f"{e['labels']} labels by {e['annotators']} annotator(s)"
    if kind == "merge":
        return (f"{e['share_of_disagreements']:.1%} of disagreements; alpha {e['alpha']:.3f} -> "
                f"{e['alpha_if_merged']:.3f} if merged")
    if kind == "split":
        return f"{e['members']} members, silhouette {e['silhouette']:.2f}"
    if kind == "rewrite":
        return f"per-category alpha {e['per_category_alpha']:.3f}"
    return f"nobody used it in {e['labels']} labels"

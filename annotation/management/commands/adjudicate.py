"""manage.py adjudicate — auto-gold where annotators agree, a queue for the rest, and resolving it."""
import json
from fractions import Fraction
from typing import Any

from django.core.management.base import CommandParser

from annotation.core.adjudication import RULES, AutoGoldRule
from annotation.errors import ErrorMapError
from annotation.selectors import LabelFilter
from annotation.services.adjudication import (
    adjudicate_labels,
    adjudication_queue,
    decision_history,
    report_dict,
    resolve_item,
)
from server.commands import ErrorMapCommand


def _share(text: str) -> Fraction:
    try:
        share = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ErrorMapError(f"--min-share expects a fraction like 2/3 or 0.75, got {text!r}") from None
    if not 0 < share <= 1:
        raise ErrorMapError("--min-share must be in (0, 1]")
    return share


class Command(ErrorMapCommand):
    help = ("Run the auto-gold rule (default), list the queue (--list), or resolve an item "
            "(--resolve ITEM --category PATH --by NAME --reason TEXT). ITEM is a queue id or "
            "DATASET|EXAMPLE_ID|MODEL.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rule", default="unanimous", choices=sorted(RULES))
        parser.add_argument("--min-share", help="override the rule's share, e.g. 2/3")
        parser.add_argument("--min-annotators", type=int, help="override the rule's minimum annotators")
        parser.add_argument("--allow-proposals", action="store_true",
                            help="do not send items with a proposed new category to a person")
        parser.add_argument("--dataset", action="append", default=[], help="repeatable")
        parser.add_argument("--model", action="append", default=[], help="repeatable")
        parser.add_argument("--taxonomy", help="NAME[@VERSION]")
        parser.add_argument("--list", action="store_true", help="print the open queue")
        parser.add_argument("--history", metavar="ITEM", help="print every decision on an item")
        parser.add_argument("--resolve", metavar="ITEM")
        parser.add_argument("--category", action="append", default=[], help="gold category path (repeatable)")
        parser.add_argument("--by", default="", help="who decides")
        parser.add_argument("--reason", default="", help="why")
        parser.add_argument("--json", action="store_true")

    def run(self, *args: Any, **o: Any) -> None:
        if o["resolve"]:
            d = resolve_item(item=o["resolve"], categories=o["category"], by=o["by"], reason=o["reason"],
                             taxonomy=o["taxonomy"])
            self._out({"decision": d.pk, "categories": d.categories, "decided_by": d.decided_by.name,
                       "reason": d.reason, "taxonomy_version": str(d.taxonomy_version)}, o["json"])
            return
        if o["history"]:
            self._out(decision_history(item=o["history"]), o["json"])
            return
        if o["list"]:
            self._out(adjudication_queue(taxonomy=o["taxonomy"]), o["json"])
            return
        base = RULES[o["rule"]]
        rule = AutoGoldRule(
            min_share=_share(o["min_share"]) if o["min_share"] else base.min_share,
            min_annotators=o["min_annotators"] or base.min_annotators,
            block_on_proposals=base.block_on_proposals and not o["allow_proposals"],
        )
        report = adjudicate_labels(label_filter=LabelFilter(datasets=tuple(o["dataset"]),
                                                            models=tuple(o["model"]),
                                                            taxonomy=o["taxonomy"]), rule=rule)
        self._out(report_dict(report), o["json"])

    def _out(self, data: dict[str, Any] | list[dict[str, Any]], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
        elif isinstance(data, dict):
            self.stdout.write("\n".join(f"{k}: {v}" for k, v in data.items()))
        else:
            for row in data:
                self.stdout.write(json.dumps(row, ensure_ascii=False))

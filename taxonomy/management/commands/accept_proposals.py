"""manage.py accept_proposals — accepted proposals make NAME@V+1 with a mapping for every category."""
import json
from typing import Any

from django.core.management.base import CommandParser

from server.commands import ErrorMapCommand
from taxonomy.services.proposals import accept_proposals


class Command(ErrorMapCommand):
    help = ("Accept taxonomy change proposals (ids from propose_taxonomy_changes): creates NAME@V+1 with a "
            "CategoryMapping for every category of V (kept, renamed, merged, split, retired -> Other) and "
            "prints the new version. V itself is never changed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("taxonomy", metavar="NAME", help="taxonomy name")
        parser.add_argument("ids", metavar="ID", nargs="+", type=int, help="proposal ids")
        parser.add_argument("--by", required=True, help="who accepts (kept with the version)")
        parser.add_argument("--reason", default="", help="why")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, *args: Any, **o: Any) -> None:
        report = accept_proposals(taxonomy=o["taxonomy"], ids=o["ids"], by=o["by"], reason=o["reason"])
        if o["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
            return
        changed = {p: m for p, m in report.mapping.items() if m["kind"] != "kept"}
        accepted = ", ".join(f"#{i}" for i in report.accepted)
        lines = [f"{report.taxonomy_version} (from {report.base_version}, proposals {accepted})"]
        for path, m in changed.items():
            lines.append(f"  {m['kind']}: {path} -> {', '.join(m['targets']) or '(nothing)'}")
        lines += [f"  added: {path}" for path in report.added]
        lines += [f"  rewritten: {path} (new description)" for path in report.rewritten]
        lines.append(f"  kept: {len(report.mapping) - len(changed)} categories")
        queue = report.relabel_work_set
        lines.append(f"re-labelling queue: {report.relabel_items} item(s)" + (
            f" with labels of a split category, in work set {queue}: the judge first "
            f"(analyze --work-set {queue}; prelabel --taxonomy {report.taxonomy_version} --work-set {queue}), "
            f"then people (push_labelstudio --work-set {queue} --taxonomy {report.taxonomy_version})"
            if queue else ""))
        self.stdout.write("\n".join(lines))

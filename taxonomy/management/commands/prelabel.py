"""manage.py prelabel — the judge labels failures with the categories of an existing taxonomy version."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.judging import JUDGES
from server.commands import ErrorMapCommand
from taxonomy.services.induction import prelabel_failures


class Command(ErrorMapCommand):
    help = (
        "Label every analysed failure of a work set (default: the most recent; without any, all "
        "failures) with a leaf category of TAXONOMY[@VERSION], as the judge (source=judge): offline by "
        "nearest category (TF-IDF) and nearest gold label, or with the openai judge's classify stage. "
        "Humans label against the same list. Re-running changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--taxonomy", required=True, help="NAME or NAME@VERSION (default: latest version)")
        parser.add_argument("--work-set", dest="work_set", help="work set name (default: the most recent)")
        parser.add_argument("--judge", choices=JUDGES, help="judge backend (default: ERRORMAP_JUDGE, offline)")
        parser.add_argument("--model", help="model name for the openai judge (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--relabel", action="store_true",
                            help="also replace labels this judge already gave in this version")

    def run(self, *args: Any, taxonomy: str, work_set: str | None, judge: str | None, model: str | None,
            relabel: bool, **options: Any) -> None:
        r = prelabel_failures(taxonomy=taxonomy, work_set=work_set, judge=judge, model=model, relabel=relabel)
        self.stdout.write(
            f"{r.taxonomy}@{r.version}, judge {r.judge}: {r.analysed} analysed failures labelled "
            f"({r.unanalysed} of {r.failures} without an ok analysis; {r.kept} kept their label); "
            f"{r.via_gold} by a gold neighbour, "
            f"{r.to_other} to Other"
        )
        self.stdout.write(self.style.SUCCESS(
            f"run #{r.run_id}: labels {r.labels_created} created, {r.labels_updated} updated, "
            f"{r.labels_unchanged} unchanged"
        ))

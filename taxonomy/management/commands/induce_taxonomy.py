"""manage.py induce_taxonomy — stages 2-4 of ErrorMap: a new taxonomy version from the judge's analyses."""
from typing import Any

from django.core.management.base import CommandParser

from annotation.services.judging import JUDGES
from server.commands import ErrorMapCommand
from taxonomy.core.induction import CATEGORY_CAP, DEFAULT_RARE_FREQ
from taxonomy.services.induction import induce_taxonomy


class Command(ErrorMapCommand):
    help = (
        "Induce a taxonomy version from the error titles of the judge's analyses (generate / update / "
        "review / classify with the openai judge; TF-IDF clustering offline), fold rare categories into "
        "Other, recurse into categories with more than 5 distinct titles, and give every analysed "
        "failure a judge label at its leaf. Re-running with the same inputs reuses the version."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="taxonomy name (created on first use)")
        parser.add_argument("--work-set", dest="work_set", help="work set name (default: the most recent)")
        parser.add_argument("--judge", choices=JUDGES, help="judge backend (default: ERRORMAP_JUDGE, offline)")
        parser.add_argument("--model", help="model name for the openai judge (default: ERRORMAP_JUDGE_MODEL)")
        parser.add_argument("--max-depth", dest="max_depth", type=int, default=2,
                            help="levels below the root (default 2)")
        parser.add_argument("--max-categories", dest="max_categories", type=int, default=None,
                            help=f"at most this many categories per level, instead of the method's "
                                 f"min({CATEGORY_CAP}, ceil(0.1 x errors)) (which allows 2 for 18 errors)")
        parser.add_argument("--rare-freq", dest="rare_freq", type=float, default=DEFAULT_RARE_FREQ,
                            help=f"categories with a smaller share of errors fold into Other "
                                 f"(default {DEFAULT_RARE_FREQ})")
        parser.add_argument("--seed", type=int, default=0, help="shuffles title batches and seeds clustering")

    def run(self, *args: Any, name: str, work_set: str | None, judge: str | None, model: str | None, max_depth: int,
            max_categories: int | None, rare_freq: float, seed: int, **options: Any) -> None:
        r = induce_taxonomy(
            name=name, work_set=work_set, judge=judge, model=model, max_depth=max_depth,
            max_categories=max_categories, rare_freq=rare_freq, seed=seed,
        )
        what = "reused (same inputs)" if r.reused else "created"
        self.stdout.write(
            f"{r.taxonomy}@{r.version} {what} by judge {r.judge}: {r.analysed} analysed failures "
            f"({r.unanalysed} of {r.failures} without an ok analysis), {r.distinct_titles} distinct titles"
        )
        self.stdout.write(f"{r.top_level} top-level categories, {r.categories} in all, {r.leaves} leaves")
        if r.usage.get("requests") or r.usage.get("cache_hits"):
            self.stdout.write(f"requests {r.usage.get('requests', 0)}, cache hits {r.usage.get('cache_hits', 0)}")
        if r.dropped:
            self.stdout.write(self.style.WARNING(
                f"{len(r.dropped)} proposed categories are not in the taxonomy:"))
            for d in r.dropped:
                where = f" (under {d['parent']})" if d["parent"] else ""
                self.stdout.write(f"  dropped {d['name']!r}{where}: {d['reason']}")
        for note in r.notes:
            self.stdout.write(self.style.WARNING(f"note: {note}"))
        self.stdout.write(self.style.SUCCESS(
            f"run #{r.run_id}: labels {r.labels_created} created, {r.labels_updated} updated, "
            f"{r.labels_unchanged} unchanged"
        ))

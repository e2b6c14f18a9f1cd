"""manage.py export_errors — the flat error table of a taxonomy version: one row per label, every depth."""
from pathlib import Path

from annotation.management.base import ErrorMapCommand
from taxonomy.services.exports import export_errors

SOURCES = ("judge", "human", "gold", "all")


class Command(ErrorMapCommand):
    help = (
        "Write one CSV row per label of NAME[@VERSION]: dataset, example, model, source, annotator, the "
        "category path and its level_1 … level_D names, confidence, error title and summary. "
        "The same data gives the same bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("taxonomy", help="NAME or NAME@VERSION (default: latest version)")
        parser.add_argument("out", type=Path, help="output .csv file")
        parser.add_argument("--source", choices=SOURCES, default="judge", help="which labels (default judge)")
        parser.add_argument("--annotator", help="only this annotator's labels (e.g. judge:offline)")

    def run(self, *args, taxonomy, out, source, annotator, **options):
        r = export_errors(taxonomy=taxonomy, out=out, source=source, annotator=annotator)
        self.stdout.write(self.style.SUCCESS(
            f"{r.taxonomy}@{r.version}: {r.labels} rows ({r.failures} failures) -> {r.path}"
        ))

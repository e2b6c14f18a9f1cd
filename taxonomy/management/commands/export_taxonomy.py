"""manage.py export_taxonomy — the tree of a taxonomy version as JSON (name, description, count, share, children)."""
from pathlib import Path

from annotation.management.base import ErrorMapCommand
from taxonomy.services.exports import export_taxonomy

SOURCES = ("judge", "human", "gold", "all")


class Command(ErrorMapCommand):
    help = (
        "Write the category tree of NAME[@VERSION] as JSON: each node with name, path, description, "
        "count (labelled failures in its subtree), share (of all labelled failures) and children. "
        "The same data gives the same bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("taxonomy", help="NAME or NAME@VERSION (default: latest version)")
        parser.add_argument("out", type=Path, help="output .json file")
        parser.add_argument("--source", choices=SOURCES, default="judge", help="which labels count (default judge)")
        parser.add_argument("--annotator", help="only this annotator's labels (e.g. judge:offline)")

    def run(self, *args, taxonomy, out, source, annotator, **options):
        r = export_taxonomy(taxonomy=taxonomy, out=out, source=source, annotator=annotator)
        self.stdout.write(self.style.SUCCESS(
            f"{r.taxonomy}@{r.version}: {r.categories} categories, {r.failures} failures ({r.labels} {source} labels) "
            f"-> {r.path}"
        ))

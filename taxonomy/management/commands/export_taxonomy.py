"""manage.py export_taxonomy — the tree of a taxonomy version as JSON (name, description, count, share, children)."""
from pathlib import Path
from typing import Any

from taxonomy.management.export_command import ExportCommand
from taxonomy.services.exports import export_taxonomy


class Command(ExportCommand):
    help = (
        "Write the category tree of NAME[@VERSION] as JSON: each node with name, path, description, "
        "count (labelled failures in its subtree), share (of all labelled failures) and children. "
        "The same data gives the same bytes."
    )

    out_help = "output .json file"
    source_help = "which labels count (default judge)"

    def run(self, *args: Any, taxonomy: str, out: Path, source: str, annotator: str | None, **options: Any) -> None:
        r = export_taxonomy(taxonomy=taxonomy, out=out, source=source, annotator=annotator)
        self.stdout.write(self.style.SUCCESS(
            f"{r.taxonomy}@{r.version}: {r.categories} categories, {r.failures} failures ({r.labels} {source} labels) "
            f"-> {r.path}"
        ))

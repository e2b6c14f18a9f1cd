"""manage.py export_errors — the flat error table of a taxonomy version: one row per label, every depth."""
from pathlib import Path
from typing import Any

from taxonomy.management.export_command import ExportCommand
from taxonomy.services.exports import export_errors


class Command(ExportCommand):
    help = (
        "Write one CSV row per label of NAME[@VERSION]: dataset, example, model, source, annotator, the "
        "category path and its level_1 … level_D names, confidence, error title and summary. "
        "The same data gives the same bytes."
    )

    out_help = "output .csv file"
    source_help = "which labels (default judge)"

    def run(self, *args: Any, taxonomy: str, out: Path, source: str, annotator: str | None, **options: Any) -> None:
        r = export_errors(taxonomy=taxonomy, out=out, source=source, annotator=annotator)
        self.stdout.write(self.style.SUCCESS(
            f"{r.taxonomy}@{r.version}: {r.labels} rows ({r.failures} failures) -> {r.path}"
        ))

"""manage.py ingest_results PATH… — load benchmark results (ErrorMap table, WMT23 MQM, BIG-Bench-Mistake)."""
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from annotation.core.result_formats import FORMATS
from annotation.services.ingest import ingest_results
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = "Ingest per-instance benchmark results; each file is all-or-nothing, re-ingesting changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="files or folders (searched recursively)")
        parser.add_argument("--dataset", help="dataset name when the file has no 'dataset' column")
        parser.add_argument("--format", dest="fmt", default="auto", choices=FORMATS)

    def run(self, *args: Any, paths: list[Path], dataset: str | None, fmt: str, **options: Any) -> None:
        report = ingest_results(paths=paths, dataset=dataset, fmt=fmt)
        for f in report.files:
            self.stdout.write(
                f"{f.path} [{f.format}]: {f.rows} rows, {f.created} new, {f.updated} updated, {f.unchanged} unchanged"
            )
        self.stdout.write(self.style.SUCCESS(f"ingested {report.rows} rows into {', '.join(report.datasets)}"))

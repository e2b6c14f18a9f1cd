"""manage.py export_gold PATH — the gold error set as JSONL or CSV, with a datasheet beside it."""
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from annotation.selectors import LabelFilter
from annotation.services.gold_export import FORMATS, export_gold
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = "Export gold items (input, output, reference, gold categories, labels, agreement, provenance)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", dest="fmt", default=None, choices=FORMATS,
                            help="default: from the file suffix, else jsonl")
        parser.add_argument("--dataset", action="append", default=[], help="repeatable")
        parser.add_argument("--model", action="append", default=[], help="repeatable")
        parser.add_argument("--taxonomy", help="NAME[@VERSION]")
        parser.add_argument("--with-notes", dest="with_notes", action="store_true",
                            help="add each annotator's notes and proposed new categories")

    def run(self, *args: Any, path: Path, fmt: str | None, dataset: list[str], model: list[str], taxonomy: str | None,
            with_notes: bool, **options: Any) -> None:
        fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        report = export_gold(path=path, fmt=fmt, with_notes=with_notes, label_filter=LabelFilter(
            datasets=tuple(dataset), models=tuple(model), taxonomy=taxonomy))
        self.stdout.write(f"{report.items} gold items -> {report.path} (sha256 {report.sha256[:12]}), "
                          f"datasheet {report.datasheet}")

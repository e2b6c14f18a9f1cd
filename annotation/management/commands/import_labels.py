"""manage.py import_labels PATH — labels from outside (long table, or the WMT23 MQM ratings) into the label table."""
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from annotation.core.label_formats import LABEL_FORMATS, LABEL_SOURCES
from annotation.services.label_import import import_labels
from server.commands import ErrorMapCommand


class Command(ErrorMapCommand):
    help = ("Import labels: columns dataset, example_id, model, annotator, category "
            "[, source, title, summary, confidence, note].")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--source", default="human", choices=LABEL_SOURCES)
        parser.add_argument(
            "--taxonomy",
            help="taxonomy NAME[@VERSION]; categories it lacks are added while nothing points at the version, "
                 "else NAME makes a new version with them (NAME@VERSION is refused)",
        )
        parser.add_argument("--format", dest="fmt", default="auto", choices=LABEL_FORMATS)

    def run(self, *args: Any, path: Path, source: str, taxonomy: str | None, fmt: str, **options: Any) -> None:
        report = import_labels(path=path, source=source, taxonomy=taxonomy, fmt=fmt)
        self.stdout.write(
            f"{report.path}: {report.rows} rows -> {report.label_sets} label sets in {report.taxonomy_version}: "
            f"{report.created} new, {report.updated} updated, {report.deleted} removed, {report.unchanged} unchanged"
        )
        if report.gold_decisions:
            self.stdout.write(
                f"recorded {report.gold_decisions} gold decisions (method import), superseding "
                f"{report.superseded_decisions} earlier ones; see adjudicate --history ITEM")
        if report.derived_from:
            self.stdout.write(
                f"made {report.taxonomy_version} from {report.derived_from} (labels point at {report.derived_from}, "
                "so its categories are fixed; each was mapped as kept)")
        if report.new_categories:
            self.stdout.write(f"added {len(report.new_categories)} categories: {', '.join(report.new_categories)}")

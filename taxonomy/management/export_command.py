"""The arguments both taxonomy exports take (export_taxonomy, export_errors): NAME[@VERSION], OUT, which labels."""
from pathlib import Path

from django.core.management.base import CommandParser

from annotation.models import Label
from server.commands import ErrorMapCommand
from taxonomy.services.exports import ALL

SOURCES = (*Label.Source.values, ALL)


class ExportCommand(ErrorMapCommand):
    """Subclasses set `out_help` and `source_help` and implement `run`."""

    out_help = "output file"
    source_help = "which labels (default judge)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("taxonomy", help="NAME or NAME@VERSION (default: latest version)")
        parser.add_argument("out", type=Path, help=self.out_help)
        parser.add_argument("--source", choices=SOURCES, default=Label.Source.JUDGE, help=self.source_help)
        parser.add_argument("--annotator", help="only this annotator's labels (e.g. judge:offline)")

"""The arguments anchoring_report and plan_annotation share: which work set, which taxonomy version, JSON or a table."""
from __future__ import annotations

from django.core.management.base import CommandParser

from server.commands import ErrorMapCommand


class WorkSetCommand(ErrorMapCommand):
    """A command reporting on one work set's labels in one taxonomy version."""

    taxonomy_help = "NAME or NAME@N"  # what the default version is, said by each command

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--work-set", required=True)
        parser.add_argument("--taxonomy", default=None, help=self.taxonomy_help)
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

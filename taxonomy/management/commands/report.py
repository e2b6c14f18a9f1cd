"""manage.py report OUT_DIR: a static HTML report (signatures, atlas, agreement) that opens offline."""
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from server.commands import ErrorMapCommand
from taxonomy.services.report import write_report


class Command(ErrorMapCommand):
    help = "Write a self-contained static HTML report of signatures, the ErrorAtlas and agreement."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--taxonomy", default=None, help="NAME or NAME@N (default: the one with most labels)")
        parser.add_argument("--depth", type=int, default=1, help="depth of the signatures")

    def run(self, *args: Any, out_dir: Path, taxonomy: str | None, depth: int, **options: Any) -> None:
        files = write_report(out_dir=out_dir, taxonomy=taxonomy, depth=depth)
        for name in files.pages:
            self.stdout.write(str(out_dir / name))
        for reason in files.skipped:
            self.stdout.write(f"skipped: {reason}")
        self.stdout.write(self.style.SUCCESS(f"report: {(out_dir / 'index.html').resolve().as_uri()}"))

"""Writing export files: one safe write (a clear error, never a traceback or half a file) and CSV cells
that a spreadsheet cannot run as formulas."""
from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from annotation.errors import ErrorMapError

# A spreadsheet runs a cell starting with these as a formula (CSV injection, OWASP); tab and CR too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_file(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` whole or not at all; any failure is an ErrorMapError naming the path.

    A regular file is written beside the target and renamed over it, so a reader (or a failure half-way)
    never sees part of it. A device or pipe (`/dev/stdout`, `/dev/full`) is written in place."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if path.is_dir():
            raise ErrorMapError(f"cannot write {path}: it is a directory; give a file name")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            with open(path, "wb") as handle:
                handle.write(payload)
            return
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644  # an export is for sharing
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ErrorMapError(f"cannot write {path}: {exc.strerror or exc}") from exc


def ensure_directory(path: Path) -> None:
    """Create output folder `path` if needed; an ErrorMapError if it is a file or cannot be made."""
    if path.exists() and not path.is_dir():
        raise ErrorMapError(f"cannot write into {path}: it is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ErrorMapError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def safe_cell(value: Any) -> Any:
    """A CSV cell as text a spreadsheet shows rather than runs: text starting with a formula character
    gets a leading apostrophe (`=1+1` -> `'=1+1`); numbers, and text that is just a number, stay."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A CSV document ('\\n' line ends) with every cell passed through safe_cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(cell) for cell in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()

"""WMT23 MQM: the raters' error rows (a TSV, plain or inside a .tar.gz), read as ratings and as results."""
from __future__ import annotations

import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.core.result_formats.io import (
    DEFAULT_LIMITS,
    InputLimits,
    ResultRow,
    checked_fields,
    decoded_lines,
)
from annotation.errors import InputError

WMT23_DEFAULT_DATASET = "wmt23-mqm-ende"
WMT23_REFERENCE_SYSTEM = "refA"
MAX_ARCHIVE_MEMBERS = 1_000
MQM_COLUMNS = ("system", "doc", "docSegId", "globalSegId", "rater", "source", "target", "category", "severity")
_SPAN_MARKS = re.compile(r"</?v>")


@dataclass(frozen=True, slots=True)
class MqmRating:
    """One MQM error row of one rater on one (system, segment) item."""

    line: int
    system: str
    segment: str
    rater: str
    source: str
    target: str
    category: str
    severity: str
    note: str = ""  # the rater's own comment on the error, when they wrote one (metadata "note")


def mqm_weight(category: str, severity: str) -> float:
    """MQM penalty of one error: Major 5, Minor 1, Minor Fluency/Punctuation 0.1, Non-translation 25."""
    if category.lower().startswith("non-translation"):
        return 25.0
    if severity == "Major":
        return 5.0
    if severity == "Minor":
        return 0.1 if category == "Fluency/Punctuation" else 1.0
    return 0.0


def read_mqm_ratings(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[MqmRating]:
    """Stream the MQM rows of the TSV (plain or inside a .tar.gz), without the HOTW attention checks."""
    for line_number, fields in _mqm_lines(path, limits):
        if fields[8] == "HOTW-test":
            continue
        target = _SPAN_MARKS.sub("", fields[6])
        checked_fields(path, line_number, {
            "system": fields[0], "globalSegId": fields[3], "rater": fields[4], "source": fields[5],
            "target": target, "category": fields[7], "severity": fields[8],
        }, names=("system", "globalSegId", "rater"))
        yield MqmRating(
            line=line_number,
            system=fields[0],
            segment=fields[3],
            rater=fields[4],
            source=fields[5],
            target=target,
            category=fields[7],
            severity=fields[8],
            note=_rater_note(fields[9] if len(fields) > 9 else ""),
        )


def _rater_note(metadata: str) -> str:
    """The free-text note a rater attached to an error (in the row's JSON metadata), else ""."""
    if '"note"' not in metadata:
        return ""
    try:
        note = json.loads(metadata).get("note")
    except (ValueError, AttributeError):
        return ""
    return " ".join(str(note).split()) if note else ""


def _archive_tsv(path: Path, archive: tarfile.TarFile, limits: InputLimits) -> tarfile.TarInfo:
    """The one .tsv member of the archive; headers are read one by one and their sizes counted, so
    an archive that would expand past the limit is refused before it is expanded."""
    found: list[tarfile.TarInfo] = []
    expanded = 0
    for count, member in enumerate(archive, start=1):
        expanded += member.size
        if expanded > limits.max_decompressed_bytes or count > MAX_ARCHIVE_MEMBERS:
            raise InputError(
                str(path), None,
                f"the archive expands to more than {limits.max_decompressed_bytes:,} bytes or "
                f"{MAX_ARCHIVE_MEMBERS:,} files (the limit; ERRORMAP_MAX_DECOMPRESSED_BYTES)",
            )
        if member.isfile() and member.name.endswith(".tsv"):
            found.append(member)
    if len(found) != 1:
        raise InputError(str(path), None, f"expected one .tsv in the archive, found {len(found)}")
    return found[0]


def _mqm_lines(path: Path, limits: InputLimits) -> Iterator[tuple[int, list[str]]]:
    archive = None
    try:
        if path.name.lower().endswith((".tar.gz", ".tgz")):
            archive = tarfile.open(path, "r:gz")  # noqa: SIM115 (closed below, after the lines are read)
            binary = archive.extractfile(_archive_tsv(path, archive, limits))
            if binary is None:
                raise InputError(str(path), None, "the MQM TSV in the archive is not a regular file")
        else:
            binary = path.open("rb")
    except (OSError, tarfile.TarError, EOFError, zlib.error, InputError) as exc:
        if archive is not None:
            archive.close()
        if isinstance(exc, InputError):
            raise
        raise InputError(str(path), None, f"cannot read the archive ({exc})") from None
    try:
        for line_number, text in enumerate(decoded_lines(path, binary, limits), start=1):
            fields = text.rstrip("\r\n").split("\t")
            if line_number == 1:
                if tuple(fields[:9]) != MQM_COLUMNS:
                    raise InputError(str(path), 1, f"expected MQM columns {', '.join(MQM_COLUMNS)}")
                continue
            if len(fields) < 9:
                raise InputError(str(path), line_number, f"expected at least 9 tab-separated fields, got {len(fields)}")
            yield line_number, fields
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise InputError(str(path), None, f"cannot read the archive ({exc})") from None
    finally:
        binary.close()
        if archive is not None:
            archive.close()


def read_wmt23_mqm(path: Path, dataset: str | None, limits: InputLimits = DEFAULT_LIMITS) -> Iterator[ResultRow]:
    """One row per (system, segment): score = -(mean over raters of the MQM penalty), so higher is better.

    The file is ordered by rater rows, so items are gathered first (1,040 items: small and fixed).
    """
    dataset = dataset or WMT23_DEFAULT_DATASET
    items: dict[tuple[str, str], dict] = {}
    for rating in read_mqm_ratings(path, limits):
        item = items.setdefault(
            (rating.system, rating.segment),
            {"source": rating.source, "target": rating.target, "penalty": {}},
        )
        penalty = item["penalty"]
        penalty[rating.rater] = penalty.get(rating.rater, 0.0) + mqm_weight(rating.category, rating.severity)
    references = {seg: item["target"] for (system, seg), item in items.items() if system == WMT23_REFERENCE_SYSTEM}
    def order(kv: tuple[tuple[str, str], Any]) -> tuple[str, int | str]:  # by system, then segment number
        (system, segment), _ = kv
        return system, int(segment) if segment.isdigit() else segment

    for (system, segment), item in sorted(items.items(), key=order):
        penalties = item["penalty"].values()
        yield ResultRow(
            dataset=dataset,
            example_id=segment,
            model=system,
            input_text=item["source"],
            output_text=item["target"],
            score=-round(sum(penalties) / len(penalties), 6),
            reference=references.get(segment, ""),
        )

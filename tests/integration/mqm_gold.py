"""The WMT23 MQM ratings as a gold set: ingested, the three raters' labels imported, and gold made by
the two-thirds auto rule (two of three raters giving the same categories): human labels as gold."""
from __future__ import annotations

from pathlib import Path

from django.core.management import call_command

MQM = (Path(__file__).resolve().parents[2] / "data" / "wmt23-mqm-ende"
       / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz")
TAXONOMY = "wmt23-mqm"


def load_mqm_gold(*, judge: bool = True) -> None:
    """Ingest, import, adjudicate; with `judge`, the offline judge analyses and pre-labels too."""
    quiet = {"stdout": _Null(), "stderr": _Null()}
    call_command("ingest_results", str(MQM), **quiet)
    call_command("import_labels", str(MQM), **quiet)
    call_command("adjudicate", "--rule", "two-thirds", "--taxonomy", TAXONOMY, **quiet)
    if judge:
        call_command("analyze", "--judge", "offline", **quiet)
        call_command("prelabel", "--taxonomy", TAXONOMY, "--judge", "offline", **quiet)


class _Null:
    def write(self, *_args) -> None:
        pass

    def flush(self) -> None:
        pass

"""MQM's `No-error` is imported as the verdict `Not an error`: counted apart from error categories,
so proposals never merge an error category into it."""
from __future__ import annotations

import csv
import io
import json
import tarfile
from collections import Counter

import pytest
from django.core.management import call_command

from annotation.core.label_formats import read_mqm_labels
from annotation.models import Label
from taxonomy.core.verdicts import NOT_AN_ERROR
from tests.integration.mqm_gold import MQM, TAXONOMY, load_mqm_gold


def raw_no_error_rows() -> int:
    """Rows of the file rated No-error (attention checks aside), counted straight from the archive."""
    with tarfile.open(MQM, "r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".tsv"))
        rows = csv.reader(io.TextIOWrapper(archive.extractfile(member), encoding="utf-8"), delimiter="\t",
                          quoting=csv.QUOTE_NONE)
        next(rows)
        return sum(1 for row in rows if row[7] == "No-error" and row[8] != "HOTW-test")


def test_no_error_rows_are_read_as_the_not_an_error_verdict():
    paths = Counter(row.category for row in read_mqm_labels(MQM))
    assert "No-error" not in paths
    assert paths[NOT_AN_ERROR] == raw_no_error_rows() > 0


@pytest.mark.django_db
def test_proposals_on_mqm_never_touch_the_verdict():
    load_mqm_gold(judge=False)
    assert not Label.objects.filter(category__path="No-error").exists()
    assert Label.objects.filter(category__path=NOT_AN_ERROR, category__parent=None, source="human").exists()
    out = io.StringIO()
    call_command("propose_taxonomy_changes", "--taxonomy", TAXONOMY, "--json", stdout=out)
    proposals = json.loads(out.getvalue())["proposals"]
    assert {p["kind"] for p in proposals} >= {"merge", "rewrite"}
    touched = {c for p in proposals for c in p["categories"]} | {p["new_name"] for p in proposals}
    assert NOT_AN_ERROR not in touched and "No-error" not in touched

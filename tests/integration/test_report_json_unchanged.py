"""The JSON of `agreement` and `judge_audit` (commands and API) on the bundled data equals what the code
wrote before the reads became selectors returning dataclasses (tests/data/report-json/demo.json.gz).

The file was written by this test at d9f68ba, when both reads still returned dicts from services:
`ERRORMAP_WRITE_REPORT_JSON=1 pytest tests/integration/test_report_json_unchanged.py` rewrites it.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

EXPECTED = Path(__file__).resolve().parents[1] / "data" / "report-json" / "demo.json.gz"

pytestmark = pytest.mark.django_db


def command_json(name: str, *args: str) -> Any:
    out = io.StringIO()
    call_command(name, "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def without_ids(report: Any) -> Any:
    """Prediction ids in the disagreement lists follow the database's sequences (PostgreSQL does not
    roll them back between tests): the listed items are compared by their key, in id order."""
    if isinstance(report, dict):
        report = {k: without_ids(v) for k, v in report.items()}
        if report.get("disagreements"):
            items = report["disagreements"]["items"]
            ids = [item["id"] for item in items]
            assert ids == sorted(ids)
            report["disagreements"]["items"] = [{k: v for k, v in item.items() if k != "id"} for item in items]
    return report


def test_agreement_and_judge_audit_json_are_what_they_were():
    cache.clear()
    call_command("run_demo", "--no-labelstudio", stdout=io.StringIO())
    call_command("adjudicate", "--taxonomy", "wmt23-mqm@1", stdout=io.StringIO())
    outputs: dict[str, Any] = {
        "agreement": command_json("agreement", "--reps", "50"),
        "agreement_judge_and_humans": command_json(
            "agreement", "--reps", "50", "--source", "judge", "--source", "human", "--depth", "1",
            "--ci-method", "kalpha"),
        "judge_audit": command_json("judge_audit"),
    }
    rater = min(outputs["agreement"]["per_annotator"])
    outputs["judge_audit_of_a_rater"] = command_json("judge_audit", "--judge", rater)
    api = APIClient()
    token = Token.objects.create(user=get_user_model().objects.create_user("api-user"))
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    # The API answers with the commands' JSON.
    assert api.get("/api/agreement/", {"reps": 50}).json() == outputs["agreement"]
    assert api.get("/api/judge-audit/").json() == outputs["judge_audit"]
    outputs = {name: without_ids(report) for name, report in outputs.items()}
    if os.environ.get("ERRORMAP_WRITE_REPORT_JSON"):
        EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        EXPECTED.write_bytes(gzip.compress((json.dumps(outputs, indent=1) + "\n").encode(), mtime=0))
    expected = json.loads(gzip.decompress(EXPECTED.read_bytes()))
    for name, report in outputs.items():
        # Same keys in the same order, same values, all the way down.
        assert json.dumps(report) == json.dumps(expected[name]), name
    # The vs-gold and cross-fitting parts were reached, so they are compared too.
    judge = outputs["judge_audit"]["judges"]["judge:offline"]
    assert judge["vs_gold"]["n_items"] > 0 and "cross_fitting" in judge["vs_gold"]
    assert outputs["judge_audit_of_a_rater"]["judges"][rater]["kind"] == "human"

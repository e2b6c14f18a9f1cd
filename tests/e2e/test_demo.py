"""The README's main job: the demo pipeline on the bundled data, run twice."""
from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Label, Prediction, WorkSet

pytestmark = pytest.mark.django_db


def test_demo_runs_end_to_end_and_a_second_run_changes_nothing():
    out = StringIO()
    call_command("run_demo", stdout=out)
    text = out.getvalue()
    assert "ingested 3226 predictions from 6 files into 6 datasets" in text
    assert "bbm_word_sorting" in text and "wmt23-mqm-ende" in text
    counts = (Prediction.objects.count(), Label.objects.count(), WorkSet.objects.get(name="demo").failures.count())
    assert counts[0] == 3226 and counts[1] > 0 and counts[2] > 0
    call_command("run_demo", stdout=StringIO())
    assert (Prediction.objects.count(), Label.objects.count(), WorkSet.objects.get(name="demo").failures.count()) == counts

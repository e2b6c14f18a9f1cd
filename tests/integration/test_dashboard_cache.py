"""The dashboard's counts are cached under the prediction and label tables' change markers: every write
that changes what it shows (ingest, re-ingest flipping flags, sampling with a threshold, deletion, a row
saved in place, label writes) is seen on the next request, equal to a fresh computation."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from annotation.changes import LABELS, PREDICTIONS, change_marker
from annotation.models import Dataset, Prediction
from annotation.services.ingest import ingest_results
from annotation.services.labels import LabelEntry, LabelSet, get_annotator, replace_label_sets
from annotation.services.sampling import sample_failures
from tests.integration.agreement_factories import make_version

pytestmark = pytest.mark.django_db
HEADER = "example_id,model,input_text,output_text,score,correct_answer,dataset\n"


def results(tmp_path: Path, name: str, scores: dict[str, float], dataset: str = "d") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{e},m,q {e},o,{s},r,{dataset}\n" for e, s in scores.items()))
    return path


@pytest.fixture
def client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("viewer"))
    return client


def shown(client: Client) -> tuple[dict, list]:
    """What the dashboard renders: the headline counts and the datasets table."""
    context = client.get("/").context
    return context["overview"], context["datasets"]


def fresh(client: Client) -> tuple[dict, list]:
    cache.clear()
    return shown(client)


@pytest.fixture
def ingested(tmp_path, client):
    # Mean 0.75, threshold 0.7 x mean = 0.525: e0 fails.
    ingest_results(paths=[results(tmp_path, "a.csv", {"e0": 0, "e1": 1, "e2": 1, "e3": 1})])
    overview, datasets = shown(client)
    assert (overview["predictions"], overview["failures"]) == (4, 1)
    assert [(d["name"], d["predictions"], d["failures"], round(d["threshold"], 6)) for d in datasets] == [
        ("d", 4, 1, 0.525)]
    return tmp_path


def test_a_repeat_is_a_cache_read_of_the_same_values(ingested, client):
    first = shown(client)
    assert shown(client) == first == fresh(client)


def test_new_results_are_seen(ingested, client):
    ingest_results(paths=[results(ingested, "b.csv", {"e0": 0, "e1": 1}, dataset="other")])
    overview, datasets = shown(client)
    assert (overview["predictions"], overview["datasets"]) == (6, 2)
    assert (overview, datasets) == fresh(client)


def test_reingest_flipping_failure_flags_is_seen(ingested, client):
    marker = change_marker(PREDICTIONS)
    # Same rows, e0 now scores 1: no row added or removed, e0 no longer fails.
    ingest_results(paths=[results(ingested, "a.csv", {"e0": 1, "e1": 1, "e2": 1, "e3": 1})])
    assert change_marker(PREDICTIONS) != marker  # no row added or removed: only the change log can tell
    overview, datasets = shown(client)
    assert overview["failures"] == 0 and datasets[0]["failures"] == 0
    assert (overview, datasets) == fresh(client)


def test_sampling_with_a_threshold_flipping_flags_is_seen(ingested, client):
    sample_failures(ratio=1, seed=0, name="all", thresholds={"d": 1.5})  # every score is below 1.5
    overview, datasets = shown(client)
    assert overview["failures"] == 4 and datasets[0] == {"name": "d", "predictions": 4, "failures": 4,
                                                          "threshold": 1.5}
    assert (overview, datasets) == fresh(client)


def test_deleting_a_dataset_is_seen(ingested, client):
    ingest_results(paths=[results(ingested, "b.csv", {"e0": 0, "e1": 1}, dataset="other")])
    assert shown(client)[0]["predictions"] == 6
    Dataset.objects.filter(name="other").delete()  # as the admin's delete does (cascades to predictions)
    overview, datasets = shown(client)
    assert overview["predictions"] == 4 and [d["name"] for d in datasets] == ["d"]
    assert (overview, datasets) == fresh(client)


def test_a_prediction_saved_in_place_is_seen(ingested, client):
    prediction = Prediction.objects.get(example__example_id="e1")
    prediction.is_failure = True  # as an admin edit does: one row saved, nothing added or removed
    prediction.save()
    overview, datasets = shown(client)
    assert overview["failures"] == 2 and datasets[0]["failures"] == 2
    assert (overview, datasets) == fresh(client)


def test_label_writes_are_seen(ingested, client):
    version = make_version(["R / Logic", "R / Arithmetic"])
    categories = dict(version.categories.values_list("path", "pk"))
    failure = Prediction.objects.get(example__example_id="e0")
    person = get_annotator("rater")
    marker = change_marker(LABELS)
    replace_label_sets([LabelSet(failure.pk, version.pk, "human", person.pk, (LabelEntry(categories["R / Logic"]),))])
    assert change_marker(LABELS) != marker
    overview, _ = shown(client)
    assert overview["labels"] == {"judge": 0, "human": 1, "gold": 0}
    assert shown(client) == fresh(client)
    replace_label_sets([LabelSet(failure.pk, version.pk, "human", person.pk, ())])  # removed again
    assert shown(client)[0]["labels"] == {"judge": 0, "human": 0, "gold": 0}

"""`agreement --json` on the WMT23 MQM ratings, checked against values computed here from the raw TSV."""
from __future__ import annotations

import csv
import io
import json
import tarfile
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from unittest import mock

import krippendorff
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from krippendorff import krippendorff as krippendorff_module
from sklearn.metrics import cohen_kappa_score

from annotation.core.agreement import masi_distance
from annotation.models import StageRun
from annotation.services.ingest import ingest_results
from annotation.services.label_import import import_labels
from tests.module_data import committed_for_module

MQM = (Path(__file__).resolve().parents[2] / "data" / "wmt23-mqm-ende"
       / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz")

pytestmark = pytest.mark.django_db


def raw_sets() -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    """(system, globalSegId) -> rater -> set of MQM categories, read straight from the archive."""
    with tarfile.open(MQM, "r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".tsv"))
        text = io.TextIOWrapper(archive.extractfile(member), encoding="utf-8")
        rows = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)  # header
        sets: dict = defaultdict(lambda: defaultdict(set))
        for system, _doc, _doc_seg, seg, rater, _src, _tgt, category, severity, *_ in rows:
            if severity == "HOTW-test":  # attention checks with injected errors
                continue
            sets[(system, seg)][rater].add(category)
    return {item: {r: frozenset(c) for r, c in by.items()} for item, by in sets.items()}


def reliability(sets, cut=lambda c: c):
    """Raters x items of value indices (NaN where missing), the value list, and the raters."""
    raters = sorted({r for by in sets.values() for r in by})
    items = sorted(sets)
    values: dict[frozenset, int] = {}
    data = np.full((len(raters), len(items)), np.nan)
    for j, item in enumerate(items):
        for i, rater in enumerate(raters):
            if rater in sets[item]:
                value = frozenset(cut(c) for c in sets[item][rater])
                data[i, j] = values.setdefault(value, len(values))
    return data, list(values), raters


def masi_alpha_with_package(sets, cut=lambda c: c) -> float:
    data, values, _ = reliability(sets, cut)
    table = np.array([[masi_distance(a, b) for b in values] for a in values])

    def metric(v1, v2, i1, i2, n_v, dtype=np.float64):
        return table[np.asarray(v1, dtype=int), np.asarray(v2, dtype=int)]

    with mock.patch.object(krippendorff_module, "_coincidences", _package_coincidences_unit_by_unit):
        return krippendorff.alpha(reliability_data=data, value_domain=list(range(len(values))),
                                  level_of_measurement=metric)


_package_coincidences = krippendorff_module._coincidences


def _package_coincidences_unit_by_unit(value_counts, dtype=np.float64):
    """The package's own coincidence matrix, summed unit by unit over the values each unit has (the
    matrix is a sum over units, and a unit adds nothing to a cell of a value it lacks). At once, the
    package makes several units x values x values arrays: 1,040 items x 514 distinct sets is over 2 GB
    each, and that one call took most of a minute of the suite."""
    out = np.zeros((value_counts.shape[1],) * 2, dtype=dtype)
    for unit in value_counts:
        present = np.flatnonzero(unit)
        if len(present):
            out[np.ix_(present, present)] += _package_coincidences(unit[np.newaxis, present], dtype=dtype)
    return out


def binary_alpha_with_package(sets, category: str) -> float:
    raters = sorted({r for by in sets.values() for r in by})
    data = [[float(category in by[r]) if r in by else np.nan for by in (sets[i] for i in sorted(sets))]
            for r in raters]
    return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


@pytest.fixture(scope="module")
def mqm_labels(django_db_setup, django_db_blocker):
    """The raw MQM file imported (once for the module; each test's own changes are rolled back)."""
    def load() -> dict:
        ingest_results(paths=[MQM])
        import_labels(path=MQM)
        return raw_sets()

    yield from committed_for_module(django_db_blocker, load)


def agreement_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("agreement", "--json", "--reps", "200", *args, stdout=out)
    return json.loads(out.getvalue())


def test_agreement_json_matches_the_krippendorff_package_on_the_raw_mqm_file(mqm_labels):
    sets = mqm_labels
    report = agreement_json()
    # 104 segments x 10 systems, each rated by 3 of 10 raters.
    assert report["n_items"] == len(sets) == 1040
    assert report["n_annotators"] == 10
    assert report["level"] == "masi"  # raters often give several categories to one item
    assert report["krippendorff_alpha"] == pytest.approx(masi_alpha_with_package(sets), abs=1e-6)
    low, high = report["ci95"]
    assert low < report["krippendorff_alpha"] < high
    assert report["ci_method"].startswith("units")
    # MQM's No-error is imported as the verdict "Not an error" (a rename: the same alpha).
    for category, path in (("No-error", "Not an error"), ("Accuracy/Mistranslation", "Accuracy / Mistranslation"),
                           ("Fluency/Punctuation", "Fluency / Punctuation")):
        assert report["per_category"][path] == pytest.approx(
            binary_alpha_with_package(sets, category), abs=1e-6), category
    # Depth 1: 'Accuracy/Mistranslation' and 'Accuracy/Omission' both become 'Accuracy'.
    assert report["per_depth"]["1"] == pytest.approx(
        masi_alpha_with_package(sets, cut=lambda c: c.split("/")[0]), abs=1e-6)
    # Percent agreement: per item, the share of its 3 rater pairs with identical sets, averaged.
    shares = [np.mean([a == b for a, b in combinations(by.values(), 2)]) for by in sets.values()]
    assert report["percent_agreement"] == pytest.approx(float(np.mean(shares)), abs=1e-6)
    # Cohen's kappa of one pair, by scikit-learn on the items both rated (each distinct set one label).
    shared = [by for by in sets.values() if "rater1" in by and "rater2" in by]
    expected = cohen_kappa_score([str(sorted(by["rater1"])) for by in shared],
                                 [str(sorted(by["rater2"])) for by in shared])
    assert report["pairwise_cohen_kappa"]["rater1 | rater2"] == pytest.approx(expected, abs=1e-6)
    # Each rater's item count, straight from the file.
    counts = {r: sum(r in by for by in sets.values()) for r in {r for by in sets.values() for r in by}}
    assert {r: a["n_items"] for r, a in report["per_annotator"].items()} == counts
    assert report["annotation_mode"] == "unknown"  # imported, not from a Label Studio project
    assert StageRun.objects.filter(stage="agreement", status="succeeded").exists()


def test_filters_and_depth_change_what_is_compared(mqm_labels):
    sets = mqm_labels
    one_model = agreement_json("--model", "refA")
    assert one_model["n_items"] == 104
    depth_one = agreement_json("--depth", "1")
    assert set(depth_one["per_category"]) == {p.split(" / ")[0] for p in agreement_json()["per_category"]}
    assert depth_one["krippendorff_alpha"] == pytest.approx(
        masi_alpha_with_package(sets, cut=lambda c: c.split("/")[0]), abs=1e-6)
    with pytest.raises(CommandError, match="no labels match"):
        agreement_json("--source", "judge")
    with pytest.raises(CommandError, match="unknown taxonomy"):
        agreement_json("--taxonomy", "nope")

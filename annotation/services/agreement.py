"""Agreement over the label table: build items x annotators of category sets, then report.

An item is (dataset, example_id, model); an annotator's categories on an item form one value.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from annotation.core.agreement import PATH_SEPARATOR, RatingTable, agreement_report
from annotation.errors import ErrorMapError
from annotation.models import Annotator, Label, LabelStudioProject, LabelStudioTask
from annotation.services.runs import stage_run
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.versions import resolve_version

# A Prediction id: it stands for exactly one (dataset, example_id, model) (a unique key of Prediction).
Item = int


@dataclass(frozen=True)
class LabelFilter:
    """Which labels a statistic is computed over."""

    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    sources: tuple[str, ...] = (Label.Source.HUMAN,)
    annotators: tuple[str, ...] = ()
    taxonomy: str | None = None

    def as_config(self) -> dict[str, Any]:
        """JSON-ready description of the filter, for reports and stage runs."""
        return {"datasets": list(self.datasets), "models": list(self.models),
                "sources": [str(s) for s in self.sources], "annotators": list(self.annotators),
                "taxonomy": self.taxonomy}


def taxonomy_version_for(label_filter: LabelFilter) -> TaxonomyVersion:
    """The version named by the filter, or the only version its labels use (else a clear error)."""
    if label_filter.taxonomy:
        return resolve_version(label_filter.taxonomy)
    version_ids = sorted(set(
        _labels(label_filter, None).values_list("taxonomy_version_id", flat=True).distinct()))
    if not version_ids:
        raise ErrorMapError(f"no labels match {label_filter.as_config()}")
    if len(version_ids) > 1:
        names = ", ".join(str(v) for v in TaxonomyVersion.objects.filter(pk__in=version_ids))
        raise ErrorMapError(f"labels span several taxonomy versions ({names}); pick one with --taxonomy")
    return TaxonomyVersion.objects.get(pk=version_ids[0])


def _labels(label_filter: LabelFilter, version: TaxonomyVersion | None):
    labels = Label.objects.filter(source__in=label_filter.sources)
    if version is not None:
        labels = labels.filter(taxonomy_version=version)
    if label_filter.datasets:
        labels = labels.filter(prediction__example__dataset__name__in=label_filter.datasets)
    if label_filter.models:
        labels = labels.filter(prediction__model__name__in=label_filter.models)
    if label_filter.annotators:
        labels = labels.filter(annotator__name__in=label_filter.annotators)
    return labels


def label_sets(label_filter: LabelFilter, version: TaxonomyVersion,
               depth: int | None = None) -> dict[Item, dict[str, frozenset[str]]]:
    """item -> annotator -> set of category paths (cut to `depth` when given).

    Reads bare ids and maps them through small dictionaries: joins per label row are what made
    reading 300,000 labels slow.
    """
    paths = {pk: _cut(path, depth) for pk, path in
             Category.objects.filter(version=version).values_list("pk", "path")}
    rows = list(_labels(label_filter, version).values_list("prediction_id", "annotator_id", "category_id"))
    names = dict(Annotator.objects.filter(pk__in={a for _, a, _ in rows}).values_list("pk", "name"))
    sets: dict[Item, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for prediction_id, annotator_id, category_id in rows:
        sets[prediction_id][names[annotator_id]].add(paths[category_id])
    return {item: {a: frozenset(c) for a, c in by.items()} for item, by in sets.items()}


def _cut(path: str, depth: int | None) -> str:
    if depth is None:
        return path
    return PATH_SEPARATOR.join(path.split(PATH_SEPARATOR)[:depth])


def rating_table(sets: dict[Item, dict[str, frozenset[str]]]) -> RatingTable:
    """Items x annotators in a stable order (sorted), None where an annotator did not label."""
    items = sorted(sets)
    annotators = sorted({a for by in sets.values() for a in by})
    cells = [[sets[item].get(a) for a in annotators] for item in items]
    return RatingTable(items, annotators, cells)


def _n_categories(version: TaxonomyVersion, depth: int | None, observed: set[str]) -> int:
    """Categories an annotator could choose (leaves of the tree cut at `depth`), plus any observed."""
    paths = {_cut(p, depth) for p in Category.objects.filter(version=version)
             .values_list("path", flat=True)}
    leaves = {p for p in paths if not any(q.startswith(p + PATH_SEPARATOR) for q in paths)}
    return len(leaves | observed)


def annotation_mode(label_filter: LabelFilter, version: TaxonomyVersion) -> str:
    """'blind', 'assisted', 'mixed (...)' from the Label Studio projects the items were in; else 'unknown'."""
    prediction_ids = _labels(label_filter, version).values_list("prediction_id", flat=True)
    modes = set(
        LabelStudioTask.objects.filter(prediction_id__in=prediction_ids,
                                       project__taxonomy_version=version)
        .exclude(project__mode=LabelStudioProject.Mode.ADJUDICATION)
        .values_list("project__mode", flat=True))
    if not modes:
        return "unknown"
    return modes.pop() if len(modes) == 1 else f"mixed ({', '.join(sorted(modes))})"


def compute_agreement(
    *,
    label_filter: LabelFilter,
    depth: int | None = None,
    reps: int = 1000,
    seed: int = 0,
    ci_method: str = "units",
) -> dict[str, Any]:
    """Agreement among the filtered annotators as one JSON-ready dict (also recorded as a stage run)."""
    if depth is not None and depth < 1:
        raise ErrorMapError("--depth must be 1 or more")
    if ci_method not in ("units", "kalpha"):
        raise ErrorMapError(f"unknown CI method {ci_method!r} (units or kalpha)")
    version = taxonomy_version_for(label_filter)
    config = {**label_filter.as_config(), "taxonomy_version": str(version), "depth": depth,
              "reps": reps, "seed": seed, "ci_method": ci_method}
    with stage_run("agreement", config) as run:
        sets = label_sets(label_filter, version, depth)
        if not sets:
            raise ErrorMapError(f"no labels match {label_filter.as_config()} in {version}")
        table = rating_table(sets)
        observed = {c for by in sets.values() for cats in by.values() for c in cats}
        report = agreement_report(table, reps=reps, seed=seed, ci_method=ci_method,  # type: ignore[arg-type]
                                  n_categories=_n_categories(version, depth, observed))
        report = {
            "taxonomy_version": str(version),
            "filters": {**label_filter.as_config(), "depth": depth},
            "annotation_mode": annotation_mode(label_filter, version),
            **report,
        }
        run.counts = {"n_items": report["n_items"], "n_annotators": report["n_annotators"],
                      "krippendorff_alpha": report["krippendorff_alpha"]}
    return report

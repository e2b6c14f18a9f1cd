"""Agreement over the label table: build items x annotators of category sets, then report.

An item is (dataset, example_id, model); an annotator's categories on an item form one value.
Reports are cached under a fingerprint of what they are computed from, for the web pages.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from annotation.core.agreement import (
    CodedTable,
    RatingTable,
    accuracy_against_reference,
    agreement_report,
    disagreeing_items,
    table_from_labels,
)
from annotation.core.coded_tables import joined_by_column
from annotation.errors import ErrorMapError
from annotation.models import Annotator, Label, LabelStudioProject, LabelStudioTask, Prediction
from annotation.selectors import (
    LabelFilter,
    LabelRows,
    cached_by_labels,
    default_version,
    label_rows,
    select_labels,
    shared_read,
)
from taxonomy.core.paths import PATH_SEPARATOR, at_depth
from taxonomy.models import Category, TaxonomyVersion

# A Prediction id: it stands for exactly one (dataset, example_id, model) (a unique key of Prediction).
Item = int
DISAGREEMENTS_LISTED = 1000  # items listed by id in a report (all are counted)
ITEM_KEY_SEPARATOR = "|"  # DATASET|EXAMPLE_ID|MODEL, as `adjudicate --resolve` takes it


def label_table(label_filter: LabelFilter, version: TaxonomyVersion,
                depth: int | None = None) -> CodedTable:
    """Items x annotators of category sets (paths cut to `depth` when given), as integer arrays.

    Label rows are read as bare ids straight from the cursor and grouped in numpy: model
    instances, joins and a Python set per (item, annotator) are what made a million labels slow.
    Inside `shared_label_reads` a table is built once per filter and depth, and a table of several
    sources is joined from each source's own table (which the judge audit reads alone), so each
    label row goes into one table.
    """
    return shared_read(("table", version.pk, replace(label_filter, taxonomy=None), depth),
                       lambda: _table(label_filter, version, depth))


def _table(label_filter: LabelFilter, version: TaxonomyVersion, depth: int | None) -> CodedTable:
    if len(label_filter.sources) < 2:
        return table_of(label_rows(label_filter, version).ids, version, depth)
    one = [replace(label_filter, sources=(source,)) for source in label_filter.sources]
    rows = [label_rows(part, version) for part in one]
    annotators = [np.unique(part.ids[:, 1]) for part in rows]
    if len(np.unique(np.concatenate(annotators))) < sum(map(len, annotators)):
        # An annotator with labels from two sources: one cell holds the union of their sets.
        return table_of(LabelRows.joined(rows).ids, version, depth)
    return joined_by_column([_source_table(part, part_rows, version, depth) for part, part_rows in zip(one, rows)])


def _source_table(label_filter: LabelFilter, rows: LabelRows, version: TaxonomyVersion,
                  depth: int | None) -> CodedTable:
    """One source's table (from its rows, already read), shared as `label_table` of that filter."""
    return shared_read(("table", version.pk, replace(label_filter, taxonomy=None), depth),
                       lambda: table_of(rows.ids, version, depth))


def table_of(ids: np.ndarray[Any, Any], version: TaxonomyVersion, depth: int | None = None) -> CodedTable:
    """A CodedTable from label rows whose first three columns are (prediction, annotator, category) ids."""
    ids = ids[:, :3].astype(np.int64)
    paths = {pk: _cut(path, depth) for pk, path in
             Category.objects.filter(version=version).values_list("pk", "path")}
    names = dict(Annotator.objects.filter(pk__in=np.unique(ids[:, 1]).tolist())
                 .values_list("pk", "name"))
    return table_from_labels(ids[:, 0], ids[:, 1], ids[:, 2], annotator_names=names,
                             category_paths=paths)


def label_sets(label_filter: LabelFilter, version: TaxonomyVersion,
               depth: int | None = None) -> dict[Item, dict[str, frozenset[str]]]:
    """item -> annotator -> set of category paths (cut to `depth` when given)."""
    return dict(label_table(label_filter, version, depth).cells())


def _cut(path: str, depth: int | None) -> str:
    return path if depth is None else at_depth(path, depth)


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
    prediction_ids = select_labels(label_filter, version).values_list("prediction_id", flat=True)
    modes = set(
        LabelStudioTask.objects.filter(prediction_id__in=prediction_ids,
                                       project__taxonomy_version=version)
        .exclude(project__mode=LabelStudioProject.Mode.ADJUDICATION)
        .values_list("project__mode", flat=True))
    if not modes:
        return "unknown"
    return modes.pop() if len(modes) == 1 else f"mixed ({', '.join(sorted(modes))})"


@dataclass(frozen=True)
class DisagreeingItem:
    """An item two or more annotators labelled differently: its id, key and each annotator's categories."""

    id: int
    item: str  # DATASET|EXAMPLE_ID|MODEL
    labels: Mapping[str, list[str]]


@dataclass(frozen=True)
class Disagreements:
    """How many items the annotators disagree on, and the first of them by id."""

    n_items: int
    listed: int
    note: str
    items: tuple[DisagreeingItem, ...]


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals were resampled."""

    reps: int
    seed: int


@dataclass(frozen=True)
class AnnotatorAgreement:
    """One annotator against the others: items, pairs, mean agreement and kappa, and alpha without them
    (None where undefined; the reason is in the report's `undefined`)."""

    n_items: int
    n_pairs_with_others: int
    agreement_with_others: float | None
    mean_cohen_kappa: float | None
    alpha_without: float | None
    alpha_change_from_annotator: float | None  # positive: alpha is higher with this annotator


@dataclass(frozen=True)
class AccuracyVsGold:
    """One annotator against gold on the items both have: exact-match accuracy and Cohen's kappa (None,
    with the reason, where undefined)."""

    n_items: int
    accuracy: float | None
    cohen_kappa: float | None
    reason: str | None


@dataclass(frozen=True)
class AgreementReport:
    """Agreement among the filtered annotators (the `agreement --json` object, field for field, in order).

    A statistic that is undefined is None, with its reason in `undefined`; `confidence_intervals` holds
    [low, high] per statistic (krippendorff_alpha's is also `ci95`).
    """

    taxonomy_version: str
    filters: Mapping[str, Any]
    annotation_mode: str  # blind, assisted, mixed (...) or unknown
    level: str  # nominal (one category per rating) or masi (category sets)
    value_note: str
    krippendorff_alpha: float | None
    alpha_computed_by: str
    ci95: list[float] | None
    ci_method: str
    bootstrap: Bootstrap
    confidence_intervals: Mapping[str, list[float] | None]
    fleiss_kappa: float | None
    gwet_ac1: float | None
    brennan_prediger: float | None
    percent_agreement: float | None
    n_items: int
    n_items_with_labels: int
    n_annotators: int
    n_ratings: int
    n_categories: int
    n_categories_for_chance: int
    per_category: Mapping[str, float | None]
    per_annotator: Mapping[str, AnnotatorAgreement]
    pairwise_cohen_kappa: Mapping[str, float | None]
    per_depth: Mapping[str, float | None]
    undefined: Mapping[str, str]
    per_annotator_vs_gold: Mapping[str, AccuracyVsGold]
    per_annotator_vs_gold_note: str
    disagreements: Disagreements

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON-ready dict (what `agreement --json` and the API print)."""
        return asdict(self)


def compute_agreement(
    *,
    label_filter: LabelFilter,
    depth: int | None = None,
    reps: int = 1000,
    seed: int = 0,
    ci_method: str = "units",
    version: TaxonomyVersion | None = None,
) -> AgreementReport:
    """Agreement among the filtered annotators: a read (commands record the run)."""
    if depth is not None and depth < 1:
        raise ErrorMapError("--depth must be 1 or more")
    if ci_method not in ("units", "kalpha"):
        raise ErrorMapError(f"unknown CI method {ci_method!r} (units or kalpha)")
    version = version or default_version(label_filter).version
    config = {**label_filter.as_config(), "taxonomy_version": str(version), "depth": depth,
              "reps": reps, "seed": seed, "ci_method": ci_method}
    # Gold too: the report holds each annotator's accuracy against it.
    gold = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                       sources=(Label.Source.GOLD,))
    statistics = cached_by_labels("agreement", (label_filter, gold), version, sorted(config.items()),
                                  lambda: _statistics(label_filter, version, depth, reps, seed, ci_method))
    disagreements = statistics["disagreements"]
    return AgreementReport(
        taxonomy_version=str(version),
        filters={**label_filter.as_config(), "depth": depth},
        annotation_mode=annotation_mode(label_filter, version),
        **{**statistics,
           "bootstrap": Bootstrap(**statistics["bootstrap"]),
           "per_annotator": {name: AnnotatorAgreement(**part)
                             for name, part in statistics["per_annotator"].items()},
           "per_annotator_vs_gold": {name: AccuracyVsGold(**part)
                                     for name, part in statistics["per_annotator_vs_gold"].items()},
           "disagreements": Disagreements(
               **{**disagreements, "items": tuple(DisagreeingItem(**item) for item in disagreements["items"])})},
    )


def _statistics(label_filter: LabelFilter, version: TaxonomyVersion, depth: int | None, reps: int,
                seed: int, ci_method: str) -> dict[str, Any]:
    table = label_table(label_filter, version, depth)
    if not len(table.items):
        raise ErrorMapError(f"no labels match {label_filter.as_config()} in {version}")
    observed = set().union(*table.values)
    report = agreement_report(table, reps=reps, seed=seed, ci_method=ci_method,  # type: ignore[arg-type]
                              n_categories=_n_categories(version, depth, observed))
    gold_filter = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                              sources=(Label.Source.GOLD,))
    gold = _union_per_item(label_table(gold_filter, version, depth))
    report["per_annotator_vs_gold"] = accuracy_against_reference(table, gold)
    report["per_annotator_vs_gold_note"] = (
        "each annotator's category set against the gold set on the items both have: accuracy = exact "
        "match share; Cohen's kappa with each distinct set as one label (gold from adjudication; an "
        "annotator whose labels settled an item by the auto rule agrees with it by construction)")
    report["disagreements"] = _disagreements(table)
    return report


def _union_per_item(table: CodedTable) -> dict[Item, frozenset[str]]:
    """item -> the union of its annotators' sets (gold: the adjudicators' decisions on it together)."""
    if not len(table.items):
        return {}
    values, codes = table.values, table.codes
    # One annotator on an item (the usual gold): their set itself, no new set object per item.
    union = [values[c] for c in codes.max(axis=1).tolist()]
    for i in np.flatnonzero((codes >= 0).sum(axis=1) > 1).tolist():
        union[i] = frozenset().union(*(values[c] for c in codes[i].tolist() if c >= 0))
    return dict(zip(table.items.tolist(), union))


def _disagreements(table: CodedTable) -> dict[str, Any]:
    """Items two or more annotators labelled differently: the count, and the first ones by id with the
    item key (dataset|example_id|model) and each annotator's categories, for linking to the item."""
    ids = disagreeing_items(table).tolist()
    listed = sorted(ids)[:DISAGREEMENTS_LISTED]
    keys = {pk: ITEM_KEY_SEPARATOR.join((d, e, m)) for pk, d, e, m in Prediction.objects.filter(
        pk__in=listed).values_list("pk", "example__dataset__name", "example__example_id", "model__name")}
    rows = np.searchsorted(table.items, listed)  # table items are sorted ids

    def labels(row: int) -> dict[str, list[str]]:
        return {table.annotators[j]: sorted(table.values[c]) for j, c in enumerate(table.codes[row].tolist())
                if c >= 0}

    return {
        "n_items": len(ids),
        "listed": len(listed),
        "note": (f"items two or more annotators labelled with different category sets; the first "
                 f"{DISAGREEMENTS_LISTED} by id are listed"),
        "items": [{"id": pk, "item": keys.get(pk, ""), "labels": dict(sorted(labels(int(row)).items()))}
                  for pk, row in zip(listed, rows.tolist())],
    }

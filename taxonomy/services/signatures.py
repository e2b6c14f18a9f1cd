"""Failure signatures, model comparisons and the ErrorAtlas tree from the label table.

Labels are read once per (taxonomy version, source, filters) as four integer columns and counted
with the vectorised core; the result is cached under a fingerprint of the label rows (count, last
id, last update), so pages over a million labels stay fast and never show stale numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from django.db.models import Max

from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel, Label
from annotation.selectors import (
    ALL_SOURCES,
    LabelFilter,
    cached_by_labels,
    default_version,
    label_rows,
    prediction_groups,
    shared_read,
)
from taxonomy.core.paths import at_depth
from taxonomy.core.prediction_powered import (
    PPI_METHOD,
    CorrectedSignature,
    ItemShares,
    corrected_signature,
)
from taxonomy.core.signatures import (
    INTERVAL_METHOD,
    Comparison,
    FalseFailureRate,
    Heatmap,
    Signature,
    TreeNode,
    build_tree,
    compare_signatures,
    false_failure_rate,
    heatmap,
    item_category_weights,
    signature_from_counts,
    weighted_counts,
    wilson_interval,
)
from taxonomy.core.verdicts import NON_ERROR_VERDICTS
from taxonomy.models import Category, TaxonomyVersion

GroupBy = Literal["model", "dataset"]
SOURCES = ALL_SOURCES
GROUP_BYS = ("model", "dataset")
SOURCE_NOTES: dict[str, str] = {
    Label.Source.JUDGE: "judge labels (all judge annotators pooled)",
    Label.Source.HUMAN: "human labels, all annotators pooled (each failure counts once)",
    Label.Source.GOLD: "adjudicated gold labels",
}


@dataclass(frozen=True)
class SignatureReport:
    taxonomy_version: str
    source: str
    by: str
    depth: int
    max_depth: int
    interval_method: str
    signatures: list[Signature]
    heatmap: Heatmap
    # Verdicts (not an error, broken item) are counted here, never among the signatures' errors.
    false_failures: list[FalseFailureRate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy_version": self.taxonomy_version,
            "source": self.source,
            "source_note": SOURCE_NOTES[self.source],
            "by": self.by,
            "depth": self.depth,
            "max_depth": self.max_depth,
            "interval_method": self.interval_method,
            "signatures": [asdict(s) for s in self.signatures],
            "heatmap": asdict(self.heatmap),
            "false_failures": [asdict(f) for f in self.false_failures],
        }


@dataclass(frozen=True)
class AtlasReport:
    taxonomy_version: str
    source: str
    model: str | None
    dataset: str | None
    n_errors: int
    tree: TreeNode
    false_failures: FalseFailureRate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy_version": self.taxonomy_version,
            "source": self.source,
            "model": self.model,
            "dataset": self.dataset,
            "n_errors": self.n_errors,
            "tree": asdict(self.tree),
            "false_failures": asdict(self.false_failures) if self.false_failures else None,
        }


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ErrorMapError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
    return source


def signature_filter(*, source: str, taxonomy: str | TaxonomyVersion | None = None,
                     models: list[str] | None = None, datasets: list[str] | None = None) -> LabelFilter:
    """The labels a signature or atlas counts: one source, on predictions that are failures."""
    return LabelFilter(sources=(check_source(source),), models=tuple(models or ()),
                       datasets=tuple(datasets or ()), failures_only=True,
                       taxonomy=None if taxonomy is None else str(taxonomy))


def pick_version(label_filter: LabelFilter, taxonomy: str | TaxonomyVersion | None) -> TaxonomyVersion:
    """The version given as an object, else the shared default for the filter's labels."""
    if isinstance(taxonomy, TaxonomyVersion):
        return taxonomy
    return default_version(label_filter).version


def _columns(label_filter: LabelFilter, version: TaxonomyVersion) -> dict[str, np.ndarray[Any, Any]]:
    """Label columns as integer arrays (model, dataset, item, annotator, category ids)."""
    # Read through the mapping: on a derived version, the earlier version's labels count as mapped.
    # Inside shared_label_reads (the signatures page) read once for the signatures and their corrected form.
    # The labels are read alone (no join to predictions and examples, which visits the prediction table
    # at random) and grouped by model and dataset through one ordered read of the predictions; a label
    # whose prediction is filtered out (not a failure, another model or dataset) is dropped here.
    def read() -> dict[str, np.ndarray[Any, Any]]:
        rows = label_rows(replace(label_filter, datasets=(), models=(), failures_only=False), version)
        groups = prediction_groups(failures_only=label_filter.failures_only, models=label_filter.models,
                                   datasets=label_filter.datasets)
        found, at = groups.locate(rows.ids[:, 0])
        ids = rows.ids[found]
        return {"model": groups.model[at], "dataset": groups.dataset[at], "item": ids[:, 0],
                "annotator": ids[:, 1], "category": ids[:, 2]}
    return shared_read(("signature columns", version.pk, replace(label_filter, taxonomy=None)), read)


def _ancestor_ids(version: TaxonomyVersion, depth: int | None) -> tuple[dict[int, int], dict[int, str]]:
    """category id -> id of its ancestor at `depth` (itself when shallower), and id -> path."""
    rows = list(Category.objects.filter(version=version).values_list("pk", "path"))
    paths = dict(rows)
    if depth is None:
        return {pk: pk for pk in paths}, paths
    by_path = {path: pk for pk, path in rows}
    return {pk: by_path.get(at_depth(path, depth), pk) for pk, path in rows}, paths


def _check_grouping(by: str, depth: int) -> None:
    if by not in GROUP_BYS:
        raise ErrorMapError(f"--by must be one of {', '.join(GROUP_BYS)}, not {by!r}")
    if depth < 1:
        raise ErrorMapError("depth must be at least 1")


def max_depth(version: TaxonomyVersion) -> int:
    return Category.objects.filter(version=version).aggregate(d=Max("depth"))["d"] or 1


def failure_signatures(
    *,
    taxonomy: str | TaxonomyVersion | None = None,
    source: str = "judge",
    by: GroupBy = "model",
    depth: int = 1,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
) -> SignatureReport:
    """Each model's (or dataset's) share of errors per category at `depth`, with Wilson intervals."""
    _check_grouping(by, depth)
    label_filter = signature_filter(source=source, taxonomy=taxonomy, models=models, datasets=datasets)
    version = pick_version(label_filter, taxonomy)
    return cached_by_labels("signatures", (label_filter,), version, (by, depth),
                            lambda: _signature_report(label_filter, version, source, by, depth))


def _verdict_mask(version: TaxonomyVersion, categories: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """True where a label's category is a verdict (a top-level category named like one)."""
    ids = list(Category.objects.filter(version=version, depth=1, path__in=NON_ERROR_VERDICTS)
               .values_list("pk", flat=True))
    return np.isin(categories, ids)


def _all_labels_counted(columns: dict[str, np.ndarray[Any, Any]],
                        group: np.ndarray[Any, Any]) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """`weighted_counts` per group of every label, verdicts included (what false-failure rates count)."""
    return weighted_counts(group, columns["item"], columns["annotator"], columns["category"], None)


def _verdicts_counted(columns: dict[str, np.ndarray[Any, Any]], group: np.ndarray[Any, Any],
                      verdict: np.ndarray[Any, Any]) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """What `_false_failure_rates` reads of `_all_labels_counted`: when no label is a verdict, every
    verdict weight is 0 and only the labelled failures per group count, found without weighting."""
    if verdict.any() or not len(group):
        return _all_labels_counted(columns, group)
    failures = pd.Series(columns["item"]).groupby(group).nunique()
    return {str(g): int(n) for g, n in failures.items()}, {}


def _false_failure_rates(counted: tuple[dict[str, int], dict[str, dict[str, float]]], names: dict[str, Any],
                         paths: dict[int, str]) -> list[FalseFailureRate]:
    """Per group: labelled failures (any label) and the weight of their verdicts, sorted by group name
    (`counted`: `_all_labels_counted`)."""
    n_by_id, counts_by_id = counted
    return sorted((false_failure_rate(names[g], {paths[int(c)]: w for c, w in counts_by_id.get(g, {}).items()}, n)
                   for g, n in n_by_id.items()), key=lambda f: f.group)


def _errors_only(columns: dict[str, np.ndarray[Any, Any]],
                 verdict: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    return {name: values[~verdict] for name, values in columns.items()}


def _signature_report(label_filter: LabelFilter, version: TaxonomyVersion, source: str, by: GroupBy,
                      depth: int) -> SignatureReport:
    columns = _columns(label_filter, version)
    ancestor, paths = _ancestor_ids(version, depth)
    names = dict((EvaluatedModel if by == "model" else Dataset).objects.values_list("pk", "name"))
    verdict = _verdict_mask(version, columns["category"])
    false_failures = _false_failure_rates(_verdicts_counted(columns, columns[by], verdict),
                                          {str(k): v for k, v in names.items()}, _ancestor_ids(version, None)[1])
    columns = _errors_only(columns, verdict)
    categories = columns["category"]
    if len(categories):
        lookup = np.zeros(int(categories.max()) + 1, dtype=np.int64)
        for pk, target in ancestor.items():
            if pk < len(lookup):
                lookup[pk] = target
        categories = lookup[categories]
    n_by_id, counts_by_id = weighted_counts(columns[by], columns["item"], columns["annotator"], categories, None)
    signatures = sorted(
        (signature_from_counts(names[int(g)], {paths[int(c)]: w for c, w in counts_by_id.get(g, {}).items()}, n, depth)
         for g, n in n_by_id.items()),
        key=lambda s: s.group,
    )
    return SignatureReport(
        taxonomy_version=str(version),
        source=source,
        by=by,
        depth=depth,
        max_depth=max_depth(version),
        interval_method=INTERVAL_METHOD,
        signatures=signatures,
        heatmap=heatmap(signatures),
        false_failures=false_failures,
    )


@dataclass(frozen=True)
class CorrectedSignatureReport:
    """Judge signatures corrected by gold (prediction-powered), beside the raw judge and gold-only ones."""

    taxonomy_version: str
    by: str
    depth: int
    signatures: list[CorrectedSignature]

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy_version": self.taxonomy_version,
            "source": "judge",
            "correct_with": "gold",
            "by": self.by,
            "depth": self.depth,
            "population": "failures with a judge label; gold failures the judge never labelled are left out",
            "interval_method": {"judge": INTERVAL_METHOD + " (all judged failures)",
                                "gold": INTERVAL_METHOD.replace("failures in the group", "gold failures in the group"),
                                "corrected": PPI_METHOD},
            "signatures": [
                {"group": s.group, "n_judged": s.n_judged, "n_gold": s.n_gold,
                 "n_gold_without_judge": s.n_gold_without_judge, "reason": s.reason,
                 "shares": [{"category": c.category, "lam": c.lam,
                             **{name: None if value is None else {**asdict(value), "width": value.width}
                                for name, value in (("judge", c.judge), ("gold", c.gold),
                                                    ("corrected", c.corrected))}}
                            for c in s.shares]}
                for s in self.signatures],
        }


def corrected_signatures(
    *,
    taxonomy: str | TaxonomyVersion | None = None,
    by: GroupBy = "model",
    depth: int = 1,
    models: list[str] | None = None,
    datasets: list[str] | None = None,
) -> CorrectedSignatureReport:
    """Each group's judge signature corrected for the judge's errors with the gold subset (PPI)."""
    _check_grouping(by, depth)
    judge_filter = signature_filter(source=Label.Source.JUDGE, taxonomy=taxonomy, models=models,
                                    datasets=datasets)
    gold_filter = replace(judge_filter, sources=(Label.Source.GOLD,))
    version = pick_version(judge_filter, taxonomy)
    return cached_by_labels("corrected", (judge_filter, gold_filter), version, (by, depth),
                            lambda: _corrected_report(judge_filter, gold_filter, version, by, depth))


def _item_shares(label_filter: LabelFilter, version: TaxonomyVersion, by: GroupBy,
                 depth: int) -> dict[str, ItemShares]:
    columns = _columns(label_filter, version)
    # Verdicts (not an error; broken item) are left out as in the signatures beside these.
    columns = _errors_only(columns, _verdict_mask(version, columns["category"]))
    ancestor, paths = _ancestor_ids(version, depth)
    names = dict((EvaluatedModel if by == "model" else Dataset).objects.values_list("pk", "name"))
    categories = [paths[ancestor[int(c)]] for c in columns["category"]]
    return {names[int(g)]: ItemShares(tuple(int(i) for i in items), tuple(cats), matrix)
            for g, (items, cats, matrix) in item_category_weights(
                columns[by], columns["item"], columns["annotator"], categories).items()}


def _corrected_report(judge_filter: LabelFilter, gold_filter: LabelFilter, version: TaxonomyVersion,
                      by: GroupBy, depth: int) -> CorrectedSignatureReport:
    judge = _item_shares(judge_filter, version, by, depth)
    gold = _item_shares(gold_filter, version, by, depth)
    empty = ItemShares((), (), np.zeros((0, 0)))
    signatures = [corrected_signature(group, judge[group], gold.get(group, empty), interval=wilson_interval)
                  for group in sorted(judge)]
    return CorrectedSignatureReport(str(version), by, depth, signatures)


def compare_groups(
    *,
    a: str,
    b: str,
    taxonomy: str | TaxonomyVersion | None = None,
    source: str = "judge",
    by: GroupBy = "model",
    depth: int = 1,
    alpha: float = 0.05,
) -> Comparison:
    """Which categories' shares differ between two models (or datasets) beyond chance."""
    if a == b:
        raise ErrorMapError("pick two different groups to compare")
    report = failure_signatures(taxonomy=taxonomy, source=source, by=by, depth=depth)
    found = {s.group: s for s in report.signatures}
    for name in (a, b):
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise ErrorMapError(f"no {source} labels for {by} {name!r} in {report.taxonomy_version} (have: {known})")
    return compare_signatures(found[a], found[b], alpha=alpha)


def comparison_to_dict(comparison: Comparison) -> dict[str, Any]:
    return asdict(comparison)


def atlas(
    *,
    taxonomy: str | TaxonomyVersion | None = None,
    source: str = "judge",
    model: str | None = None,
    dataset: str | None = None,
) -> AtlasReport:
    """The ErrorAtlas tree of one taxonomy version: counts and shares per node from the chosen labels."""
    label_filter = signature_filter(source=source, taxonomy=taxonomy, models=[model] if model else None,
                                    datasets=[dataset] if dataset else None)
    version = pick_version(label_filter, taxonomy)
    return cached_by_labels("atlas", (label_filter,), version, (),
                            lambda: _atlas_report(label_filter, version, source, model, dataset))


def _atlas_report(label_filter: LabelFilter, version: TaxonomyVersion, source: str, model: str | None,
                  dataset: str | None) -> AtlasReport:
    columns = _columns(label_filter, version)
    categories = [(pk, path, description) for pk, path, description in Category.objects.filter(
        version=version).values_list("pk", "path", "description") if path not in NON_ERROR_VERDICTS]
    paths = {pk: path for pk, path, _ in categories}
    counted = _all_labels_counted(columns, np.zeros(len(columns["item"]), dtype=np.int64))
    false_failures = _false_failure_rates(counted, {"0": "all"}, _ancestor_ids(version, None)[1])
    verdict = _verdict_mask(version, columns["category"])
    if verdict.any():  # else the errors are every label, counted just above
        columns = _errors_only(columns, verdict)
        counted = _all_labels_counted(columns, np.zeros(len(columns["item"]), dtype=np.int64))
    n_errors, counts = counted
    total = n_errors.get("0", 0)
    tree = build_tree(
        {paths[int(c)]: w for c, w in counts.get("0", {}).items()},
        total,
        descriptions={path: description for _, path, description in categories},
        all_paths=[path for _, path, _ in categories],
    )
    return AtlasReport(
        taxonomy_version=str(version), source=source, model=model, dataset=dataset, n_errors=total, tree=tree,
        false_failures=false_failures[0] if false_failures else None,
    )


def false_failures_by_dataset_and_model(*, taxonomy: str | None = None) -> dict[str, dict[str, Any]]:
    """Per label source with labels on failures: the taxonomy version read and, per (dataset, model), the
    false-failure rate (labelled failures judged not an error or a broken item), for `summary`."""
    result: dict[str, dict[str, Any]] = {}
    for source in SOURCES:
        if not Label.objects.filter(source=source).exists():
            continue
        label_filter = signature_filter(source=source, taxonomy=taxonomy)
        try:
            version = pick_version(label_filter, taxonomy)
        except ErrorMapError:  # this source has labels, but none on a failure
            continue
        columns = _columns(label_filter, version)
        if not len(columns["item"]):
            continue
        pairs = sorted(set(zip(columns["dataset"].tolist(), columns["model"].tolist())))
        code = {pair: n for n, pair in enumerate(pairs)}
        group = np.array([code[pair] for pair in zip(columns["dataset"].tolist(), columns["model"].tolist())],
                         dtype=np.int64)
        datasets = dict(Dataset.objects.values_list("pk", "name"))
        models = dict(EvaluatedModel.objects.values_list("pk", "name"))
        names = {str(n): f"{datasets[d]}\x1f{models[m]}" for (d, m), n in code.items()}
        rates = {tuple(r.group.split("\x1f")): r for r in
                 _false_failure_rates(_verdicts_counted(columns, group, _verdict_mask(version, columns["category"])),
                                      names, _ancestor_ids(version, None)[1])}
        # A failure belongs to one (dataset, model), so a dataset's figures are sums over its models.
        per_dataset: dict[str, tuple[int, dict[str, float]]] = {}
        for (dataset, _), rate in sorted(rates.items()):
            n, verdicts = per_dataset.get(dataset, (0, {}))
            per_dataset[dataset] = (n + rate.labelled_failures,
                                    {v: verdicts.get(v, 0.0) + rate.by_verdict.get(v, 0.0)
                                     for v in NON_ERROR_VERDICTS})
        result[source] = {
            "taxonomy_version": str(version),
            "rates": rates,
            "datasets": {d: false_failure_rate(d, verdicts, n) for d, (n, verdicts) in per_dataset.items()},
        }
    return result

"""Failure signatures, model comparisons and the ErrorAtlas tree from the label table.

Labels are read once per (taxonomy version, source, filters) as four integer columns and counted
with the vectorised core; the result is cached under a fingerprint of the label rows (count, last
id, last update), so pages over a million labels stay fast and never show stale numbers.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max

from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel, Label
from taxonomy.core.signatures import (
    INTERVAL_METHOD,
    Comparison,
    Heatmap,
    Signature,
    TreeNode,
    build_tree,
    compare_signatures,
    heatmap,
    signature_from_counts,
    weighted_counts,
)
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.versions import resolve_version

GroupBy = Literal["model", "dataset"]
SOURCES = ("judge", "human", "gold")
GROUP_BYS = ("model", "dataset")
SOURCE_NOTES = {
    "judge": "judge labels (all judge annotators pooled)",
    "human": "human labels, all annotators pooled (each failure counts once)",
    "gold": "adjudicated gold labels",
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

    def to_dict(self) -> dict:
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
        }


@dataclass(frozen=True)
class AtlasReport:
    taxonomy_version: str
    source: str
    model: str | None
    dataset: str | None
    n_errors: int
    tree: TreeNode

    def to_dict(self) -> dict:
        return {
            "taxonomy_version": self.taxonomy_version,
            "source": self.source,
            "model": self.model,
            "dataset": self.dataset,
            "n_errors": self.n_errors,
            "tree": asdict(self.tree),
        }


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ErrorMapError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
    return source


def pick_version(taxonomy: str | TaxonomyVersion | None, source: str = "judge") -> TaxonomyVersion:
    """An explicit 'NAME[@N]', else the default taxonomy if it has labels, else the version with most labels."""
    if isinstance(taxonomy, TaxonomyVersion):
        return taxonomy
    if taxonomy:
        return resolve_version(taxonomy)
    versions = (
        TaxonomyVersion.objects.filter(labels__source=source)
        .annotate(n=Count("labels"))
        .select_related("taxonomy")
        .order_by("-n", "-pk")
    )
    for version in versions:
        if version.taxonomy.name == settings.ERRORMAP_DEFAULT_TAXONOMY:
            return version
    version = versions.first() or TaxonomyVersion.objects.select_related("taxonomy").order_by("-pk").first()
    if version is None:
        raise ErrorMapError("no taxonomy version yet: import labels or induce a taxonomy first")
    return version


def _labels(version: TaxonomyVersion, source: str, models: list[str] | None, datasets: list[str] | None):
    labels = Label.objects.filter(taxonomy_version=version, source=source, prediction__is_failure=True)
    if models:
        labels = labels.filter(prediction__model__name__in=models)
    if datasets:
        labels = labels.filter(prediction__example__dataset__name__in=datasets)
    return labels


def _columns(version: TaxonomyVersion, source: str, models, datasets) -> dict[str, list]:
    """Label columns (model, dataset, item, annotator, category id), cached under a fingerprint of the rows."""
    base = Label.objects.filter(taxonomy_version=version, source=source)
    mark = base.aggregate(n=Count("pk"), last=Max("pk"), changed=Max("updated_at"))
    fingerprint = repr((version.pk, source, sorted(models or []), sorted(datasets or []), *mark.values()))
    key = "errormap-labels-" + hashlib.sha256(fingerprint.encode()).hexdigest()
    columns = cache.get(key)
    if columns is None:
        rows = _labels(version, source, models, datasets).values_list(
            "prediction__model_id", "prediction__example__dataset_id", "prediction_id", "annotator_id", "category_id"
        )
        model_col, dataset_col, item_col, annotator_col, category_col = [], [], [], [], []
        for m, d, i, a, c in rows.iterator(chunk_size=20_000):
            model_col.append(m)
            dataset_col.append(d)
            item_col.append(i)
            annotator_col.append(a)
            category_col.append(c)
        columns = {"model": model_col, "dataset": dataset_col, "item": item_col,
                   "annotator": annotator_col, "category": category_col}
        cache.set(key, columns, 600)
    return columns


def _paths(version: TaxonomyVersion) -> dict[int, str]:
    return dict(Category.objects.filter(version=version).values_list("pk", "path"))


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
    check_source(source)
    if by not in GROUP_BYS:
        raise ErrorMapError(f"--by must be one of {', '.join(GROUP_BYS)}, not {by!r}")
    if depth < 1:
        raise ErrorMapError("depth must be at least 1")
    version = pick_version(taxonomy, source)
    columns = _columns(version, source, models, datasets)
    paths = _paths(version)
    names = dict((EvaluatedModel if by == "model" else Dataset).objects.values_list("pk", "name"))
    n_errors, counts = weighted_counts(
        [names[g] for g in columns[by]],
        columns["item"],
        columns["annotator"],
        [paths[c] for c in columns["category"]],
        depth,
    )
    signatures = [signature_from_counts(g, counts.get(g, {}), n, depth) for g, n in sorted(n_errors.items())]
    return SignatureReport(
        taxonomy_version=str(version),
        source=source,
        by=by,
        depth=depth,
        max_depth=max_depth(version),
        interval_method=INTERVAL_METHOD,
        signatures=signatures,
        heatmap=heatmap(signatures),
    )


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


def comparison_to_dict(comparison: Comparison) -> dict:
    return asdict(comparison)


def atlas(
    *,
    taxonomy: str | TaxonomyVersion | None = None,
    source: str = "judge",
    model: str | None = None,
    dataset: str | None = None,
) -> AtlasReport:
    """The ErrorAtlas tree of one taxonomy version: counts and shares per node from the chosen labels."""
    check_source(source)
    version = pick_version(taxonomy, source)
    columns = _columns(version, source, [model] if model else None, [dataset] if dataset else None)
    categories = list(Category.objects.filter(version=version).values_list("pk", "path", "description"))
    paths = {pk: path for pk, path, _ in categories}
    n = len(columns["item"])
    n_errors, counts = weighted_counts(
        [0] * n, columns["item"], columns["annotator"], [paths[c] for c in columns["category"]], None
    )
    total = n_errors.get("0", 0)
    tree = build_tree(
        counts.get("0", {}),
        total,
        descriptions={path: description for _, path, description in categories},
        all_paths=[path for _, path, _ in categories],
    )
    return AtlasReport(
        taxonomy_version=str(version), source=source, model=model, dataset=dataset, n_errors=total, tree=tree
    )

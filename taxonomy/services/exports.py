"""Exports of a taxonomy version with its labels: the tree as JSON and the flat error table as CSV.

Both are reproducible byte for byte: fixed key and row order, no timestamps, '\\n' line ends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from annotation.core.output_files import csv_text, write_file
from annotation.models import Label
from annotation.selectors import ALL_SOURCES, LabelFilter, select_labels
from taxonomy.core.paths import PATH_SEPARATOR, ROOT_NAME
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.versions import resolve_version

ROOT_DESCRIPTION = "All labelled errors."
ALL = "all"  # every source


@dataclass(frozen=True)
class ExportReport:
    path: str
    taxonomy: str
    version: int
    labels: int
    failures: int
    categories: int


def _labels(version: TaxonomyVersion, source: str, annotator: str | None) -> QuerySet[Label]:
    """The version's labels from one source (or "all"), optionally one annotator's."""
    sources = ALL_SOURCES if source == ALL else (source,)
    return select_labels(LabelFilter(sources=sources, annotators=(annotator,) if annotator else ()), version)


def taxonomy_tree(version: TaxonomyVersion, *, source: str = "judge", annotator: str | None = None) -> dict[str, Any]:
    """The version's tree with, per node, the failures labelled in its subtree (count) and their share of all
    labelled failures; children by count (descending) then name."""
    categories = list(version.categories.order_by("path"))
    by_id = {c.id: c for c in categories}
    children: dict[int | None, list[Category]] = {}
    for c in categories:
        children.setdefault(c.parent_id, []).append(c)
    subtree_failures: dict[int, set[int]] = {c.id: set() for c in categories}
    everything: set[int] = set()
    for prediction_id, category_id in _labels(version, source, annotator).values_list("prediction_id", "category_id"):
        everything.add(prediction_id)
        node = by_id.get(category_id)
        while node is not None:
            subtree_failures[node.id].add(prediction_id)
            node = by_id.get(node.parent_id) if node.parent_id else None
    total = len(everything)

    def subtree(category: Category | None) -> dict[str, Any]:
        count = total if category is None else len(subtree_failures[category.id])
        kids = children.get(None if category is None else category.id, [])
        built = [subtree(k) for k in kids]
        built.sort(key=lambda n: (-n["count"], n["name"]))
        return {
            "name": ROOT_NAME if category is None else category.name,
            "path": "" if category is None else category.path,
            "description": ROOT_DESCRIPTION if category is None else category.description,
            "count": count,
            "share": round(count / total, 6) if total else 0.0,
            "children": built,
        }

    return {
        "taxonomy": version.taxonomy.name,
        "version": version.number,
        "origin": version.origin,
        "source": source,
        "annotator": annotator or "",
        "failures": total,
        "tree": subtree(None),
    }


def export_taxonomy(*, taxonomy: str, out: Path, source: str = "judge", annotator: str | None = None) -> ExportReport:
    """Write the tree JSON of TAXONOMY[@VERSION] to `out`."""
    version = resolve_version(taxonomy)
    tree = taxonomy_tree(version, source=source, annotator=annotator)
    text = json.dumps(tree, ensure_ascii=False, indent=2) + "\n"
    write_file(out, text)
    return ExportReport(
        path=str(out), taxonomy=version.taxonomy.name, version=version.number,
        labels=_labels(version, source, annotator).count(), failures=tree["failures"],
        categories=version.categories.count(),
    )


ERROR_COLUMNS = [
    "dataset", "example_id", "model", "prediction_id", "source", "annotator", "category_path",
]
TAIL_COLUMNS = ["confidence", "error_title", "error_summary", "analysis_id", "prompt_version"]


def error_rows(version: TaxonomyVersion, *, source: str = "judge",
               annotator: str | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per label, with its category at every depth (level_1 … level_D)."""
    depth = max((c.depth for c in version.categories.all()), default=1)
    header = ERROR_COLUMNS + [f"level_{i}" for i in range(1, depth + 1)] + TAIL_COLUMNS
    labels = _labels(version, source, annotator).values_list(
        "prediction__example__dataset__name", "prediction__example__example_id", "prediction__model__name",
        "prediction_id", "source", "annotator__name", "category__path", "confidence", "error_title",
        "error_summary", "analysis_id", "prompt_version__name", "prompt_version__sha256",
    )
    rows = []
    for (dataset, example_id, model, pid, src, ann, path, conf, title, summary, analysis_id,
         pv_name, pv_sha) in labels.iterator(chunk_size=5000):
        levels = path.split(PATH_SEPARATOR)
        levels += [""] * (depth - len(levels))
        rows.append([
            dataset, example_id, model, str(pid), src, ann, path, *levels,
            "" if conf is None else f"{conf:.4f}", title, summary,
            "" if analysis_id is None else str(analysis_id),
            f"{pv_name}@{pv_sha[:12]}" if pv_sha else "",
        ])
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[4], r[5], r[6]))
    return header, rows


def export_errors(*, taxonomy: str, out: Path, source: str = "judge", annotator: str | None = None) -> ExportReport:
    """Write the flat error table of TAXONOMY[@VERSION] to `out` as CSV."""
    version = resolve_version(taxonomy)
    header, rows = error_rows(version, source=source, annotator=annotator)
    write_file(out, csv_text(header, rows))
    return ExportReport(
        path=str(out), taxonomy=version.taxonomy.name, version=version.number, labels=len(rows),
        failures=len({r[3] for r in rows}), categories=version.categories.count(),
    )


"""Page contexts: what each signatures and ErrorAtlas page shows, as plain data shared by the views and
the static report (`manage.py report` renders the same pages offline)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator

from annotation.errors import ErrorMapError
from annotation.models import Label, Prediction
from annotation.pages import query_number
from annotation.selectors import (
    ALL_SOURCES,
    default_version,
    failure_labels,
    filter_choices,
    label_values,
    shared_label_reads,
)
from taxonomy.charts import heatmap_grid, learning_curve, share_bars
from taxonomy.core.signatures import TreeNode
from taxonomy.models import CategoryMapping
from taxonomy.services.proposals import list_proposals
from taxonomy.services.refinement import latest_learning_curve
from taxonomy.services.signatures import (
    SOURCES,
    atlas,
    compare_groups,
    corrected_signatures,
    failure_signatures,
    signature_filter,
)
from taxonomy.services.versions import resolve_version

EXAMPLES_PER_PAGE = 20


def _int(value: Any, default: int, low: int = 1, high: int = 10) -> int:
    number = query_number(value, int)
    return default if number is None else min(max(int(number), low), high)


def _float(value: Any, default: float) -> float:
    number = query_number(value, float)
    return float(number) if number is not None and 0 <= number <= 1 else default


def _choices() -> dict[str, Any]:
    return {**filter_choices(), "sources": SOURCES}


def _query(params: Mapping[str, Any]) -> dict[str, Any]:
    source = params.get("source") if params.get("source") in SOURCES else Label.Source.JUDGE
    return {
        "taxonomy": params.get("taxonomy") or None,
        "source": source,
        "by": "dataset" if params.get("by") == "dataset" else "model",
        "depth": _int(params.get("depth"), 1),
        "model": params.get("model") or None,
        "dataset": params.get("dataset") or None,
        "min_share": _float(params.get("min_share"), 0.0),
        "a": params.get("a") or "",
        "b": params.get("b") or "",
    }


def signatures_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """Failure signatures and, with gold, their corrected form: both read the judge's labels once."""
    with shared_label_reads():
        return _signatures_context(params)


def _signatures_context(params: Mapping[str, Any]) -> dict[str, Any]:
    q = _query(params)
    context = {"q": q, **_choices()}
    try:
        report = failure_signatures(taxonomy=q["taxonomy"], source=q["source"], by=q["by"], depth=q["depth"])
    except ErrorMapError as exc:
        return {**context, "error": str(exc)}
    context.update(
        report=report,
        heatmap=heatmap_grid(report.heatmap),
        heatmap_rows=[
            {"group": g, "n": n, "cells": list(zip(shares, counts, strict=True))}
            for g, n, shares, counts in zip(report.heatmap.groups, report.heatmap.n_errors,
                                            report.heatmap.shares, report.heatmap.counts, strict=True)
        ],
        charts=[{"signature": s, "chart": share_bars(s.shares)} for s in report.signatures],
        groups=[s.group for s in report.signatures],
    )
    if q["source"] == "judge":
        corrected = corrected_signatures(taxonomy=report.taxonomy_version, by=q["by"], depth=q["depth"])
        if any(s.n_gold for s in corrected.signatures):
            context["corrected"] = corrected.to_dict()
    if q["a"] and q["b"]:
        try:
            context["comparison"] = compare_groups(a=q["a"], b=q["b"], taxonomy=report.taxonomy_version,
                                                   source=q["source"], by=q["by"], depth=q["depth"])
        except ErrorMapError as exc:
            context["comparison_error"] = str(exc)
    return context


def prune(node: TreeNode, *, depth: int, min_share: float) -> TreeNode:
    """A copy of the tree cut below `depth` and without nodes under `min_share` of all errors."""
    children = [prune(c, depth=depth, min_share=min_share) for c in node.children
                if c.depth <= depth and c.share >= min_share and (c.count > 0 or min_share == 0)]
    return replace(node, children=children)


def atlas_context(params: Mapping[str, Any]) -> dict[str, Any]:
    q = _query(params)
    q["depth"] = _int(params.get("depth"), 3)
    context = {"q": q, **_choices()}
    try:
        report = atlas(taxonomy=q["taxonomy"], source=q["source"], model=q["model"], dataset=q["dataset"])
    except ErrorMapError as exc:
        return {**context, "error": str(exc)}
    tree = prune(report.tree, depth=q["depth"], min_share=q["min_share"])
    query = {"taxonomy": report.taxonomy_version, "source": q["source"], "model": q["model"] or "",
             "dataset": q["dataset"] or ""}
    context.update(report=report, tree=tree, flat=list(_flatten(tree)), atlas_query=urlencode(query))
    return context


def _flatten(node: TreeNode) -> Iterator[TreeNode]:
    for child in node.children:
        yield child
        yield from _flatten(child)


def atlas_examples_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """Failures labelled with one category (or its subtree): input, output, reference, judge analysis, labels."""
    q = _query(params)
    category = params.get("category", "")
    context = {"q": q, "category": category, **_choices()}
    label_filter = replace(
        signature_filter(source=q["source"], taxonomy=q["taxonomy"], models=[q["model"]] if q["model"] else None,
                         datasets=[q["dataset"]] if q["dataset"] else None),
        categories=(category,))
    try:
        version = default_version(label_filter).version
    except ErrorMapError as exc:
        return {**context, "error": str(exc)}
    # Through the mapping: on NAME@V+1 the items V labelled count as the mapping says.
    ids = sorted({pid for (pid,) in label_values(label_filter, version, "prediction_id")})
    page = Paginator(ids, EXAMPLES_PER_PAGE).get_page(params.get("page"))
    rows = Prediction.objects.filter(pk__in=list(page.object_list)).select_related(
        "example__dataset", "model").order_by("pk")
    labels = failure_labels([p.pk for p in rows])
    failures = []
    for prediction in rows:
        mine = labels.get(prediction.pk, [])
        failures.append({
            "prediction": prediction,
            **{source: [lab for lab in mine if lab.source == source] for source in ALL_SOURCES},
        })
    context.update(version=str(version), page=page, failures=failures)
    return context


def atlas_versions_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """Two taxonomy versions side by side, with the mapping between them."""
    q = _query(params)
    context: dict[str, Any] = {"q": q, **_choices(), "left_spec": params.get("left", ""),
                               "right_spec": params.get("right", "")}
    sides: list[dict[str, Any]] = []
    for key in ("left", "right"):
        spec = params.get(key)
        if not spec:
            continue
        try:
            version = resolve_version(spec)
            report = atlas(taxonomy=version, source=q["source"])
        except ErrorMapError as exc:
            context["error"] = str(exc)
            break
        sides.append({"spec": str(version), "version": version, "report": report,
                      "tree": prune(report.tree, depth=_int(params.get("depth"), 3), min_share=0.0)})
    context["sides"] = sides
    if len(sides) == 2:
        context["mappings"] = CategoryMapping.objects.filter(
            source__version=sides[0]["version"], target__version=sides[1]["version"]
        ).select_related("source", "target").order_by("source__path")[:500]
        left_paths = {n.path for n in _flatten(sides[0]["tree"])}
        right_paths = {n.path for n in _flatten(sides[1]["tree"])}
        context["only_left"] = sorted(left_paths - right_paths)
        context["only_right"] = sorted(right_paths - left_paths)
    return context


def proposals_context(spec: str, *, accepted: Any = None, error: str = "") -> dict[str, Any]:
    """A version's change proposals with their evidence, and what was just accepted (if anything)."""
    context: dict[str, Any] = {**_choices(), "spec": spec}
    if accepted is not None:
        context["accepted"] = accepted
    if error:
        context["error"] = error
    if spec:
        try:
            context["listing"] = list_proposals(taxonomy=spec)
        except ErrorMapError as exc:
            context["error"] = str(exc)
    return context


def learning_curve_context(spec: str | None) -> dict[str, Any]:
    """The latest stored learning curve of the judge for a taxonomy (or any), with its chart geometry."""
    curve = latest_learning_curve(spec)
    return {**_choices(), "spec": spec or "", "curve": curve,
            "chart": learning_curve(curve["points"]) if curve else None}

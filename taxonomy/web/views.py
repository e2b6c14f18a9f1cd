"""Web pages for failure signatures and the ErrorAtlas: parse the query, call the services, render.

The context builders are plain functions so `manage.py report` renders the same pages offline.
"""
from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseForbidden
from django.shortcuts import render

from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel, Label, Prediction
from annotation.selectors import failure_labels
from taxonomy.core.signatures import TreeNode
from taxonomy.models import Category, CategoryMapping, TaxonomyVersion
from taxonomy.services.proposals import accept_proposals, list_proposals
from taxonomy.services.refinement import latest_learning_curve
from taxonomy.services.signatures import (
    SOURCES,
    atlas,
    compare_groups,
    corrected_signatures,
    failure_signatures,
    pick_version,
)
from taxonomy.services.versions import resolve_version
from taxonomy.web.charts import heatmap_grid, learning_curve, share_bars

EXAMPLES_PER_PAGE = 20


def _int(value, default: int, low: int = 1, high: int = 10) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


def _float(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if 0 <= number <= 1 else default


def _choices() -> dict:
    return {
        "versions": [str(v) for v in TaxonomyVersion.objects.select_related("taxonomy").order_by("taxonomy__name", "number")],
        "sources": SOURCES,
        "models": list(EvaluatedModel.objects.order_by("name").values_list("name", flat=True)),
        "datasets": list(Dataset.objects.order_by("name").values_list("name", flat=True)),
    }


def _query(params) -> dict:
    source = params.get("source") if params.get("source") in SOURCES else "judge"
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


def signatures_context(params) -> dict:
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


@login_required
def signatures_page(request):
    return render(request, "errormap/signatures.html", signatures_context(request.GET))


def prune(node: TreeNode, *, depth: int, min_share: float) -> TreeNode:
    """A copy of the tree cut below `depth` and without nodes under `min_share` of all errors."""
    children = [prune(c, depth=depth, min_share=min_share) for c in node.children
                if c.depth <= depth and c.share >= min_share and (c.count > 0 or min_share == 0)]
    return replace(node, children=children)


def atlas_context(params) -> dict:
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


def _flatten(node: TreeNode):
    for child in node.children:
        yield child
        yield from _flatten(child)


@login_required
def atlas_page(request):
    return render(request, "errormap/atlas.html", atlas_context(request.GET))


@login_required
def atlas_examples_page(request):
    """Failures labelled with one category (or its subtree): input, output, reference, judge analysis, labels."""
    q = _query(request.GET)
    category = request.GET.get("category", "")
    context = {"q": q, "category": category, **_choices()}
    try:
        version = pick_version(q["taxonomy"], q["source"])
    except ErrorMapError as exc:
        return render(request, "errormap/atlas_examples.html", {**context, "error": str(exc)})
    subtree = Category.objects.filter(version=version).filter(
        Q(path=category) | Q(path__startswith=category + " / ")).values_list("pk", flat=True)
    labels = Label.objects.filter(taxonomy_version=version, source=q["source"], category_id__in=list(subtree),
                                  prediction__is_failure=True)
    if q["model"]:
        labels = labels.filter(prediction__model__name=q["model"])
    if q["dataset"]:
        labels = labels.filter(prediction__example__dataset__name=q["dataset"])
    ids = labels.values_list("prediction_id", flat=True).distinct().order_by("prediction_id")
    page = Paginator(ids, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    rows = Prediction.objects.filter(pk__in=list(page.object_list)).select_related(
        "example__dataset", "model").order_by("pk")
    labels = failure_labels([p.pk for p in rows])
    failures = []
    for prediction in rows:
        mine = labels.get(prediction.pk, [])
        failures.append({
            "prediction": prediction,
            "judge": [lab for lab in mine if lab.source == "judge"],
            "human": [lab for lab in mine if lab.source == "human"],
            "gold": [lab for lab in mine if lab.source == "gold"],
        })
    context.update(version=str(version), page=page, failures=failures)
    return render(request, "errormap/atlas_examples.html", context)


@login_required
def atlas_versions_page(request):
    """Two taxonomy versions side by side, with the mapping between them."""
    q = _query(request.GET)
    context = {"q": q, **_choices(), "left_spec": request.GET.get("left", ""), "right_spec": request.GET.get("right", "")}
    sides = []
    for key in ("left", "right"):
        spec = request.GET.get(key)
        if not spec:
            continue
        try:
            version = resolve_version(spec)
            report = atlas(taxonomy=version, source=q["source"])
        except ErrorMapError as exc:
            context["error"] = str(exc)
            break
        sides.append({"spec": str(version), "version": version, "report": report,
                      "tree": prune(report.tree, depth=_int(request.GET.get("depth"), 3), min_share=0.0)})
    context["sides"] = sides
    if len(sides) == 2:
        context["mappings"] = CategoryMapping.objects.filter(
            source__version=sides[0]["version"], target__version=sides[1]["version"]
        ).select_related("source", "target").order_by("source__path")[:500]
        left_paths = {n.path for n in _flatten(sides[0]["tree"])}
        right_paths = {n.path for n in _flatten(sides[1]["tree"])}
        context["only_left"] = sorted(left_paths - right_paths)
        context["only_right"] = sorted(right_paths - left_paths)
    return render(request, "errormap/atlas_versions.html", context)


@login_required
def proposals_page(request):
    """A version's change proposals with their evidence; staff may accept some (a new version)."""
    spec = request.GET.get("taxonomy") or request.POST.get("taxonomy") or ""
    context: dict = {**_choices(), "spec": spec}
    if request.method == "POST":
        if not request.user.is_staff:
            return HttpResponseForbidden("only staff may accept taxonomy proposals")
        try:
            ids = [int(i) for i in request.POST.getlist("ids")]
            report = accept_proposals(taxonomy=spec.partition("@")[0], ids=ids, by=request.user.get_username(),
                                      reason=request.POST.get("reason", ""))
        except (ValueError, ErrorMapError) as exc:
            context["error"] = str(exc)
        else:
            context["accepted"] = report
    if spec:
        try:
            context["listing"] = list_proposals(taxonomy=spec)
        except ErrorMapError as exc:
            context["error"] = str(exc)
    return render(request, "errormap/proposals.html", context)


@login_required
def learning_curve_page(request):
    """The latest stored learning curve of the judge (as `judge_learning_curve` measured it): a read."""
    spec = request.GET.get("taxonomy") or None
    curve = latest_learning_curve(spec)
    context = {**_choices(), "spec": spec or "", "curve": curve,
               "chart": learning_curve(curve["points"]) if curve else None}
    return render(request, "errormap/learning_curve.html", context)

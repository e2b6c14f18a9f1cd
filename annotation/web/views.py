"""Web pages for the dashboard, agreement, the judge, adjudication and annotation progress.

Each page parses its query, calls a service or selector and renders; agreement and judge audit use
the agreement services (the same numbers as `manage.py agreement --json`).
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from annotation import selectors
from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel
from taxonomy.models import TaxonomyVersion

PAGE_REPS = 200  # bootstrap resamples on a page; the command's default is 1000


def _choices() -> dict:
    return {
        "versions": [str(v) for v in TaxonomyVersion.objects.select_related("taxonomy").order_by("taxonomy__name", "number")],
        "models": list(EvaluatedModel.objects.order_by("name").values_list("name", flat=True)),
        "datasets": list(Dataset.objects.order_by("name").values_list("name", flat=True)),
    }


def _depth(value) -> int | None:
    try:
        depth = int(value)
    except (TypeError, ValueError):
        return None
    return depth if 1 <= depth <= 10 else None


@login_required
def dashboard(request):
    context = {
        "overview": selectors.overview(),
        "datasets": selectors.datasets_table(),
        # Counts as (key, value) pairs made here: a key named like a dict method ("items", "keys")
        # would shadow that method in the template's `counts.items` lookup.
        "runs": [{"run": run, "counts": sorted(run.counts.items()) if isinstance(run.counts, dict) else []}
                 for run in selectors.recent_runs(12)],
        "progress": selectors.labelstudio_progress()[:10],
    }
    return render(request, "errormap/dashboard.html", context)


def agreement_context(params, *, sources: tuple[str, ...] = ("human",),
                      default_from: tuple[str, ...] | None = None) -> dict:
    from annotation.services.agreement import LabelFilter, compute_agreement

    q = {
        "taxonomy": params.get("taxonomy") or None,
        "model": params.get("model") or "",
        "dataset": params.get("dataset") or "",
        "depth": _depth(params.get("depth")),
    }
    if q["taxonomy"] is None:
        q["taxonomy"] = selectors.busiest_version(default_from or sources)
    context = {"q": q, **_choices()}
    label_filter = LabelFilter(
        datasets=(q["dataset"],) if q["dataset"] else (),
        models=(q["model"],) if q["model"] else (),
        sources=sources,
        taxonomy=q["taxonomy"],
    )
    try:
        report = compute_agreement(label_filter=label_filter, depth=q["depth"], reps=PAGE_REPS)
    except ErrorMapError as exc:
        return {**context, "error": str(exc)}
    intervals = report.get("confidence_intervals", {})
    stats = [
        {"name": name, "value": report.get(key), "ci": intervals.get(key)}
        for name, key in (("Krippendorff's alpha", "krippendorff_alpha"), ("Fleiss' kappa", "fleiss_kappa"),
                          ("Gwet's AC1", "gwet_ac1"), ("Brennan-Prediger", "brennan_prediger"),
                          ("percent agreement", "percent_agreement"))
    ]
    per_category = sorted(
        ((name, value) for name, value in report.get("per_category", {}).items()),
        key=lambda kv: (kv[1] is None, -(kv[1] or 0)),
    )
    bars = [{"name": n, "value": v, "width": max(0, round((v or 0) * 300)), "y": 18 * i + 4, "text_y": 18 * i + 15,
             "value_x": 305 + max(0, round((v or 0) * 300))} for i, (n, v) in enumerate(per_category)]
    context.update(report=report, stats=stats, per_category=bars, chart_height=18 * len(bars) + 10,
                   per_annotator=sorted(report.get("per_annotator", {}).items()),
                   per_depth=sorted(report.get("per_depth", {}).items()),
                   pairwise=report.get("pairwise_cohen_kappa"))
    return context


@login_required
def agreement_page(request):
    return render(request, "errormap/agreement.html", agreement_context(request.GET))


@login_required
def judge_page(request):
    """Judge reliability: the judge audit (vs human majority and gold) and judge-with-humans agreement."""
    from annotation.services.agreement import LabelFilter
    from annotation.services.judge_audit import audit_judge

    context = agreement_context(request.GET, sources=("judge", "human"), default_from=("judge",))
    q = context["q"]
    try:
        audit = audit_judge(label_filter=LabelFilter(
            datasets=(q["dataset"],) if q["dataset"] else (), models=(q["model"],) if q["model"] else (),
            taxonomy=q["taxonomy"]))
    except ErrorMapError as exc:
        context["audit_error"] = str(exc)
    else:
        context["audit"] = audit
        context["judges"] = [_judge_view(name, part) for name, part in sorted(audit["judges"].items())]
    return render(request, "errormap/judge.html", context)


def _judge_view(name: str, part: dict) -> dict:
    """A judge's audit reshaped for tables: confusion matrix as rows over a shared column order."""
    references = []
    for key in ("vs_human_majority", "vs_gold"):
        confusion = part[key].get("confusion") or {}
        columns = sorted({c for row in confusion.values() for c in row})
        part[key]["confusion_rows"] = [
            {"reference": ref, "cells": [row.get(c, 0) for c in columns]} for ref, row in confusion.items()
        ]
        part[key]["confusion_columns"] = columns
        references.append(key)
    return {"name": name, **part}


@login_required
def adjudication_page(request):
    status = request.GET.get("status") or "open"
    queue = selectors.adjudication_queue(status=status)
    page = Paginator(queue["items"], 25).get_page(request.GET.get("page"))
    return render(request, "errormap/adjudication.html",
                  {"status": status, "counts": queue["counts"], "page": page})


@login_required
def labelstudio_page(request):
    return render(request, "errormap/labelstudio.html", {"progress": selectors.labelstudio_progress()})

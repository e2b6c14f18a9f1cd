"""Web pages for the dashboard, agreement, the judge, adjudication and annotation progress.

Each page parses its query, calls a service or selector and renders; agreement and judge audit use
the agreement services (the same numbers as `manage.py agreement --json`).
"""
from __future__ import annotations

import importlib

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from annotation import selectors
from annotation.errors import ErrorMapError
from annotation.models import Dataset, EvaluatedModel
from taxonomy.models import TaxonomyVersion

PAGE_REPS = 200  # bootstrap resamples on a page; the command's default is 1000


def _optional(module: str, name: str):
    """A service function that another part of the project may not have landed yet (None until then)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


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
        "runs": selectors.recent_runs(12),
        "progress": selectors.labelstudio_progress()[:10],
    }
    return render(request, "errormap/dashboard.html", context)


def agreement_context(params, *, sources: tuple[str, ...] = ("human",)) -> dict:
    from annotation.services.agreement import LabelFilter, compute_agreement

    q = {
        "taxonomy": params.get("taxonomy") or None,
        "model": params.get("model") or "",
        "dataset": params.get("dataset") or "",
        "depth": _depth(params.get("depth")),
    }
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
    """Judge reliability: the judge audit (confusion, calibration) when it exists, and judge-vs-human agreement."""
    audit = _optional("annotation.services.agreement", "judge_audit")
    context = agreement_context(request.GET, sources=("judge", "human"))
    context["audit_available"] = audit is not None
    if audit is not None:
        try:
            context["audit"] = audit(taxonomy=context["q"]["taxonomy"], depth=context["q"]["depth"])
        except ErrorMapError as exc:
            context["audit_error"] = str(exc)
        except TypeError:
            context["audit_error"] = "the judge audit service has a different signature than this page expects"
    return render(request, "errormap/judge.html", context)


@login_required
def adjudication_page(request):
    queue = _optional("annotation.services.adjudication", "adjudication_queue") or _optional(
        "annotation.services.agreement", "adjudication_queue")
    context = {"available": queue is not None}
    if queue is not None:
        try:
            context["queue"] = queue()
        except ErrorMapError as exc:
            context["error"] = str(exc)
    return render(request, "errormap/adjudication.html", context)


@login_required
def labelstudio_page(request):
    return render(request, "errormap/labelstudio.html", {"progress": selectors.labelstudio_progress()})

"""Page contexts: what each annotation page shows, as plain data shared by the views, the static
report and the API (views only parse the request and render these)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annotation import selectors
from annotation.errors import ErrorMapError
from annotation.models import Label
from annotation.selectors import LabelFilter, default_version
from annotation.services.agreement import compute_agreement
from annotation.services.judge_audit import audit_judge

PAGE_REPS = 200  # bootstrap resamples on a page; the command's default is 1000


def _depth(value: Any) -> int | None:
    try:
        depth = int(value)
    except (TypeError, ValueError):
        return None
    return depth if 1 <= depth <= 10 else None


def dashboard_context() -> dict[str, Any]:
    """Headline counts, datasets, recent runs and annotation progress."""
    return {
        "overview": selectors.overview(),
        "datasets": selectors.datasets_table(),
        # Counts as (key, value) pairs made here: a key named like a dict method ("items", "keys")
        # would shadow that method in the template's `counts.items` lookup.
        "runs": [{"run": run, "counts": sorted(run.counts.items()) if isinstance(run.counts, dict) else []}
                 for run in selectors.recent_runs(12)],
        "progress": selectors.labelstudio_progress()[:10],
    }


def agreement_context(params: Mapping[str, Any], *,
                      sources: tuple[str, ...] = (Label.Source.HUMAN,)) -> dict[str, Any]:
    """The agreement page: the report of `manage.py agreement` for the query, shaped for tables."""
    q = {
        "taxonomy": params.get("taxonomy") or None,
        "model": params.get("model") or "",
        "dataset": params.get("dataset") or "",
        "depth": _depth(params.get("depth")),
    }
    context = {"q": q, **selectors.filter_choices()}
    label_filter = LabelFilter(
        datasets=(q["dataset"],) if q["dataset"] else (),
        models=(q["model"],) if q["model"] else (),
        sources=sources,
        taxonomy=q["taxonomy"],
    )
    try:
        choice = default_version(label_filter, shared_by=sources)
        q["taxonomy"] = str(choice.version)
        context["version_choice"] = choice
        report = compute_agreement(label_filter=label_filter, version=choice.version, depth=q["depth"],
                                   reps=PAGE_REPS)
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


def judge_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """The judge page: judge-with-humans agreement and the judge audit (vs human majority and gold)."""
    context = agreement_context(params, sources=(Label.Source.JUDGE, Label.Source.HUMAN))
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
    return context


def _judge_view(name: str, part: dict[str, Any]) -> dict[str, Any]:
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


def adjudication_context(status: str) -> dict[str, Any]:
    """The adjudication queue filtered by status, with counts per status."""
    queue = selectors.adjudication_queue(status=status)
    return {"status": status, "counts": queue["counts"], "items": queue["items"]}

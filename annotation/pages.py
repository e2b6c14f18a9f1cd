"""Page contexts: what each annotation page shows, as plain data shared by the views, the static
report and the API (views only parse the request and render these)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from annotation import selectors
from annotation.errors import ErrorMapError
from annotation.models import AdjudicationItem, Label, Prediction
from annotation.selectors import LabelFilter, default_version, shared_label_reads
from annotation.selectors.agreement import Disagreements, compute_agreement
from annotation.selectors.judge_audit import Comparison, JudgeAudit, NoComparison, NoGold, audit_judge
from annotation.services.adjudication import decision_history, item_key
from annotation.services.anchoring import anchoring_reports
from annotation.services.runs import run_state
from taxonomy.charts import reliability_chart
from taxonomy.models import Category

PAGE_REPS = 200  # bootstrap resamples on a page; the command's default is 1000


def query_number(value: Any, cast: type[int | float]) -> int | float | None:
    """A query parameter as a number, None when it is missing or not one (pages never answer 500)."""
    try:
        return cast(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _depth(value: Any) -> int | None:
    depth = query_number(value, int)
    return int(depth) if depth is not None and 1 <= depth <= 10 else None


def dashboard_context() -> dict[str, Any]:
    """Headline counts, datasets, recent runs and annotation progress."""
    counts = selectors.prediction_counts()  # one pass over the predictions for both tables
    return {
        "overview": selectors.overview(counts),
        "datasets": selectors.datasets_table(counts),
        # Counts as (key, value) pairs made here: a key named like a dict method ("items", "keys")
        # would shadow that method in the template's `counts.items` lookup.
        "runs": [{"run": run, "state": run_state(run),
                  "counts": sorted(run.counts.items()) if isinstance(run.counts, dict) else []}
                 for run in selectors.recent_runs(12)],
        "progress": selectors.labelstudio_progress()[:10],
    }


def agreement_context(params: Mapping[str, Any], *,
                      sources: tuple[str, ...] = (Label.Source.HUMAN,)) -> dict[str, Any]:
    """The agreement page: the report of `manage.py agreement` for the query, shaped for tables."""
    with shared_label_reads():  # the report and the gold comparison read each label row once
        return _agreement_context(params, sources)


def _agreement_context(params: Mapping[str, Any], sources: tuple[str, ...]) -> dict[str, Any]:
    q: dict[str, Any] = {
        "taxonomy": params.get("taxonomy") or None,
        "model": params.get("model") or "",
        "dataset": params.get("dataset") or "",
        "depth": _depth(params.get("depth")),
    }
    context: dict[str, Any] = {"q": q, **selectors.filter_choices()}
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
    intervals = report.confidence_intervals
    stats = [
        {"name": name, "value": getattr(report, key), "ci": intervals.get(key)}
        for name, key in (("Krippendorff's alpha", "krippendorff_alpha"), ("Fleiss' kappa", "fleiss_kappa"),
                          ("Gwet's AC1", "gwet_ac1"), ("Brennan-Prediger", "brennan_prediger"),
                          ("percent agreement", "percent_agreement"))
    ]
    per_category = sorted(
        ((name, value) for name, value in report.per_category.items()),
        key=lambda kv: (kv[1] is None, -(kv[1] or 0)),
    )
    bars = [{"name": n, "value": v, "width": max(0, round((v or 0) * 300)), "y": 18 * i + 4, "text_y": 18 * i + 15,
             "value_x": 305 + max(0, round((v or 0) * 300))} for i, (n, v) in enumerate(per_category)]
    vs_gold = report.per_annotator_vs_gold
    context.update(report=report, stats=stats, per_category=bars, chart_height=18 * len(bars) + 10,
                   per_annotator=[{"name": name, "numbers": numbers, "vs_gold": vs_gold.get(name)}
                                  for name, numbers in sorted(report.per_annotator.items())],
                   vs_gold=any(a.n_items for a in vs_gold.values()),
                   disagreements=_disagreement_table(report.disagreements),
                   per_depth=sorted(report.per_depth.items()),
                   pairwise=report.pairwise_cohen_kappa)
    if sources == (Label.Source.HUMAN,):
        # Mixed projects under this version: how the judge's pre-label swayed people (anchoring_report).
        context["anchoring"] = anchoring_reports(taxonomy=q["taxonomy"], reps=PAGE_REPS)
    return context


DISAGREEMENTS_SHOWN = 50  # rows on the page; the report (and `agreement --json`) lists more


def _disagreement_table(disagreements: Disagreements) -> dict[str, Any]:
    """The first of the report's disagreeing items as rows: the item and each annotator's categories."""
    items = disagreements.items[:DISAGREEMENTS_SHOWN]
    return {"n_items": disagreements.n_items, "listed": disagreements.listed, "note": disagreements.note,
            "shown": len(items),
            "rows": [{"id": item.id, "item": item.item or item.id, "labels": sorted(item.labels.items())}
                     for item in items]}


def judge_context(params: Mapping[str, Any]) -> dict[str, Any]:
    """The judge page: judge-with-humans agreement and the judge audit (vs human majority and gold)."""
    with shared_label_reads():  # agreement and audit read each judge, human and gold label row once
        return _judge_context(params)


def _judge_context(params: Mapping[str, Any]) -> dict[str, Any]:
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
        context["judges"] = [_judge_view(name, part) for name, part in sorted(audit.judges.items())]
    return context


def _judge_view(name: str, part: JudgeAudit) -> dict[str, Any]:
    """A judge's audit shaped for the page: each comparison's confusion matrix as shaded rows over one
    column order, its per-category scores as rows, and its calibration as a reliability diagram."""
    return {"name": name, **part.to_dict(),
            "vs_human_majority": _comparison_view(part.vs_human_majority),
            "vs_gold": _comparison_view(part.vs_gold)}


def _comparison_view(comparison: Comparison | NoComparison | NoGold) -> dict[str, Any]:
    view = comparison.to_dict()
    if not isinstance(comparison, Comparison):
        return view  # the page shows only why there is nothing to compare
    columns = sorted({c for row in comparison.confusion.values() for c in row})
    rows = []
    for reference, row in comparison.confusion.items():
        total = sum(row.values())
        cells = []
        for column in columns:
            n = row.get(column, 0)
            share = n / total if total else 0.0
            cells.append({"n": n, "column": column, "diagonal": column == reference,
                          "fill": _shade(share) if n else "#fff", "dark": share > 0.5})
        rows.append({"reference": reference, "cells": cells, "total": total})
    return {
        **view,
        "confusion_columns": columns,
        "confusion_rows": rows,
        "per_category_rows": [{"name": category, **asdict(scores)}
                              for category, scores in comparison.per_category.items()],
        "reliability": reliability_chart([asdict(b) for b in comparison.calibration.bins]),
    }


def _shade(share: float) -> str:
    """White to dark blue by share (0..1) of a confusion-matrix row."""
    t = min(max(share, 0.0), 1.0)
    return f"rgb({round(255 - 235 * t)},{round(255 - 185 * t)},{round(255 - 95 * t)})"


def adjudication_context(status: str) -> dict[str, Any]:
    """The adjudication queue filtered by status, with counts per status (items shaped per page by
    `adjudication_rows`)."""
    queue = selectors.adjudication_queue(status=status)
    return {"status": status, "counts": sorted(queue["counts"].items()), "items": queue["items"]}


def adjudication_rows(items: Iterable[AdjudicationItem]) -> list[dict[str, Any]]:
    """Queue items as rows: each annotator's and the judge's categories as (source, name, paths) rows,
    and the categories a decision can choose: the ones proposed first, then the rest of the version."""
    items = list(items)
    versions = {item.taxonomy_version_id for item in items}
    paths: dict[int, list[str]] = {v: [] for v in versions}
    for version_id, path in (Category.objects.filter(version_id__in=versions)
                             .order_by("path").values_list("version_id", "path")):
        paths[version_id].append(path)
    rows = []
    for item in items:
        labels = [(source, name, list(categories))
                  for source, by in sorted((item.labels or {}).items())
                  for name, categories in sorted(by.items())]
        proposed = sorted({c for _, _, categories in labels for c in categories})
        rows.append({"item": item, "key": item_key(item.prediction), "labels": labels, "proposed": proposed,
                     "other_categories": [c for c in paths[item.taxonomy_version_id] if c not in proposed]})
    return rows


def item_context(prediction_id: int) -> dict[str, Any] | None:
    """One item (a failed or passed prediction): its texts, every label on it by taxonomy version and
    source, and its adjudication (queue entries with their decisions); None if there is no such item."""
    prediction = (Prediction.objects.select_related("example__dataset", "model")
                  .filter(pk=prediction_id).first())
    if prediction is None:
        return None
    by_version: dict[str, list[Label]] = {}
    for label in selectors.failure_labels([prediction.pk]).get(prediction.pk, []):
        by_version.setdefault(str(label.taxonomy_version), []).append(label)
    queued = AdjudicationItem.objects.filter(prediction=prediction).select_related(
        "prediction__example__dataset", "prediction__model", "taxonomy_version__taxonomy").order_by("pk")
    adjudication = [{**row, "decisions": decision_history(item=str(row["item"].pk))}
                    for row in adjudication_rows(queued)]
    return {"prediction": prediction, "key": item_key(prediction),
            "labels": [{"version": version, "labels": labels} for version, labels in sorted(by_version.items())],
            "adjudication": adjudication}

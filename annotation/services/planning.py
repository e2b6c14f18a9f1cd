"""Plan the next items for people: where the judge is least reliable or least known (annotation/core/planning).

`plan_annotation` reads the work set, its judge labels and the version's gold, and returns the picks
with their reasons (a StageRun records each plan). `save_plan` turns a plan into work sets (one per
overlap) that `push_labelstudio` sends as it sends any work set.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from annotation.core.planning import Candidate, CategoryNeed, Pick, PlanSettings, plan
from annotation.errors import ErrorMapError
from annotation.models import (
    Label,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    WorkSet,
    WorkSetFailure,
)
from annotation.selectors import LabelFilter, select_labels, work_set_named
from annotation.services.runs import stage_run
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import resolve_version


@dataclass(frozen=True)
class PlannedItem:
    prediction_id: int
    dataset: str
    example_id: str
    model: str
    overlap: int
    score: float
    categories: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PlanReport:
    work_set: str
    taxonomy_version: str
    budget: int
    depth: int
    candidates: int  # work-set items with a judge label, no gold and no Label Studio task yet
    without_judge: int  # work-set items left out: no judge label to plan from
    gold_items: int
    picks: list[PlannedItem]
    categories: list[CategoryNeed]

    @property
    def annotations(self) -> int:
        return sum(p.overlap for p in self.picks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "annotations": self.annotations}


def _version(ws: WorkSet, taxonomy: str | None) -> TaxonomyVersion:
    if taxonomy:
        return resolve_version(taxonomy)
    ids = sorted(set(select_labels(LabelFilter(sources=(Label.Source.JUDGE,)), None)
                     .filter(prediction__work_sets=ws).values_list("taxonomy_version_id", flat=True).distinct()))
    if len(ids) != 1:
        found = "no" if not ids else "several"
        raise ErrorMapError(f"{found} taxonomy versions have judge labels on work set {ws.name!r}; "
                            "name one with --taxonomy")
    return TaxonomyVersion.objects.select_related("taxonomy").get(pk=ids[0])


def _sets(labels: QuerySet[Label]) -> dict[int, dict[str, frozenset[str]]]:
    grouped: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for prediction_id, annotator, path in labels.values_list("prediction_id", "annotator__name",
                                                              "category__path").iterator(chunk_size=10_000):
        grouped[prediction_id][annotator].add(path)
    return {p: {a: frozenset(s) for a, s in by.items()} for p, by in grouped.items()}


def plan_annotation(*, work_set: str, budget: int, taxonomy: str | None = None, depth: int = 1,
                    settings: PlanSettings | None = None) -> PlanReport:
    """The next `budget` items of a work set for people, with the overlap and reasons of each."""
    if budget < 1:
        raise ErrorMapError("--budget must be at least 1")
    if depth < 1:
        raise ErrorMapError("--depth must be at least 1")
    ws = work_set_named(work_set)
    version = _version(ws, taxonomy)
    settings = settings or PlanSettings(depth=depth)
    config = {"work_set": work_set, "taxonomy_version": str(version), "budget": budget, **asdict(settings)}
    with stage_run("plan_annotation", config) as run:
        members = set(ws.failures.values_list("prediction_id", flat=True))
        # Gold of the whole version (the judge's reliability is the version's); judge labels of the work set.
        gold = _sets(select_labels(LabelFilter(sources=(Label.Source.GOLD,)), version))
        judge_labels = select_labels(LabelFilter(sources=(Label.Source.JUDGE,)), version)
        judged = _sets(judge_labels)
        confidence: dict[int, float] = {}
        for prediction_id, value in (judge_labels.filter(prediction_id__in=members, confidence__isnull=False)
                                     .values_list("prediction_id", "confidence")):
            if value is not None:  # (the filter leaves none)
                confidence[prediction_id] = min(value, confidence.get(prediction_id, value))
        pending = set(LabelStudioTask.objects.filter(project__taxonomy_version=version, prediction_id__in=members)
                      .exclude(project__mode=LabelStudioProject.Mode.ADJUDICATION)
                      .values_list("prediction_id", flat=True))
        candidates = [Candidate(pid, tuple(judged[pid][a] for a in sorted(judged[pid])), confidence.get(pid))
                      for pid in sorted(members) if pid in judged and pid not in gold and pid not in pending]
        gold_pairs = [(judge_set, next(iter(gold[pid].values())))
                      for pid in sorted(gold) if pid in judged for judge_set in judged[pid].values()]
        picks, needs = plan(candidates, gold_pairs, budget, settings)
        planned = _describe(picks)
        run.counts = {"candidates": len(candidates), "picks": len(planned),
                      "annotations": sum(p.overlap for p in planned)}
    return PlanReport(
        work_set=work_set, taxonomy_version=str(version), budget=budget, depth=settings.depth,
        candidates=len(candidates), without_judge=len(members - set(judged)), gold_items=len(gold),
        picks=planned, categories=sorted(needs.values(), key=lambda n: (-n.need, n.category)))


def _describe(picks: list[Pick]) -> list[PlannedItem]:
    rows = {pk: (d, e, m) for pk, d, e, m in Prediction.objects.filter(pk__in=[p.item for p in picks])
            .values_list("pk", "example__dataset__name", "example__example_id", "model__name")}
    return [PlannedItem(p.item, *rows[p.item], p.overlap, round(p.score, 6), p.categories, p.reasons)
            for p in picks]


@transaction.atomic
def save_plan(report: PlanReport) -> list[tuple[str, int]]:
    """One work set per overlap holding the plan's picks, named by their content (so saving the same
    plan again reuses them, and work sets stay immutable); returns (name, overlap) pairs."""
    source = WorkSet.objects.get(name=report.work_set)
    by_overlap: dict[int, list[int]] = defaultdict(list)
    for pick in report.picks:
        by_overlap[pick.overlap].append(pick.prediction_id)
    saved = []
    for overlap, ids in sorted(by_overlap.items()):
        digest = hashlib.sha256(repr((report.taxonomy_version, sorted(ids))).encode()).hexdigest()[:10]
        name = f"{report.work_set}-plan-{digest}-x{overlap}"
        work_set, created = WorkSet.objects.get_or_create(
            name=name, defaults={"ratio": len(ids) / max(source.failures.count(), 1), "seed": source.seed,
                                 "filters": {"planned_from": report.work_set, "budget": report.budget,
                                             "taxonomy_version": report.taxonomy_version, "overlap": overlap}})
        if created:
            WorkSetFailure.objects.bulk_create(WorkSetFailure(work_set=work_set, prediction_id=pk) for pk in ids)
        saved.append((name, overlap))
    return saved

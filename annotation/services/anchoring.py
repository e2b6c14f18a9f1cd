"""Anchoring in mixed Label Studio projects: what people labelled on assisted vs blind tasks of a work set.

A read: it computes from the label table and the stored task arms, and writes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from annotation.core.anchoring import ARMS, AnchoringItem, compare_arms
from annotation.errors import ErrorMapError
from annotation.models import Label, LabelStudioProject, LabelStudioTask
from annotation.selectors import LabelFilter, select_labels, work_set_named
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import resolve_version

MIXED = LabelStudioProject.Mode.MIXED


def _sets(version: TaxonomyVersion, source: str, prediction_ids: list[int]) -> dict[int, dict[str, frozenset[str]]]:
    """item -> annotator -> set of category paths, for one source."""
    sets: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rows = (select_labels(LabelFilter(sources=(source,), predictions=tuple(prediction_ids)), version)
            .values_list("prediction_id", "annotator__name", "category__path"))
    for prediction_id, annotator, path in rows.iterator(chunk_size=10_000):
        sets[prediction_id][annotator].add(path)
    return {item: {a: frozenset(paths) for a, paths in by.items()} for item, by in sets.items()}


def mixed_projects(work_set: str, taxonomy: str | None = None) -> list[LabelStudioProject]:
    """The work set's mixed projects (under one taxonomy version), or a clear error."""
    ws = work_set_named(work_set)
    found = LabelStudioProject.objects.filter(work_set=ws, mode=MIXED).select_related("taxonomy_version__taxonomy")
    if taxonomy:
        found = found.filter(taxonomy_version=resolve_version(taxonomy))
    projects = list(found.order_by("pk"))
    if not projects:
        raise ErrorMapError(f"work set {work_set!r} has no mixed Label Studio project"
                            f"{' under ' + taxonomy if taxonomy else ''}: push it with --mode mixed first")
    versions = {p.taxonomy_version_id for p in projects}
    if len(versions) > 1:
        names = ", ".join(sorted({str(p.taxonomy_version) for p in projects}))
        raise ErrorMapError(f"work set {work_set!r} has mixed projects under several versions ({names}); "
                            "pick one with --taxonomy")
    return projects


def anchoring_report(*, work_set: str, taxonomy: str | None = None, reps: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Assisted vs blind tasks of a work set's mixed project: judge match, gold accuracy, alpha; JSON-ready."""
    if reps < 100:
        raise ErrorMapError("--reps must be at least 100")
    projects = mixed_projects(work_set, taxonomy)
    version = projects[0].taxonomy_version
    arms = dict(LabelStudioTask.objects.filter(project__in=projects)
                .values_list("prediction_id", "assisted"))
    ids = sorted(arms)
    humans = _sets(version, Label.Source.HUMAN, ids)
    judges = _sets(version, Label.Source.JUDGE, ids)
    gold = _sets(version, Label.Source.GOLD, ids)
    items = [
        AnchoringItem(item=pid, assisted=bool(arms[pid]), humans=humans[pid],
                      judge=sorted(set(judges.get(pid, {}).values()), key=sorted),
                      gold=next(iter(gold[pid].values())) if pid in gold else None)
        for pid in ids if pid in humans
    ]
    report = compare_arms(items, reps=reps, seed=seed)
    n_tasks = {arm: sum(1 for pid in ids if bool(arms[pid]) == (arm == "assisted")) for arm in ARMS}
    return {
        "work_set": work_set,
        "taxonomy_version": str(version),
        "projects": [p.labelstudio_id for p in projects],
        "tasks": n_tasks,
        "population": "human labels on the mixed projects' tasks; an item's value is an annotator's set of "
                      "categories; judge sets are every judge annotator's set on the item; gold is the item's "
                      "gold set",
        "method": report.method,
        "reps": report.reps,
        "seed": report.seed,
        "arms": {arm: asdict(a) for arm, a in report.arms.items()},
        "differences": {name: asdict(s) for name, s in report.differences.items()},
    }


def anchoring_reports(*, taxonomy: str | None = None, reps: int = 1000) -> list[dict[str, Any]]:
    """One report per work set with a mixed project (under `taxonomy` when given), for the agreement page."""
    projects = LabelStudioProject.objects.filter(mode=MIXED, work_set__isnull=False)
    if taxonomy:
        projects = projects.filter(taxonomy_version=resolve_version(taxonomy))
    reports = []
    for name, version in sorted(set(projects.values_list("work_set__name", "taxonomy_version"))):
        version_name = str(TaxonomyVersion.objects.select_related("taxonomy").get(pk=version))
        try:
            reports.append(anchoring_report(work_set=name, taxonomy=version_name, reps=reps))
        except ErrorMapError as exc:
            reports.append({"work_set": name, "taxonomy_version": version_name, "error": str(exc)})
    return reports

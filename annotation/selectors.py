"""Reads that aggregate annotation data for pages, the API and reports (querysets in, plain data out)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, Q

from annotation.models import (
    AdjudicationItem,
    Analysis,
    Dataset,
    EvaluatedModel,
    Label,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    StageRun,
    WorkSet,
)


@dataclass(frozen=True)
class ProjectProgress:
    project_id: int
    labelstudio_id: int
    title: str
    mode: str
    work_set: str
    taxonomy_version: str
    overlap: int
    tasks: int
    started: int  # tasks with at least one human label
    complete: int  # tasks with labels from at least `overlap` annotators
    annotators: int
    labels: int

    @property
    def percent_complete(self) -> float:
        return 100.0 * self.complete / self.tasks if self.tasks else 0.0


def overview() -> dict:
    """Headline counts for the dashboard, with label counts per source."""
    by_source = dict(Label.objects.values_list("source").annotate(n=Count("pk")).values_list("source", "n"))
    return {
        "datasets": Dataset.objects.count(),
        "models": EvaluatedModel.objects.count(),
        "predictions": Prediction.objects.count(),
        "failures": Prediction.objects.filter(is_failure=True).count(),
        "work_sets": WorkSet.objects.count(),
        "analyses": Analysis.objects.count(),
        "labels": {source: by_source.get(source, 0) for source in Label.Source.values},
        "labelstudio_projects": LabelStudioProject.objects.count(),
    }


def datasets_table() -> list[dict]:
    """Per dataset: predictions, failures, threshold."""
    rows = Dataset.objects.annotate(
        predictions=Count("examples__predictions"),
        failures=Count("examples__predictions", filter=Q(examples__predictions__is_failure=True)),
    ).order_by("name")
    return [
        {"name": d.name, "predictions": d.predictions, "failures": d.failures, "threshold": d.applied_threshold}
        for d in rows
    ]


def recent_runs(limit: int = 10) -> list[StageRun]:
    return list(StageRun.objects.order_by("-started_at", "-pk")[:limit])


def labelstudio_progress() -> list[ProjectProgress]:
    """Annotation progress of every Label Studio project, counted from the label table."""
    result = []
    for project in LabelStudioProject.objects.select_related("work_set", "taxonomy_version__taxonomy").order_by("pk"):
        tasks = LabelStudioTask.objects.filter(project=project)
        labels = Label.objects.filter(
            source=Label.Source.HUMAN,
            taxonomy_version=project.taxonomy_version,
            prediction_id__in=tasks.values("prediction_id"),
        )
        per_item = Counter(
            dict(labels.values("prediction_id").annotate(n=Count("annotator", distinct=True)).values_list(
                "prediction_id", "n"))
        )
        result.append(
            ProjectProgress(
                project_id=project.pk,
                labelstudio_id=project.labelstudio_id,
                title=project.title,
                mode=project.mode,
                work_set=project.work_set.name if project.work_set_id else "",
                taxonomy_version=str(project.taxonomy_version),
                overlap=project.overlap,
                tasks=tasks.count(),
                started=len(per_item),
                complete=sum(1 for n in per_item.values() if n >= max(project.overlap, 1)),
                annotators=labels.values("annotator").distinct().count(),
                labels=labels.count(),
            )
        )
    return result


def failure_labels(prediction_ids: list[int], taxonomy_version_id: int | None = None) -> dict[int, list[Label]]:
    """All labels on these failures (any source), grouped by failure, for the example views."""
    labels = Label.objects.filter(prediction_id__in=prediction_ids).select_related(
        "category", "annotator", "analysis", "taxonomy_version__taxonomy"
    ).order_by("source", "annotator__name", "category__path")
    if taxonomy_version_id is not None:
        labels = labels.filter(taxonomy_version_id=taxonomy_version_id)
    grouped: dict[int, list[Label]] = {}
    for label in labels:
        grouped.setdefault(label.prediction_id, []).append(label)
    return grouped


def failure_summary() -> list[dict]:
    """Per (dataset, model): predictions, failures, failure share and the dataset's threshold."""
    rows = (
        Prediction.objects.values("example__dataset__name", "model__name", "example__dataset__applied_threshold")
        .annotate(predictions=Count("pk"), failures=Count("pk", filter=Q(is_failure=True)))
        .order_by("example__dataset__name", "model__name")
    )
    return [
        {
            "dataset": r["example__dataset__name"],
            "model": r["model__name"],
            "predictions": r["predictions"],
            "failures": r["failures"],
            "failure_share": r["failures"] / r["predictions"] if r["predictions"] else 0.0,
            "threshold": r["example__dataset__applied_threshold"],
        }
        for r in rows
    ]


def adjudication_queue(*, status: str = "open") -> dict:
    """Items waiting for (or settled by) adjudication, oldest first, with counts per status."""
    counts = dict(AdjudicationItem.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    items = AdjudicationItem.objects.select_related(
        "prediction__model", "prediction__example__dataset", "taxonomy_version__taxonomy"
    ).order_by("created_at", "pk")
    if status != "all":
        items = items.filter(status=status)
    return {"counts": {s: counts.get(s, 0) for s in AdjudicationItem.Status.values}, "items": items}


def busiest_version(sources: tuple[str, ...]) -> str | None:
    """'NAME@N' of the taxonomy version with the most labels from these sources (a page's default)."""
    from taxonomy.models import TaxonomyVersion

    # Indexed counts per version (there are few), never a join over all labels.
    counts = {v: Label.objects.filter(taxonomy_version=v, source__in=sources).count()
              for v in TaxonomyVersion.objects.select_related("taxonomy").order_by("-pk")}
    best = max(counts, key=lambda v: counts[v], default=None)
    return str(best) if best is not None and counts[best] else None

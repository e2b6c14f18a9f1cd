"""Pushing a work set to Label Studio as tasks (with the judge's pre-labels in assisted mode), resumable:
tasks carry the prediction id, so a push that stopped, or ran twice, imports only what is missing and brings
the tasks already there up to date."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from label_studio_sdk import LabelStudio

from annotation.core.assignment import draw_assisted
from annotation.errors import ErrorMapError
from annotation.models import (
    Analysis,
    Annotator,
    Label,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    WorkSet,
)
from annotation.selectors import work_set_named
from annotation.services.bulk_sql import bulk_cursor, insert_rows
from annotation.services.labelstudio.client import (
    ProjectPush,
    ProjectSpec,
    client_url,
    labelstudio_client,
    labelstudio_errors,
    list_task_data,
    open_project,
    project_push_fields,
    refresh_task_data,
    task_ids_by_prediction,
)
from annotation.services.labelstudio.config import (
    CATEGORY_CONTROL,
    PREDICTION_KEY,
    build_label_config,
)
from annotation.services.labelstudio.mirror import groups_under_other_versions, rebuild_label_sets
from annotation.services.runs import progress, stage_run
from taxonomy.core.paths import PATH_SEPARATOR
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import ensure_verdict_categories, resolve_version


@dataclass(frozen=True, kw_only=True)
class PushReport(ProjectPush):
    tasks_total: int
    tasks_imported: int
    tasks_recovered: int
    predictions_imported: int
    # Tasks already in the project whose data or judge predictions were brought up to date (a new
    # taxonomy version, judge labels made after the first push), and predictions written for them.
    tasks_refreshed: int = 0
    predictions_refreshed: int = 0
    # Mixed projects: tasks that show the judge's pre-label (the rest are blind); None otherwise.
    tasks_assisted: int | None = None


def project_title(work_set: WorkSet, version: TaxonomyVersion, mode: str) -> str:
    """Deterministic (a push that stopped finds its project by it) and within Label Studio's 50 chars."""
    return short_title(f"{work_set.name} / {version.taxonomy.name} / {mode}")


def short_title(title: str) -> str:
    """A project title within Label Studio's 50 characters, still unique (a digest of the full one)."""
    if len(title) <= 50:
        return title
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"{title[:40].rstrip()} #{digest}"


# --- tasks ---------------------------------------------------------------------------------------


def judge_labels_by_prediction(
    version: TaxonomyVersion, prediction_ids: list[int]
) -> dict[int, list[Label]]:
    """prediction id -> the judge's labels on it under `version`."""
    rows: dict[int, list[Label]] = {}
    labels = (
        Label.objects.filter(
            taxonomy_version=version, source=Label.Source.JUDGE, prediction_id__in=prediction_ids
        )
        .select_related("category", "annotator", "prompt_version")
        # What label_task reads, and no more (a prompt version's template is kilobytes, once per label).
        .only("prediction_id", "confidence", "error_title", "error_summary", "category__path",
              "annotator__name", "prompt_version__name", "prompt_version__sha256")
        .order_by("prediction_id", "annotator_id", "category__path")
    )
    for label in labels:
        rows.setdefault(label.prediction_id, []).append(label)
    return rows


def latest_analyses(predictions: list[Prediction]) -> dict[str, Analysis]:
    """content key -> the latest successful judge analysis of it."""
    keys = {p.content_key for p in predictions}
    found: dict[str, Analysis] = {}
    for analysis in (
        Analysis.objects.filter(content_key__in=keys, status=Analysis.Status.OK)
        .only("content_key", "error_title", "error_summary")  # what label_task reads
        .order_by("created_at")
    ):
        found[analysis.content_key] = analysis  # the latest wins
    return found


def judge_model_version(label: Label) -> str:
    """A judge label's Label Studio model_version: "<judge>" or "<judge>+<prompt>@<sha8>"."""
    prompt = label.prompt_version
    return (
        f"{label.annotator.name}+{prompt.name}@{prompt.sha256[:8]}"
        if prompt
        else label.annotator.name
    )


# What a blind task of a mixed project shows where an assisted one shows the judge's analysis (the
# config has the panel, and Label Studio wants every task to hold the data its config names).
NO_JUDGE_SHOWN = "(not shown for this task)"


def shows_judge(mode: str, assisted: bool | None) -> bool:
    """Whether a task of a project in `mode` (with its mixed-mode draw) shows the judge's pre-label."""
    return mode == LabelStudioProject.Mode.ASSISTED or (
        mode == LabelStudioProject.Mode.MIXED and bool(assisted)
    )


def label_task(
    prediction: Prediction,
    *,
    mode: str,
    judge_labels: list[Label],
    analysis: Analysis | None,
    assisted: bool | None = None,
) -> dict[str, Any]:
    """One task: the failure's texts; in assisted mode (and on a mixed project's assisted tasks) the
    judge's analysis and predictions. Blind and mixed projects name neither the model nor its score
    (the platform keeps them): either could sway an annotator, and a mixed project's two arms must
    differ only by the pre-label."""
    example = prediction.example
    meta = f"dataset {example.dataset.name} · example {example.example_id}"
    if mode == LabelStudioProject.Mode.ASSISTED:
        meta += f" · model {prediction.model.name} · score {prediction.score:g}"
    data = {
        PREDICTION_KEY: prediction.pk,
        "meta": meta,
        "input": example.input_text,
        "reference": example.reference or "(no reference)",
        "output": prediction.output_text,
    }
    task: dict[str, Any] = {"data": data}
    if mode == LabelStudioProject.Mode.MIXED and not assisted:
        data["judge_analysis"] = NO_JUDGE_SHOWN
    if not shows_judge(mode, assisted):
        return task  # blind: annotators see nothing of the judge
    title = (judge_labels[0].error_title if judge_labels else "") or (
        analysis.error_title if analysis else ""
    )
    summary = (judge_labels[0].error_summary if judge_labels else "") or (
        analysis.error_summary if analysis else ""
    )
    data["judge_analysis"] = f"{title}\n\n{summary}".strip() or "(no judge analysis)"
    by_model_version: dict[str, list[Label]] = {}
    for label in judge_labels:
        by_model_version.setdefault(judge_model_version(label), []).append(label)
    predictions = []
    for model_version, labels in by_model_version.items():
        confidences = [label.confidence for label in labels if label.confidence is not None]
        prediction_json: dict[str, Any] = {
            "model_version": model_version,
            "result": [
                {
                    "from_name": CATEGORY_CONTROL,
                    "to_name": "output",
                    "type": "taxonomy",
                    "value": {
                        "taxonomy": [label.category.path.split(PATH_SEPARATOR) for label in labels]
                    },
                }
            ],
        }
        if confidences:
            prediction_json["score"] = max(confidences)
        predictions.append(prediction_json)
    if predictions:
        task["predictions"] = predictions
    return task


def label_tasks(
    predictions: list[Prediction],
    *,
    version: TaxonomyVersion,
    mode: str,
    assisted: dict[int, bool] | None = None,
) -> list[dict[str, Any]]:
    """The tasks (data; the judge's predictions where shown) of these predictions, in order;
    `assisted` is a mixed project's draw (prediction id -> shows the judge)."""
    assisted = assisted or {}
    shown = [p for p in predictions if shows_judge(mode, assisted.get(p.pk))]
    judge = judge_labels_by_prediction(version, [p.pk for p in shown]) if shown else {}
    analyses = latest_analyses(shown) if shown else {}
    return [
        label_task(
            p,
            mode=mode,
            judge_labels=judge.get(p.pk, []),
            analysis=analyses.get(p.content_key),
            assisted=assisted.get(p.pk),
        )
        for p in predictions
    ]


def import_tasks(
    client: LabelStudio,
    project: LabelStudioProject,
    prediction_ids: list[int],
    payload: list[dict[str, Any]],
    *,
    assisted: dict[int, bool] | None = None,
) -> None:
    """Import one batch of tasks (one per prediction, in order) and record them with their mixed-mode
    draw."""
    sent = send_tasks(client, project.labelstudio_id, payload)
    record_tasks(client, project, prediction_ids, sent, assisted=assisted)


def send_tasks(
    client: LabelStudio, labelstudio_project_id: int, payload: list[dict[str, Any]]
) -> list[int] | None:
    """Import one batch of tasks into Label Studio (no database work: it may run in another thread).
    -> the new task ids in order, or None when the server does not return them."""
    with labelstudio_errors(client_url(client)):
        response = client.projects.import_tasks(
            # Plain dicts: the SDK sends them as they are (its request models are only one way in).
            id=labelstudio_project_id, request=cast(Any, payload), return_task_ids=True
        )
    return getattr(response, "task_ids", None) or (response.model_extra or {}).get("task_ids")


def record_tasks(
    client: LabelStudio,
    project: LabelStudioProject,
    prediction_ids: list[int],
    task_ids: list[int] | None,
    *,
    assisted: dict[int, bool] | None = None,
) -> None:
    """Record the tasks send_tasks made for these predictions, with their mixed-mode draw (plain tuples
    in one bulk INSERT: the ORM's per-object path was most of this)."""
    if not task_ids or len(task_ids) != len(prediction_ids):
        # Older servers do not return ids: list them (still keyed by the prediction id in data).
        listed = task_ids_by_prediction(list_task_data(client, project.labelstudio_id))
        task_ids = [listed[pid] for pid in prediction_ids]
    assisted = assisted or {}
    rows = [(project.pk, pid, tid, assisted.get(pid)) for pid, tid in zip(prediction_ids, task_ids, strict=True)]
    with transaction.atomic(savepoint=False), bulk_cursor() as cursor:
        insert_rows(cursor, connection.ops.quote_name(LabelStudioTask._meta.db_table),
                    ("project_id", "prediction_id", "labelstudio_id", "assisted"), rows)


# --- keeping tasks up to date ---------------------------------------------------------------------


def is_judge_prediction(model_version: str, judges: list[str]) -> bool:
    """True for a prediction the platform's judges made (see judge_model_version)."""
    return any(model_version == name or model_version.startswith(f"{name}+") for name in judges)


def prediction_state(result: list[dict[str, Any]], score: float | None) -> tuple[Any, ...]:
    """What a prediction shows, comparable between Label Studio's copy and the wanted one."""
    regions = [
        (
            r.get("from_name"),
            r.get("to_name"),
            r.get("type"),
            json.dumps(r.get("value"), sort_keys=True),
        )
        for r in result or []
    ]
    return regions, None if score is None else round(float(score), 6)


def refresh_judge_predictions(
    client: LabelStudio, project: LabelStudioProject, wanted: dict[int, list[dict[str, Any]]]
) -> tuple[set[int], int]:
    """Make the judge's predictions on these tasks (Label Studio task id -> prediction dicts)
    exactly `wanted`: one prediction per model version, updated in place when its result or score
    differs, created when missing, deleted when the judge has no labels for it any more (e.g. an
    older taxonomy version's). Predictions from anything but the platform's judges (an ML backend)
    are left alone; annotations are never touched. -> (task ids changed, predictions written)."""
    if not wanted:
        return set(), 0
    judges = list(
        Annotator.objects.filter(kind=Annotator.Kind.JUDGE).values_list("name", flat=True)
    )
    changed: set[int] = set()
    written = 0
    with labelstudio_errors(client_url(client)):
        held: dict[int, list[Any]] = {}
        for prediction in client.predictions.list(task_project=project.labelstudio_id):
            ours = is_judge_prediction(prediction.model_version or "", judges)
            if ours and prediction.task in wanted:
                held.setdefault(prediction.task, []).append(prediction)
        for task_id in sorted(wanted):
            current = sorted(held.get(task_id, []), key=lambda p: p.id)
            for want in wanted[task_id]:
                match = next((p for p in current if p.model_version == want["model_version"]), None)
                if match is None:
                    client.predictions.create(task=task_id, **want)
                else:
                    current.remove(match)
                    if prediction_state(match.result, match.score) == prediction_state(
                        want["result"], want.get("score")
                    ):
                        continue
                    client.predictions.update(
                        id=match.id, result=want["result"], score=want.get("score")
                    )
                changed.add(task_id)
                written += 1
            for stale in current:  # a duplicate, or a judge model version with no labels now
                client.predictions.delete(id=stale.id)
                changed.add(task_id)
                written += 1
    return changed, written


def ensure_model_version(client: LabelStudio, project: LabelStudioProject, wanted: Counter[str]) -> bool:
    """Label Studio pre-fills the labeling view only with predictions of the project's model_version
    (set on the first import): when the judge's predictions now carry another one, point it at the
    most common of them. A model version chosen among the current ones is kept. -> changed?"""
    if not wanted:
        return False
    with labelstudio_errors(client_url(client)):
        current = client.projects.get(id=project.labelstudio_id).model_version or ""
        if current in wanted:
            return False
        client.projects.update(id=project.labelstudio_id, model_version=wanted.most_common(1)[0][0])
    return True


def refresh_label_tasks(
    client: LabelStudio,
    project: LabelStudioProject,
    remote_data: dict[int, dict[str, Any]],
    *,
    version: TaxonomyVersion,
    batch_size: int,
) -> tuple[set[int], int, Counter[str]]:
    """Bring the tasks already in the project up to date with its taxonomy version: their data (the
    judge's analysis in assisted mode) and the judge's predictions. Nothing is written where Label
    Studio already holds the same. -> (task ids changed, predictions written, model versions)."""
    tasks = [
        t
        for t in project.tasks.select_related("prediction__example__dataset", "prediction__model")
        .order_by("pk")
        .iterator(chunk_size=2000)
        if t.labelstudio_id in remote_data  # a task deleted in Label Studio stays deleted
    ]
    data: dict[int, dict[str, Any]] = {}
    predictions: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start : start + batch_size]
        payloads = label_tasks(
            [t.prediction for t in batch],
            version=version,
            mode=project.mode,
            assisted={t.prediction_id: t.assisted for t in batch if t.assisted is not None},
        )
        for task, payload in zip(batch, payloads):
            data[task.labelstudio_id] = payload["data"]
            predictions[task.labelstudio_id] = payload.get("predictions", [])
    changed = refresh_task_data(client, wanted=data, remote=remote_data)
    with_predictions, written = refresh_judge_predictions(client, project, predictions)
    model_versions = Counter(p["model_version"] for wanted in predictions.values() for p in wanted)
    return changed | with_predictions, written, model_versions


# --- the stage -----------------------------------------------------------------------------------


def push_labelstudio(
    *,
    work_set: str,
    taxonomy: str,
    mode: str = LabelStudioProject.Mode.BLIND,
    overlap: int = 1,
    batch_size: int | None = None,
    client: LabelStudio | None = None,
    webhook_secret: str | None = None,
    webhook_url: str | None = None,
    assisted_share: float | None = None,
    seed: int | None = None,
) -> PushReport:
    """Create or update the Label Studio project for a work set and import its missing tasks in batches.

    Resumable: tasks carry the prediction id, and tasks already in the project are listed first, so a
    push that stopped halfway (or ran twice) imports only what is missing. Tasks already there are
    brought up to date with the version pushed (in assisted mode: the judge's predictions and
    analysis under it), where Label Studio holds something else.

    Mixed mode: a seeded random `assisted_share` of the work set's tasks shows the judge's pre-label and
    the rest are blind, in one project; the draw is stored per task and made once (a re-push keeps it,
    and refuses another share or seed)."""
    modes = (
        LabelStudioProject.Mode.BLIND,
        LabelStudioProject.Mode.ASSISTED,
        LabelStudioProject.Mode.MIXED,
    )
    if mode not in modes:
        raise ErrorMapError(f"mode must be blind, assisted or mixed, not {mode!r}")
    if mode == LabelStudioProject.Mode.MIXED:
        assisted_share = 0.5 if assisted_share is None else assisted_share
        seed = 0 if seed is None else seed
        if not 0.0 <= assisted_share <= 1.0:
            raise ErrorMapError(f"--assisted-share must be between 0 and 1, not {assisted_share}")
    elif assisted_share is not None or seed is not None:
        raise ErrorMapError("--assisted-share and --seed apply to --mode mixed only")
    if overlap < 1:
        raise ErrorMapError("overlap must be at least 1")
    ws = work_set_named(work_set)
    version = resolve_version(taxonomy)
    batch_size = batch_size or settings.LABEL_STUDIO_IMPORT_BATCH
    # Not checked up front: opening the project is an authenticated request that fails with the same
    # clear error (one round trip less).
    client = client or labelstudio_client(check=False)
    url = client_url(client)
    config = {"work_set": work_set, "taxonomy": str(version), "mode": mode, "overlap": overlap}
    if mode == LabelStudioProject.Mode.MIXED:
        config |= {"assisted_share": assisted_share, "seed": seed}
    with stage_run("push_labelstudio", config) as run:
        # The config offers the verdicts (not an error, broken item) beside the categories: as categories
        # of the version, annotations naming them are mirrored like any other.
        ensure_verdict_categories(version)
        local = LabelStudioProject.objects.filter(
            work_set=ws, taxonomy_version__taxonomy=version.taxonomy, mode=mode
        ).first()
        if local is not None and mode == LabelStudioProject.Mode.MIXED:
            drawn = (local.assisted_share, local.assignment_seed)
            if drawn != (assisted_share, seed):
                raise ErrorMapError(
                    f"the mixed project of work set {ws.name!r} was drawn with assisted share"
                    f" {drawn[0]} and seed {drawn[1]}; its draw is kept: push it with those"
                    " (or use another work set for another draw)"
                )
        work_set_ids = list(Prediction.objects.filter(work_sets=ws).values_list("pk", flat=True))
        assisted: dict[int, bool] = {}
        if mode == LabelStudioProject.Mode.MIXED:
            # Drawn over the whole work set (frozen), so an interrupted push draws the same; tasks
            # already recorded keep what they were given (below).
            assert assisted_share is not None and seed is not None  # defaulted above for mixed mode
            assisted_ids = draw_assisted(work_set_ids, share=assisted_share, seed=seed)
            assisted = {pid: pid in assisted_ids for pid in work_set_ids}
        opened = open_project(
            client,
            ProjectSpec(
                local=local,
                title=project_title(ws, version, mode),
                create={
                    "description": f"Work set {ws.name}, taxonomy {version}, {mode} mode (ErrorMap Studio)",
                    "label_config": build_label_config(version, mode=mode),
                    "maximum_annotations": overlap,
                    "overlap_cohort_percentage": 100,
                    "show_collab_predictions": mode != LabelStudioProject.Mode.BLIND,
                },
                record={
                    "work_set": ws,
                    "taxonomy_version": version,
                    "mode": mode,
                    "overlap": overlap,
                    "assisted_share": assisted_share,
                    "assignment_seed": seed,
                },
                keep=("label_config", "maximum_annotations"),
            ),
            expected=set(work_set_ids),
            assisted=assisted,
            webhook_secret=webhook_secret,
            webhook_url=webhook_url,
        )
        project, created, remote_data = opened.project, opened.created, opened.remote_tasks
        done, recovered = opened.done, opened.recovered
        # A new taxonomy version (the remote config is already in step): annotations mirrored under the
        # previous one are re-read under it once the tasks are pushed.
        config_updated = project.taxonomy_version_id != version.pk
        if config_updated or project.overlap != overlap:
            project.taxonomy_version = version
            project.overlap = overlap
            project.save(update_fields=["taxonomy_version", "overlap"])
        if mode == LabelStudioProject.Mode.MIXED:
            assisted.update(
                cast(
                    "QuerySet[LabelStudioTask, tuple[int, bool]]",  # assisted=None excluded
                    project.tasks.exclude(assisted=None).values_list("prediction_id", "assisted"),
                )
            )
        refreshed, predictions_refreshed, model_versions = refresh_label_tasks(
            client, project, remote_data, version=version, batch_size=batch_size
        )
        # Ids only here; each batch's rows are read when it is built, so the first batch goes out
        # without waiting for every prediction of the work set to be read.
        todo = sorted(set(work_set_ids) - done)
        total = len(work_set_ids)
        imported = predictions_imported = 0
        # Label Studio imports one batch (in a sender thread, no database work there) while this thread
        # builds the next batch's tasks and records the previous one's: a push that stops between the
        # two keeps what it sent, and the next push adopts those tasks. The first batch is a quarter
        # size, so Label Studio starts working sooner.
        first = max(1, batch_size // 4)
        bounds = [0, *range(min(first, len(todo)), len(todo), batch_size), len(todo)] if todo else []
        batches = list(itertools.pairwise(bounds))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-send") as sender:
            sending: tuple[list[int], Future[list[int] | None]] | None = None
            for start, end in progress(batches, total=len(batches), desc="push", unit="batch"):
                batch = list(
                    Prediction.objects.filter(pk__in=todo[start:end])
                    .select_related("example__dataset", "model")
                    .order_by("pk")
                )
                payload = label_tasks(batch, version=version, mode=mode, assisted=assisted)
                sent = sender.submit(send_tasks, client, project.labelstudio_id, payload)
                if sending is not None:
                    record_tasks(client, project, sending[0], sending[1].result(), assisted=assisted)
                sending = ([p.pk for p in batch], sent)
                imported += len(batch)
                predictions_imported += sum(len(task.get("predictions", [])) for task in payload)
                model_versions.update(
                    p["model_version"] for task in payload for p in task.get("predictions", [])
                )
            if sending is not None:
                record_tasks(client, project, sending[0], sending[1].result(), assisted=assisted)
        # Label Studio takes a new project's model version from its first import: with one judge version
        # there is nothing to check (one request less).
        if not (created and len(model_versions) <= 1):
            ensure_model_version(client, project, model_versions)
        if config_updated:
            # Annotations mirrored under the previous version are re-read under the new one.
            rebuild_label_sets(groups_under_other_versions(project), project)
        run.counts = {
            "tasks_total": total,
            "tasks_imported": imported,
            "tasks_recovered": recovered,
            "predictions_imported": predictions_imported,
            "tasks_refreshed": len(refreshed),
            "predictions_refreshed": predictions_refreshed,
        }
    return PushReport(
        **project_push_fields(opened, base_url=url, config_updated=config_updated),
        tasks_total=total,
        tasks_imported=imported,
        tasks_recovered=recovered,
        predictions_imported=predictions_imported,
        tasks_refreshed=len(refreshed),
        predictions_refreshed=predictions_refreshed,
        tasks_assisted=(
            project.tasks.filter(assisted=True).count()
            if mode == LabelStudioProject.Mode.MIXED
            else None
        ),
    )

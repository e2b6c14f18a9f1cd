"""The Label Studio adjudication project: open queue items as tasks that show the item and every
annotator's and the judge's labels, and the adjudicator's mirrored annotations turned into decisions
through the same `resolve_item` as the command and the REST API."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from label_studio_sdk import LabelStudio

from annotation.errors import ErrorMapError
from annotation.models import (
    AdjudicationDecision,
    AdjudicationItem,
    Annotator,
    Label,
    LabelStudioAnnotation,
    LabelStudioProject,
    LabelStudioTask,
    WorkSet,
)
from annotation.selectors import work_set_named
from annotation.services.adjudication import (
    ITEM_SEPARATOR,
    adjudicator_named,
    resolve_item,
    withdraw_decision,
)
from annotation.services.labelstudio.client import (
    ProjectPush,
    ProjectSpec,
    client_url,
    labelstudio_client,
    list_users,
    open_project,
    project_push_fields,
    refresh_task_data,
)
from annotation.services.labelstudio.config import (
    CATEGORY_CONTROL,
    ITEM_KEY,
    PREDICTION_KEY,
    REASON_CONTROL,
    build_adjudication_config,
)
from annotation.services.labelstudio.mirror import EPOCH, EXTERNAL_PREFIX
from annotation.services.labelstudio.push import import_tasks, short_title
from annotation.services.runs import stage_run
from taxonomy.core.paths import PATH_SEPARATOR, join_path, split_path
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import (
    category_index,
    ensure_verdict_categories,
    resolve_version,
)

logger = logging.getLogger(__name__)

PLACEHOLDER_PREFIX = "labelstudio-user-"


@dataclass(frozen=True, kw_only=True)
class AdjudicationPushReport(ProjectPush):
    taxonomy_version: str
    open_items: int
    tasks_imported: int
    tasks_recovered: int
    adjudicators: tuple[str, ...]
    # Open items already in the project whose task showed outdated labels or why (reopened, relabelled).
    tasks_refreshed: int = 0


@dataclass(frozen=True)
class DecisionReport:
    made: int = 0
    withdrawn: int = 0
    refused: int = (
        0  # annotations that cannot be a decision (no category, no reason, unknown category)
    )


# --- tasks ---------------------------------------------------------------------------------------


def adjudication_project_title(version: TaxonomyVersion, work_set: WorkSet | None) -> str:
    """Deterministic (an interrupted push adopts its project by it) and within Label Studio's 50 chars."""
    return short_title(f"adjudicate {version}" + (f" / {work_set.name}" if work_set else ""))


def labels_text(version: TaxonomyVersion, prediction_ids: list[int]) -> dict[int, tuple[str, str]]:
    """prediction id -> (annotators' labels, judge's labels) as plain text, one line per annotator."""
    humans: dict[int, dict[str, list[Label]]] = {}
    judges: dict[int, dict[str, list[Label]]] = {}
    rows = (
        Label.objects.filter(
            taxonomy_version=version,
            prediction_id__in=prediction_ids,
            source__in=(Label.Source.HUMAN, Label.Source.JUDGE),
        )
        .select_related("annotator", "category")
        .order_by("annotator__name", "category__path")
    )
    for label in rows:
        target = humans if label.source == Label.Source.HUMAN else judges
        target.setdefault(label.prediction_id, {}).setdefault(label.annotator.name, []).append(
            label
        )

    def human_line(name: str, labels: list[Label]) -> str:
        line = f"{name}: " + "; ".join(label.category.path for label in labels)
        proposals = sorted({label.proposed_category for label in labels if label.proposed_category})
        notes = sorted({label.note for label in labels if label.note})
        if proposals:
            line += f" (proposes a new category: {'; '.join(proposals)})"
        if notes:
            line += f" (note: {' / '.join(notes)})"
        return line

    def judge_line(name: str, labels: list[Label]) -> str:
        parts = []
        for label in labels:
            confidence = (
                f" (confidence {label.confidence:.2f})" if label.confidence is not None else ""
            )
            parts.append(label.category.path + confidence)
        return f"{name}: " + "; ".join(parts)

    return {
        pid: (
            "\n".join(human_line(n, ls) for n, ls in sorted(humans.get(pid, {}).items()))
            or "(none)",
            "\n".join(judge_line(n, ls) for n, ls in sorted(judges.get(pid, {}).items()))
            or "(no judge label)",
        )
        for pid in prediction_ids
    }


def adjudication_task(item: AdjudicationItem, labels: tuple[str, str]) -> dict[str, Any]:
    """One adjudication task: the item, why it is disputed, and everyone's labels as text."""
    prediction = item.prediction
    example = prediction.example
    return {
        "data": {
            PREDICTION_KEY: prediction.pk,
            ITEM_KEY: item.pk,
            "meta": f"item {example.dataset.name}{ITEM_SEPARATOR}{example.example_id}{ITEM_SEPARATOR}"
            f"{prediction.model.name} · queue #{item.pk} · score {prediction.score:g}",
            "input": example.input_text,
            "reference": example.reference or "(no reference)",
            "output": prediction.output_text,
            "why": item.why,
            "annotator_labels": labels[0],
            "judge_labels": labels[1],
        }
    }


# --- who decides ---------------------------------------------------------------------------------


def adjudicator_for(user_id: int, users: dict[int, dict[str, Any]] | None = None) -> Annotator:
    """The adjudicator (an Annotator of kind adjudicator) for a Label Studio user, created on first sight.

    A webhook names only the user id, so a first sight there is named 'labelstudio-user-N' until a sync
    (or push --adjudicator) learns the email. A user who is also a human annotator (their Label Studio id
    already maps to that annotator) decides as '<name> (adjudicator)'."""
    info = (users or {}).get(user_id) or {}
    email = info.get("email") or ""
    name = email or info.get("username") or f"{PLACEHOLDER_PREFIX}{user_id}"
    mapped = Annotator.objects.filter(labelstudio_user_id=user_id).first()
    if mapped is None:
        if Annotator.objects.filter(name=name).exists():
            name = f"{name} (labelstudio {user_id})"
        return Annotator.objects.create(
            name=name, kind=Annotator.Kind.ADJUDICATOR, email=email, labelstudio_user_id=user_id
        )
    if mapped.kind != Annotator.Kind.ADJUDICATOR:
        return adjudicator_named(mapped.name)
    if (
        email
        and mapped.name.startswith(PLACEHOLDER_PREFIX)
        and not Annotator.objects.filter(name=name).exists()
    ):
        mapped.name, mapped.email = name, email
        mapped.save(update_fields=["name", "email"])
    return mapped


def map_adjudicators(client: LabelStudio, emails: Iterable[str]) -> tuple[str, ...]:
    """The adjudicators for these Label Studio users' emails (refused when one has no user)."""
    emails = [e.strip() for e in emails if e and e.strip()]
    if not emails:
        return ()
    users = list_users(client)
    by_email = {info["email"].lower(): uid for uid, info in users.items() if info["email"]}
    missing = [e for e in emails if e.lower() not in by_email]
    if missing:
        raise ErrorMapError(
            f"no Label Studio user with email {', '.join(missing)}: create them in Label Studio first"
        )
    return tuple(adjudicator_for(by_email[e.lower()], users).name for e in emails)


# --- push ----------------------------------------------------------------------------------------


def push_adjudication(
    *,
    taxonomy: str,
    work_set: str | None = None,
    adjudicators: Iterable[str] = (),
    batch_size: int | None = None,
    client: LabelStudio | None = None,
    webhook_secret: str | None = None,
    webhook_url: str | None = None,
) -> AdjudicationPushReport:
    """Create or update the adjudication project of a taxonomy version (optionally one work set's items)
    and import every open queue item not yet in it. Resolved items are never pushed; pushing twice
    imports nothing new; a push that stopped halfway recovers the tasks it had already made."""
    version = resolve_version(taxonomy)
    ws = None
    if work_set:
        ws = work_set_named(work_set)
    batch_size = batch_size or settings.LABEL_STUDIO_IMPORT_BATCH
    client = client or labelstudio_client()
    url = client_url(client)
    config = {
        "taxonomy": str(version),
        "work_set": work_set,
        "mode": LabelStudioProject.Mode.ADJUDICATION,
    }
    with stage_run("push_adjudication", config) as run:
        # The config offers the verdicts (not an error, broken item) beside the categories: as categories
        # of the version, annotations naming them are mirrored like any other.
        ensure_verdict_categories(version)
        mapped = map_adjudicators(client, adjudicators)
        local = LabelStudioProject.objects.filter(
            mode=LabelStudioProject.Mode.ADJUDICATION, taxonomy_version=version, work_set=ws
        ).first()
        scope = f"work set {ws.name}" if ws else "the whole queue"
        items = AdjudicationItem.objects.filter(
            taxonomy_version=version, status=AdjudicationItem.Status.OPEN
        )
        if ws is not None:
            items = items.filter(prediction__work_sets=ws)
        opened = open_project(
            client,
            ProjectSpec(
                local=local,
                title=adjudication_project_title(version, ws),
                create={
                    "description": f"Adjudication of disputed items, taxonomy {version}, {scope} (ErrorMap Studio)",
                    "label_config": build_adjudication_config(version),
                    "maximum_annotations": 1,
                    "show_collab_predictions": False,
                },
                record={
                    "work_set": ws,
                    "taxonomy_version": version,
                    "mode": LabelStudioProject.Mode.ADJUDICATION,
                    "overlap": 1,
                },
                keep=("label_config",),
            ),
            expected=set(items.values_list("prediction_id", flat=True)),
            webhook_secret=webhook_secret,
            webhook_url=webhook_url,
        )
        project, done = opened.project, opened.done
        refreshed = refresh_adjudication_tasks(
            client,
            project,
            items=items,
            version=version,
            remote_data=opened.remote_tasks,
            batch_size=batch_size,
        )
        open_items = items.count()
        todo = list(
            items.exclude(prediction_id__in=done)
            .select_related("prediction__example__dataset", "prediction__model")
            .order_by("pk")
        )
        imported = 0
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = labels_text(version, [q.prediction_id for q in batch])
            payload = [adjudication_task(q, texts[q.prediction_id]) for q in batch]
            import_tasks(client, project, [q.prediction_id for q in batch], payload)
            imported += len(batch)
        run.counts = {
            "open_items": open_items,
            "tasks_imported": imported,
            "tasks_recovered": opened.recovered,
            "tasks_refreshed": len(refreshed),
        }
    return AdjudicationPushReport(
        **project_push_fields(opened, base_url=url, config_updated="label_config" in opened.settings_updated),
        taxonomy_version=str(version),
        open_items=open_items,
        tasks_imported=imported,
        tasks_recovered=opened.recovered,
        adjudicators=mapped,
        tasks_refreshed=len(refreshed),
    )


def refresh_adjudication_tasks(
    client: LabelStudio,
    project: LabelStudioProject,
    *,
    items: QuerySet[AdjudicationItem],
    version: TaxonomyVersion,
    remote_data: dict[int, dict[str, Any]],
    batch_size: int,
) -> set[int]:
    """Give the tasks of open items already in the project what the item shows now (every annotator's
    and the judge's labels, why it is disputed): an item reopened or relabelled since its push shows its
    new labels in the same task. Annotations are untouched; tasks that already show it are not written."""
    tasks = dict(project.tasks.values_list("prediction_id", "labelstudio_id"))
    shown = list(
        items.filter(prediction_id__in=project.tasks.values("prediction_id"))
        .select_related("prediction__example__dataset", "prediction__model")
        .order_by("pk")
    )
    wanted: dict[int, dict[str, Any]] = {}
    for start in range(0, len(shown), batch_size):
        batch = shown[start : start + batch_size]
        texts = labels_text(version, [q.prediction_id for q in batch])
        for q in batch:
            wanted[tasks[q.prediction_id]] = adjudication_task(q, texts[q.prediction_id])["data"]
    return refresh_task_data(client, wanted=wanted, remote=remote_data)


# --- annotations -> decisions --------------------------------------------------------------------


def parse_decision(result: list[dict[str, Any]]) -> tuple[list[str], str]:
    """(category paths, reason) from an adjudication annotation's result list."""
    paths: list[str] = []
    reasons: list[str] = []
    for region in result or []:
        value = region.get("value") or {}
        if region.get("from_name") == CATEGORY_CONTROL:
            for parts in value.get("taxonomy") or []:
                path = PATH_SEPARATOR.join(str(p).strip() for p in parts if str(p).strip())
                if path and path not in paths:
                    paths.append(path)
        elif region.get("from_name") == REASON_CONTROL:
            reasons.extend(t.strip() for t in value.get("text") or [] if t and t.strip())
    return paths, "\n".join(reasons)


def _item_ref(task: LabelStudioTask, version: TaxonomyVersion) -> str:
    queued = AdjudicationItem.objects.filter(
        prediction_id=task.prediction_id, taxonomy_version=version
    ).first()
    if queued is not None:
        return str(queued.pk)
    example = task.prediction.example
    return ITEM_SEPARATOR.join(
        (example.dataset.name, example.example_id, task.prediction.model.name)
    )


def reconcile_decisions(project: LabelStudioProject, task_ids: Iterable[int]) -> DecisionReport:
    """Make the decisions of these tasks (platform task ids) follow their mirrored adjudication
    annotations: the latest live annotation is the decision (unless that exact state was already applied:
    a later decision from the API or the command then stands); when the annotation behind the current
    decision is gone, the next latest live one decides, or the decision is withdrawn and the item
    reopened."""
    version = project.taxonomy_version
    index = category_index(version)
    made = withdrawn = refused = 0
    tasks = LabelStudioTask.objects.filter(pk__in=set(task_ids), project=project).select_related(
        "prediction__example__dataset", "prediction__model"
    )
    for task in tasks.order_by("pk"):
        rows = list(LabelStudioAnnotation.objects.filter(task=task).select_related("annotator"))
        live = sorted(
            (r for r in rows if not r.deleted and not r.was_cancelled),
            key=lambda r: (r.labelstudio_updated_at or EPOCH, r.labelstudio_id),
        )
        dead = {
            f"{EXTERNAL_PREFIX}{r.labelstudio_id}" for r in rows if r.deleted or r.was_cancelled
        }
        active = AdjudicationDecision.objects.filter(
            prediction_id=task.prediction_id, taxonomy_version=version, superseded=False
        ).first()
        lost = active is not None and active.external_id in dead
        if not live:
            if lost:
                assert active is not None  # `lost` implies it
                withdraw_decision(decision=active)
                withdrawn += 1
            continue
        latest = live[-1]
        paths, reason = parse_decision(latest.result)
        external_id = f"{EXTERNAL_PREFIX}{latest.labelstudio_id}"
        canonical = sorted(
            {index[k].path for k in (join_path(split_path(p)).lower() for p in paths) if k in index}
        )
        if not lost and active is not None:
            prior = (
                AdjudicationDecision.objects.filter(
                    prediction_id=task.prediction_id,
                    taxonomy_version=version,
                    external_id=external_id,
                )
                .order_by("-pk")
                .first()
            )
            if prior is not None and (prior.categories, prior.reason, prior.decided_by_id) == (
                canonical,
                reason,
                latest.annotator_id,
            ):
                continue  # this state of the annotation is already a decision
        try:
            resolve_item(
                item=_item_ref(task, version),
                categories=paths,
                by=latest.annotator.name,
                reason=reason,
                taxonomy=str(version),
                external_id=external_id,
            )
        except ErrorMapError as exc:
            refused += 1
            logger.warning(
                "adjudication annotation %s on task %s is not a decision: %s",
                latest.labelstudio_id,
                task.labelstudio_id,
                exc,
            )
            if lost:
                assert active is not None  # `lost` implies it
                withdraw_decision(decision=active)
                withdrawn += 1
            continue
        made += 1
    return DecisionReport(made=made, withdrawn=withdrawn, refused=refused)

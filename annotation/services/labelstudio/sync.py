"""Reading annotations back from Label Studio: the reconciling sync of whole projects, and webhook
deliveries, which are only hints (the annotation ids they name are read back from Label Studio with the
platform's token; nothing of a payload is stored). Both dispatch by project mode: label projects give
human label sets, adjudication projects give decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from label_studio_sdk import LabelStudio

from annotation.errors import ErrorMapError
from annotation.models import Annotator, LabelStudioAnnotation, LabelStudioProject
from annotation.services.labelstudio.adjudication import adjudicator_for, reconcile_decisions
from annotation.services.labelstudio.client import (
    WEBHOOK_ACTIONS,
    export_annotations,
    labelstudio_client,
    list_users,
)
from annotation.services.labelstudio.mirror import (
    MirrorChanges,
    groups_under_other_versions,
    human_annotator,
    mirror_tasks,
    rebuild_label_sets,
)
from annotation.services.runs import stage_run

# A change Label Studio made longer ago than this, found by a sync and not by a delivery, was missed.
DELIVERY_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class SyncReport:
    projects: int
    annotations_seen: int
    annotations_changed: int
    annotations_deleted: int
    labels_created: int
    labels_updated: int
    labels_deleted: int
    # Adjudication projects: annotations become decisions, not labels.
    decisions_made: int = 0
    decisions_withdrawn: int = 0
    decisions_refused: int = 0
    # Projects whose webhook deliveries are failing (Label Studio keeps no record of them: the sync
    # sees annotation changes that no delivery brought), one message each.
    webhook_problems: tuple[str, ...] = ()


# The action of the deliveries a worker reads back together (each was one of WEBHOOK_ACTIONS).
COALESCED_ACTION = "COALESCED"


@dataclass(frozen=True)
class WebhookDelivery:
    """What the platform takes from a webhook delivery: which project and which annotations (and tasks)
    to read back from Label Studio. Results, users and timestamps in the payload are ignored."""

    action: str
    project_id: int | None
    annotation_ids: tuple[int, ...] = ()
    task_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class WebhookReport:
    action: str
    handled: bool
    annotations: int
    detail: str = ""


def _project_reads(
    project: LabelStudioProject, changes: MirrorChanges, *, all_tasks: bool = False
) -> dict[str, int]:
    """Apply mirror changes by project mode: label sets, or decisions. -> counts for the reports."""
    if project.mode == LabelStudioProject.Mode.ADJUDICATION:
        if all_tasks:  # a decision a webhook missed or refused is retried; what was applied stays
            task_ids: Iterable[int] = LabelStudioAnnotation.objects.filter(
                project=project
            ).values_list("task_id", flat=True)
        else:
            task_ids = {t for t, _ in changes.groups}
        decided = reconcile_decisions(project, task_ids)
        return {
            "decisions_made": decided.made,
            "decisions_withdrawn": decided.withdrawn,
            "decisions_refused": decided.refused,
        }
    groups = changes.groups
    if all_tasks:  # after a taxonomy version change every held set is re-read under the new version
        groups |= groups_under_other_versions(project)
    written = rebuild_label_sets(groups, project)
    return {
        "labels_created": written.created,
        "labels_updated": written.updated,
        "labels_deleted": written.deleted,
    }


def _read_back(
    client: LabelStudio,
    project: LabelStudioProject,
    *,
    users: dict[int, dict[str, Any]] | Future[dict[int, dict[str, Any]]] | None,
    task_ids: set[int] | None = None,
) -> tuple[MirrorChanges, dict[str, int], datetime]:
    """Read the project's tasks (all, or these Label Studio task ids) back from Label Studio in one
    export, mirror them and apply the changes by mode. -> (changes, counts, when the export was asked).
    `users` may still be on its way (a future): it is needed only after the export."""
    read_at = timezone.now()  # anything the mirror holds from after this, the export cannot show
    exported = export_annotations(client, project.labelstudio_id, task_ids=task_ids)
    if isinstance(users, Future):
        users = users.result()
    with transaction.atomic():
        changes = mirror_tasks(
            project,
            exported,
            annotator_of=_annotator_lookup(project, users),
            read_at=read_at,
            only_tasks=task_ids,
            keep_newer=task_ids is not None,  # webhook reads may race each other; a sync reads all
        )
        counts = _project_reads(project, changes, all_tasks=task_ids is None)
    return changes, counts, read_at


def _annotator_lookup(
    project: LabelStudioProject, users: dict[int, dict[str, Any]] | None
) -> Callable[[int], Annotator]:
    if project.mode == LabelStudioProject.Mode.ADJUDICATION:
        return lambda user_id: adjudicator_for(user_id, users)
    return lambda user_id: human_annotator(user_id, users)


def sync_labelstudio(
    *, work_set: str | None = None, project_id: int | None = None, client: LabelStudio | None = None
) -> SyncReport:
    """Reconcile every annotation of the pushed projects (or one work set's, or one project's) with the
    platform: new and changed annotations are written, deleted ones removed, the rest left alone."""
    projects = LabelStudioProject.objects.select_related("taxonomy_version").order_by("pk")
    if work_set:
        projects = projects.filter(work_set__name=work_set)
        if not projects.exists():
            raise ErrorMapError(f"work set {work_set!r} has not been pushed to Label Studio")
    if project_id is not None:
        projects = projects.filter(labelstudio_id=project_id)
    # Not checked up front: the users listing below is an authenticated request that fails with the same
    # clear error, and it runs while the first export is being made (one round trip less).
    client = client or labelstudio_client(check=False)
    totals: dict[str, Any] = dict.fromkeys(SyncReport.__dataclass_fields__, 0)
    problems: list[str] = []
    with (
        stage_run("sync_labelstudio", {"work_set": work_set, "project_id": project_id}) as run,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-users") as reader,
    ):
        # The users are listed while Label Studio makes the first export (they are needed after it).
        users = reader.submit(list_users, client)
        if not projects:  # nothing to export: the listing alone checks the address and the token
            users.result()
        for project in projects:
            changes, counts, read_at = _read_back(client, project, users=users)
            problem = _record_webhook_health(project, changes, read_at)
            if problem:
                problems.append(problem)
            totals["projects"] += 1
            totals["annotations_seen"] += changes.seen
            totals["annotations_changed"] += len(changes.changed)
            totals["annotations_deleted"] += len(changes.deleted)
            for key, value in counts.items():
                totals[key] += value
        totals["webhook_problems"] = tuple(problems)
        report = SyncReport(**totals)
        run.counts = {k: v for k, v in asdict(report).items() if k != "webhook_problems"}
        run.counts["webhook_problems"] = len(problems)
    return report


def _record_webhook_health(project: LabelStudioProject, changes: MirrorChanges, read_at: datetime) -> str:
    """Count what this sync brought that a delivery should have (changes older than the grace period,
    and deletions), keep it on the project, and say so when deliveries are failing."""
    missed = len(changes.deleted) + sum(
        1
        for row in changes.changed
        if row.labelstudio_updated_at is not None
        and row.labelstudio_updated_at < read_at - DELIVERY_GRACE
    )
    LabelStudioProject.objects.filter(pk=project.pk).update(
        last_sync_at=read_at, missed_by_webhook=missed
    )
    if not missed:
        return ""
    where = project.webhook_url or "(no webhook registered)"
    last = (
        project.last_delivery_at.isoformat(timespec="seconds")
        if project.last_delivery_at
        else "never"
    )
    return (
        f"project {project.labelstudio_id} ({project.title}): {missed} annotation change(s) reached the"
        f" platform only by this sync; webhook deliveries to {where} are failing (last delivery received:"
        f" {last}). Check that Label Studio can reach that URL (set ERRORMAP_PUBLIC_URL or push with"
        " --webhook-url)."
    )


# --- webhooks ------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def parse_webhook_delivery(payload: dict[str, Any]) -> WebhookDelivery:
    """The action, project and annotation/task ids of a delivery; anything else in it is ignored."""
    action = payload.get("action")
    action = action if isinstance(action, str) else ""
    annotations = (
        payload.get("annotations") if action == "ANNOTATIONS_DELETED" else payload.get("annotation")
    )
    if isinstance(annotations, dict):
        annotations = [annotations]
    if not isinstance(annotations, list):
        annotations = []
    annotation_ids = []
    task_ids = []
    for annotation in annotations:
        if not isinstance(annotation, dict):
            continue
        if (annotation_id := _int(annotation.get("id"))) is not None:
            annotation_ids.append(annotation_id)
        if (task_id := _int(annotation.get("task"))) is not None:
            task_ids.append(task_id)
    if (task_id := _int(payload.get("task"))) is not None:
        task_ids.append(task_id)
    return WebhookDelivery(
        action=action,
        project_id=_int(payload.get("project")),
        annotation_ids=tuple(dict.fromkeys(annotation_ids)),
        task_ids=tuple(dict.fromkeys(task_ids)),
    )


def handle_webhook(
    delivery: WebhookDelivery, *, client: LabelStudio | None = None
) -> WebhookReport:
    """Act on one webhook delivery: re-read the tasks of the annotations it names from Label Studio (one
    export request) and mirror what Label Studio holds, as a sync of those tasks would. A forged or
    replayed delivery therefore changes nothing that Label Studio does not hold."""
    action = delivery.action
    if action not in WEBHOOK_ACTIONS and action != COALESCED_ACTION:
        return WebhookReport(action=action, handled=False, annotations=0, detail="action ignored")
    project = (
        LabelStudioProject.objects.select_related("taxonomy_version")
        .filter(labelstudio_id=delivery.project_id)
        .first()
        if delivery.project_id is not None
        else None
    )
    if project is None:
        return WebhookReport(action=action, handled=False, annotations=0, detail="unknown project")
    LabelStudioProject.objects.filter(pk=project.pk).update(last_delivery_at=timezone.now())
    # Tasks of ours: those named, and those our mirror holds the named annotations under.
    tasks = set(
        project.tasks.filter(labelstudio_id__in=delivery.task_ids).values_list(
            "labelstudio_id", flat=True
        )
    ) | set(
        LabelStudioAnnotation.objects.filter(
            project=project, labelstudio_id__in=delivery.annotation_ids
        ).values_list("task__labelstudio_id", flat=True)
    )
    if not tasks:
        return WebhookReport(
            action=action, handled=True, annotations=0, detail="no task of this project"
        )
    client = client or labelstudio_client(check=False)
    changes, counts, _ = _read_back(client, project, users=None, task_ids=tasks)
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    return WebhookReport(action=action, handled=True, annotations=changes.seen, detail=detail)

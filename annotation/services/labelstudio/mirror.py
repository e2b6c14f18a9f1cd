"""The platform's mirror of Label Studio annotations: one row per annotation holding its last known state
(deleted ones stay as tombstones), and the human label sets rebuilt from it. Webhooks and syncs both end
here, so repeated or out-of-order reads converge on the same labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation.models import (
    Annotator,
    Label,
    LabelStudioAnnotation,
    LabelStudioProject,
    LabelStudioTask,
)
from annotation.services.bulk_sql import batches, bulk_cursor, insert_rows
from annotation.services.labels import LabelEntry, LabelSet, LabelWriteReport, replace_label_sets
from annotation.services.labelstudio.config import (
    CATEGORY_CONTROL,
    NOTE_CONTROL,
    OTHER_DESCRIPTION,
    PROPOSAL_CONTROL,
)
from taxonomy.models import Category
from taxonomy.services.versions import CategoryResolver

EXTERNAL_PREFIX = "ls:"  # a label's external_id: "ls:<Label Studio annotation id>"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AnnotatorLookup = Callable[[int], Annotator]


class MirroredAnnotation(NamedTuple):
    """A mirror row a read changed (or marked deleted): what the label sets and the reports need of it."""

    labelstudio_id: int
    task_id: int
    annotator_id: int
    labelstudio_updated_at: datetime | None


@dataclass
class MirrorChanges:
    """What one read of Label Studio changed in the mirror."""

    seen: int = 0
    changed: list[MirroredAnnotation] = field(default_factory=list)  # created, changed or revived
    deleted: list[MirroredAnnotation] = field(default_factory=list)  # newly marked deleted

    @property
    def groups(self) -> set[tuple[int, int]]:
        """(task, annotator) pairs whose label sets may differ now."""
        return {(r.task_id, r.annotator_id) for r in [*self.changed, *self.deleted]}


def parse_user_id(value: Any) -> int | None:
    """A Label Studio user id from `completed_by` (an id, or a dict with one)."""
    if isinstance(value, dict):
        value = value.get("id")
    return int(value) if value is not None else None


def human_annotator(user_id: int, users: dict[int, dict[str, Any]] | None = None) -> Annotator:
    """The platform annotator for a Label Studio user, created on first sight (named after the user's
    email when `users` knows it, which a later sync fills in)."""
    annotator = Annotator.objects.filter(labelstudio_user_id=user_id).first()
    info = (users or {}).get(user_id) or {}
    email = info.get("email") or ""
    name = email or info.get("username") or f"labelstudio-user-{user_id}"
    if annotator is None:
        if Annotator.objects.filter(name=name).exists():
            name = f"{name} (labelstudio {user_id})"
        return Annotator.objects.create(
            name=name, kind=Annotator.Kind.HUMAN, email=email, labelstudio_user_id=user_id
        )
    if email and (annotator.email != email or annotator.name.startswith("labelstudio-user-")):
        annotator.email = email
        if (
            annotator.name.startswith("labelstudio-user-")
            and not Annotator.objects.filter(name=email).exists()
        ):
            annotator.name = email
        annotator.save(update_fields=["email", "name"])
    return annotator


# A mirror row's state as Label Studio gives it, in this order (the `id` and `synced_at` are ours).
MIRRORED_FIELDS = (
    "project_id",
    "task_id",
    "annotator_id",
    "result",
    "was_cancelled",
    "labelstudio_updated_at",
    "deleted",
)


def mirror_state(
    project: LabelStudioProject, task_id: int, annotation: dict[str, Any], annotator_id: int
) -> tuple[Any, ...]:
    """The MIRRORED_FIELDS values of an annotation as Label Studio holds it now (it is live: not deleted)."""
    updated_at = annotation.get("updated_at")
    updated = parse_datetime(updated_at) if isinstance(updated_at, str) else updated_at
    return (project.pk, task_id, annotator_id, annotation.get("result") or [],
            bool(annotation.get("was_cancelled")), updated, False)


def mirror_tasks(
    project: LabelStudioProject,
    exported: list[dict[str, Any]],
    *,
    annotator_of: AnnotatorLookup,
    read_at: datetime,
    only_tasks: set[int] | None = None,
    keep_newer: bool = False,
) -> MirrorChanges:
    """Make the mirror rows of the exported tasks (Label Studio's export format) what Label Studio holds:
    annotations written or revived, and rows of those tasks that Label Studio no longer has marked
    deleted, except rows written after `read_at` (the moment the export was asked for: it could not
    have seen them). `only_tasks` (Label Studio task ids) limits the deletions to the tasks read.

    A tombstone comes back to life: Label Studio still has the annotation, and it is the truth. With
    `keep_newer`, a state older (by Label Studio's own updated_at) than the one held is skipped: two reads
    racing. Rows are compared and written as plain tuples in bulk (a sync of thousands of annotations is
    a few statements, and no model objects)."""
    task_rows = project.tasks.all()
    existing_rows = LabelStudioAnnotation.objects.filter(project=project)
    if only_tasks is not None:
        task_rows = task_rows.filter(labelstudio_id__in=only_tasks)
        existing_rows = LabelStudioAnnotation.objects.filter(
            labelstudio_id__in=[a["id"] for item in exported for a in item.get("annotations") or []]
        )
    # Keyed by Label Studio task id; looked up with the export's "id", which may be missing.
    tasks: dict[int | None, int] = dict(task_rows.values_list("labelstudio_id", "pk"))
    existing = {
        labelstudio_id: (pk, tuple(state))
        for labelstudio_id, pk, *state in existing_rows.values_list("labelstudio_id", "pk", *MIRRORED_FIELDS)
    }
    changes = MirrorChanges()
    live: set[int] = set()
    annotators: dict[int, int] = {}
    new_rows: list[tuple[Any, ...]] = []
    updated_rows: list[tuple[Any, ...]] = []
    for item in exported:
        task_id = tasks.get(item.get("id"))
        if task_id is None:
            continue  # not ours (added by hand in Label Studio)
        for annotation in item.get("annotations") or []:
            user_id = parse_user_id(annotation.get("completed_by"))
            if user_id is None:
                continue
            changes.seen += 1
            labelstudio_id = annotation["id"]
            live.add(labelstudio_id)
            if user_id not in annotators:
                annotators[user_id] = annotator_of(user_id).pk
            state = mirror_state(project, task_id, annotation, annotators[user_id])
            held = existing.get(labelstudio_id)
            if held is not None:
                held_updated, updated = held[1][5], state[5]
                if held[1] == state or (keep_newer and held_updated and updated and updated < held_updated):
                    continue
                updated_rows.append((held[0], state))
            else:
                new_rows.append((labelstudio_id, state))
            changes.changed.append(MirroredAnnotation(labelstudio_id, task_id, state[2], state[5]))
    _write_mirror_rows(new_rows, updated_rows)
    gone = LabelStudioAnnotation.objects.filter(project=project, deleted=False, synced_at__lt=read_at)
    if only_tasks is not None:
        gone = gone.filter(task__labelstudio_id__in=only_tasks)
    changes.deleted = [
        MirroredAnnotation(*row)
        for row in gone.values_list("labelstudio_id", "task_id", "annotator_id", "labelstudio_updated_at")
        if row[0] not in live
    ]
    ids = [row.labelstudio_id for row in changes.deleted]
    for start in range(0, len(ids), 500):
        LabelStudioAnnotation.objects.filter(labelstudio_id__in=ids[start : start + 500]).update(deleted=True)
    return changes


def _write_mirror_rows(
    new_rows: list[tuple[int, tuple[Any, ...]]], updated_rows: list[tuple[int, tuple[Any, ...]]]
) -> None:
    """Insert (labelstudio id, state) rows and update (pk, state) rows, stamped now."""
    if not new_rows and not updated_rows:
        return
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())

    def adapted(state: tuple[Any, ...]) -> tuple[Any, ...]:
        project_id, task_id, annotator_id, result, was_cancelled, updated, deleted = state
        return (project_id, task_id, annotator_id, ops.adapt_json_value(result, None), was_cancelled,
                ops.adapt_datetimefield_value(updated), deleted, now)

    table = connection.ops.quote_name(LabelStudioAnnotation._meta.db_table)
    columns = MIRRORED_FIELDS  # their column names too (foreign keys by their `_id` attribute)
    with bulk_cursor() as cursor:
        for batch in batches(new_rows, 500):
            insert_rows(cursor, table, ("labelstudio_id", *columns, "synced_at"),
                        [(labelstudio_id, *adapted(state)) for labelstudio_id, state in batch])
        assignments = ", ".join(f"{column} = %s" for column in (*columns, "synced_at"))
        for batch in batches(updated_rows, 500):
            cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s",
                               [(*adapted(state), pk) for pk, state in batch])


def parse_result(result: list[dict[str, Any]], resolver: CategoryResolver) -> tuple[list[Category], str, str]:
    """(categories, proposal, note) from an annotation's result list."""
    categories: list[Category] = []
    proposals: list[str] = []
    notes: list[str] = []
    for region in result or []:
        name = region.get("from_name")
        value = region.get("value") or {}
        if name == CATEGORY_CONTROL:
            for parts in value.get("taxonomy") or []:
                if parts:
                    category, proposal = resolver.resolve([str(p) for p in parts])
                    if category not in categories:
                        categories.append(category)
                    if proposal:
                        proposals.append(proposal)
        elif name == PROPOSAL_CONTROL:
            proposals.extend(t.strip() for t in value.get("text") or [] if t and t.strip())
        elif name == NOTE_CONTROL:
            notes.extend(t.strip() for t in value.get("text") or [] if t and t.strip())
    proposal = "; ".join(dict.fromkeys(proposals))
    if proposal and not categories:
        categories.append(resolver.other())
    return categories, proposal, "\n".join(notes)


def rebuild_label_sets(
    groups: Iterable[tuple[int, int]], project: LabelStudioProject
) -> LabelWriteReport:
    """Recompute the human label sets of (task, annotator) pairs from the mirror: an annotator's latest
    live annotation on a task is their set; every version they no longer have rows in is emptied."""
    groups = set(groups)
    if not groups:
        return replace_label_sets([])
    resolver = CategoryResolver(project.taxonomy_version, other_description=OTHER_DESCRIPTION)
    task_ids = {t for t, _ in groups}
    prediction_of = dict(LabelStudioTask.objects.filter(pk__in=task_ids).values_list("pk", "prediction_id"))
    # (task, annotator) -> (updated at, Label Studio id, result) of each live annotation: plain values.
    mirror: dict[tuple[int, int], list[tuple[datetime, int, list[Any]]]] = {}
    for task_id, annotator_id, updated, labelstudio_id, result in LabelStudioAnnotation.objects.filter(
        task_id__in=task_ids, deleted=False, was_cancelled=False
    ).values_list("task_id", "annotator_id", "labelstudio_updated_at", "labelstudio_id", "result"):
        mirror.setdefault((task_id, annotator_id), []).append((updated or EPOCH, labelstudio_id, result))
    held_versions: dict[tuple[int, int], set[int]] = {}
    for prediction_id, annotator_id, version_id in Label.objects.filter(
        prediction_id__in=set(prediction_of.values()),
        annotator_id__in={a for _, a in groups},
        source=Label.Source.HUMAN,
        external_id__startswith=EXTERNAL_PREFIX,
    ).values_list("prediction_id", "annotator_id", "taxonomy_version_id"):
        held_versions.setdefault((prediction_id, annotator_id), set()).add(version_id)
    sets: list[LabelSet] = []
    for task_id, annotator_id in groups:
        prediction_id = prediction_of[task_id]
        wanted: dict[int, list[LabelEntry]] = {}
        rows = mirror.get((task_id, annotator_id))
        if rows:
            _, latest_id, latest_result = max(rows, key=lambda r: (r[0], r[1]))
            categories, proposal, note = parse_result(latest_result, resolver)
            for category in categories:
                wanted.setdefault(category.version_id, []).append(
                    LabelEntry(
                        category_id=category.pk,
                        details={
                            "note": note,
                            "proposed_category": proposal,
                            "external_id": f"{EXTERNAL_PREFIX}{latest_id}",
                        },
                    )
                )
        held = held_versions.get((prediction_id, annotator_id), set())
        for version_id in held | set(wanted):
            sets.append(
                LabelSet(
                    prediction_id=prediction_id,
                    taxonomy_version_id=version_id,
                    source=Label.Source.HUMAN,
                    annotator_id=annotator_id,
                    entries=tuple(wanted.get(version_id, [])),
                )
            )
    return replace_label_sets(sets)


def groups_under_other_versions(project: LabelStudioProject) -> set[tuple[int, int]]:
    """(task, annotator) pairs of the project whose human labels are held under another taxonomy version
    than the project's: after a version change they are re-read under the new one."""
    stale = (
        Label.objects.filter(
            source=Label.Source.HUMAN,
            external_id__startswith=EXTERNAL_PREFIX,
            prediction_id__in=project.tasks.values("prediction_id"),
        )
        .exclude(taxonomy_version=project.taxonomy_version)
        .values_list("external_id", flat=True)
    )
    stale_ids = {int(e[len(EXTERNAL_PREFIX) :]) for e in stale}
    return set(
        LabelStudioAnnotation.objects.filter(
            project=project, labelstudio_id__in=stale_ids
        ).values_list("task_id", "annotator_id")
    )

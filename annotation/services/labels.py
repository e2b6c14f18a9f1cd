"""Writing labels: each (item, taxonomy version, source, annotator) holds one *set* of categories.

Writers hand over complete sets; `replace_label_sets` makes the table match them exactly,
touching only rows that differ, so repeating a write (a re-import, a repeated webhook) changes nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from annotation.models import Annotator, Label

# Fields a label carries besides its key; a change in any of them is an update.
LABEL_DETAIL_FIELDS = (
    "confidence",
    "error_title",
    "error_summary",
    "rationale",
    "note",
    "proposed_category",
    "prompt_version_id",
    "analysis_id",
    "external_id",
)


@dataclass(frozen=True)
class LabelEntry:
    """One category of a set, with its details."""

    category_id: int
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LabelSet:
    """All categories one annotator gives one item under one taxonomy version and source."""

    prediction_id: int
    taxonomy_version_id: int
    source: str
    annotator_id: int
    entries: tuple[LabelEntry, ...]

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.prediction_id, self.taxonomy_version_id, self.source, self.annotator_id)


@dataclass(frozen=True)
class LabelWriteReport:
    created: int
    updated: int
    deleted: int
    unchanged: int

    def __add__(self, other: LabelWriteReport) -> LabelWriteReport:
        return LabelWriteReport(self.created + other.created, self.updated + other.updated,
                                self.deleted + other.deleted, self.unchanged + other.unchanged)


def get_annotator(name: str, *, kind: str = Annotator.Kind.HUMAN, **fields) -> Annotator:
    """The annotator of that name, created on first use."""
    annotator, _ = Annotator.objects.get_or_create(name=name, defaults={"kind": kind, **fields})
    return annotator


@transaction.atomic
def replace_label_sets(label_sets: Iterable[LabelSet], *, batch_size: int = 500) -> LabelWriteReport:
    """Make each set's rows exactly its entries (an empty set removes the annotator's labels on the item)."""
    created = updated = deleted = unchanged = 0
    sets = list({s.key: s for s in label_sets}.values())  # the last set given for a key wins
    for start in range(0, len(sets), batch_size):
        batch = sets[start : start + batch_size]
        existing: dict[tuple, dict[int, Label]] = {}
        rows = Label.objects.filter(
            prediction_id__in={s.prediction_id for s in batch},
            annotator_id__in={s.annotator_id for s in batch},
            taxonomy_version_id__in={s.taxonomy_version_id for s in batch},
        )
        for label in rows:
            key = (label.prediction_id, label.taxonomy_version_id, label.source, label.annotator_id)
            existing.setdefault(key, {})[label.category_id] = label
        to_create, to_update, to_delete = [], [], []
        for label_set in batch:
            current = existing.get(label_set.key, {})
            wanted = {entry.category_id: entry for entry in label_set.entries}
            to_delete.extend(label.pk for cat, label in current.items() if cat not in wanted)
            for category_id, entry in wanted.items():
                label = current.get(category_id)
                if label is None:
                    to_create.append(
                        Label(
                            prediction_id=label_set.prediction_id,
                            taxonomy_version_id=label_set.taxonomy_version_id,
                            source=label_set.source,
                            annotator_id=label_set.annotator_id,
                            category_id=category_id,
                            **_details(entry.details),
                        )
                    )
                    continue
                changes = {k: v for k, v in _details(entry.details).items() if getattr(label, k) != v}
                if changes:
                    for name, value in changes.items():
                        setattr(label, name, value)
                    to_update.append(label)
                else:
                    unchanged += 1
        if to_delete:
            deleted += Label.objects.filter(pk__in=to_delete).delete()[0]
        if to_create:
            Label.objects.bulk_create(to_create, batch_size=batch_size)
            created += len(to_create)
        for label in to_update:
            label.save()
        updated += len(to_update)
    return LabelWriteReport(created=created, updated=updated, deleted=deleted, unchanged=unchanged)


def _details(details: dict) -> dict:
    """Known detail fields with defaults, so a missing detail resets to empty rather than lingering."""
    unknown = set(details) - set(LABEL_DETAIL_FIELDS)
    if unknown:
        raise ValueError(f"unknown label fields: {sorted(unknown)}")
    defaults = {name: "" for name in LABEL_DETAIL_FIELDS}
    defaults.update(confidence=None, prompt_version_id=None, analysis_id=None)
    defaults.update(details)
    return defaults

"""Import labels from outside (a long table or the WMT23 MQM ratings) into the one label table."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.core.label_formats import read_labels
from annotation.errors import InputError
from annotation.models import Annotator, Label, Prediction
from annotation.services.adjudication import record_imported_gold
from annotation.services.labels import LabelEntry, LabelSet, get_annotator, replace_label_sets
from annotation.services.runs import progress, stage_run
from taxonomy.services.versions import category_index, ensure_category, resolve_version

MQM_TAXONOMY = "wmt23-mqm"


@dataclass(frozen=True)
class LabelImportReport:
    path: str
    taxonomy_version: str
    rows: int
    label_sets: int
    created: int
    updated: int
    deleted: int
    unchanged: int
    new_categories: list[str]
    gold_decisions: int = 0  # gold sets recorded as adjudication decisions (method import)
    superseded_decisions: int = 0  # earlier decisions on those items, kept as superseded


def import_labels(
    *, path: Path, source: str = "human", taxonomy: str | None = None, fmt: str = "auto"
) -> LabelImportReport:
    """Read the whole file, check every row, then write it in one transaction (nothing on error)."""
    rows = list(progress(read_labels(path, fmt=fmt), desc=path.name, unit="rows"))
    if not rows:
        raise InputError(str(path), None, "no label rows")
    is_mqm = fmt == "wmt23-mqm" or path.name.lower().endswith((".tsv.tar.gz", ".tsv"))
    taxonomy = taxonomy or (MQM_TAXONOMY if is_mqm else settings.ERRORMAP_DEFAULT_TAXONOMY)
    predictions = _prediction_ids({(r.dataset, r.example_id, r.model) for r in rows})
    for row in rows:
        if (row.dataset, row.example_id, row.model) not in predictions:
            raise InputError(
                str(path), row.line,
                f"no prediction for dataset={row.dataset!r} example_id={row.example_id!r} model={row.model!r}"
                " (ingest the results first)",
            )
    config = {"path": str(path), "source": source, "taxonomy": taxonomy, "format": fmt}
    with stage_run("import_labels", config) as run, transaction.atomic():
        version = resolve_version(taxonomy, create=True)
        categories = category_index(version)
        new_categories = []
        for path_name in sorted({r.category for r in rows}):
            if path_name.lower() not in categories:
                category = ensure_category(version, path_name)
                new_categories.append(category.path)
                categories = category_index(version)
        annotators: dict[str, Annotator] = {}
        grouped: dict[tuple, list[LabelEntry]] = defaultdict(list)
        for row in rows:
            row_source = row.source or source
            if row.annotator not in annotators:
                kind = {Label.Source.JUDGE: Annotator.Kind.JUDGE,
                        Label.Source.GOLD: Annotator.Kind.ADJUDICATOR}.get(row_source, Annotator.Kind.HUMAN)
                annotators[row.annotator] = get_annotator(row.annotator, kind=kind)
            key = (predictions[(row.dataset, row.example_id, row.model)], row_source, annotators[row.annotator].pk)
            grouped[key].append(
                LabelEntry(
                    category_id=categories[row.category.lower()].pk,
                    details={
                        "error_title": row.title,
                        "error_summary": row.summary,
                        "confidence": row.confidence,
                        "note": row.note,
                        "external_id": f"import:{path.name}",
                    },
                )
            )
        sets = [
            LabelSet(
                prediction_id=prediction_id,
                taxonomy_version_id=version.pk,
                source=row_source,
                annotator_id=annotator_id,
                entries=tuple(_merge_entries(entries)),
            )
            for (prediction_id, row_source, annotator_id), entries in grouped.items()
        ]
        # Gold is a decision: recorded through adjudication, superseding what decided the item before.
        gold = record_imported_gold(label_sets=[s for s in sets if s.source == Label.Source.GOLD],
                                    file_name=path.name)
        written = replace_label_sets([s for s in sets if s.source != Label.Source.GOLD]) + gold.written
        run.counts = {"rows": len(rows), "label_sets": len(sets), **written.__dict__,
                      "gold_decisions": gold.decisions, "superseded_decisions": gold.superseded}
    return LabelImportReport(
        path=str(path),
        taxonomy_version=str(version),
        rows=len(rows),
        label_sets=len(sets),
        new_categories=new_categories,
        gold_decisions=gold.decisions,
        superseded_decisions=gold.superseded,
        **written.__dict__,
    )


def _merge_entries(entries: list[LabelEntry]) -> list[LabelEntry]:
    """Repeated categories in one set (e.g. two MQM spans of one kind) count once; notes are joined."""
    merged: dict[int, LabelEntry] = {}
    for entry in entries:
        if entry.category_id in merged:
            previous = merged[entry.category_id].details
            notes = [n for n in (previous.get("note"), entry.details.get("note")) if n]
            merged[entry.category_id] = LabelEntry(entry.category_id, {**previous, "note": "; ".join(notes)})
        else:
            merged[entry.category_id] = entry
    return list(merged.values())


def _prediction_ids(items: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
    datasets = {d for d, _, _ in items}
    rows = Prediction.objects.filter(example__dataset__name__in=datasets).values_list(
        "pk", "example__dataset__name", "example__example_id", "model__name"
    )
    return {(d, e, m): pk for pk, d, e, m in rows}

"""Import labels from outside (a long table or the WMT23 MQM ratings) into the one label table.

The file is streamed once into a staging table (every row checked as it is read), the rows are
matched to predictions there in SQL, and the label sets are then written in chunks of items, in item
order, through the same writers as every other source. Memory stays flat however long the file is;
all of it happens in one transaction, so a bad row anywhere leaves nothing written.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, islice
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from annotation.core.label_formats import LabelRow, read_labels
from annotation.errors import ErrorMapError, InputError
from annotation.models import Annotator, Dataset, EvaluatedModel, Example, Label, Prediction
from annotation.services.adjudication import record_imported_gold
from annotation.services.bulk_sql import bulk_cursor, insert_rows
from annotation.services.ingest import input_limits
from annotation.services.labels import LabelEntry, LabelSet, get_annotator, replace_label_sets
from annotation.services.runs import progress, stage_run
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import (
    CategorySpec,
    add_categories,
    category_index,
    derive_version,
    resolve_version,
    version_in_use,
)

MQM_TAXONOMY = "wmt23-mqm"
STAGE_TABLE = "errormap_label_import_stage"
STAGE_COLUMNS = ("line", "dataset", "example_id", "model", "annotator", "source", "category",
                 "title", "summary", "confidence", "note")
STAGE_BATCH_ROWS = 20_000
# Items written per chunk: their label rows are the only ones held in memory at a time.
WRITE_CHUNK_ROWS = 20_000
# Label.external_id holds 200 characters: "import:" and the file name.
FILE_NAME_CHARS = 193


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
    # The version the labels went into was made by this import from this one (whose categories were
    # fixed because labels point at it), to hold the file's new categories.
    derived_from: str | None = None


@dataclass
class _Staged:
    """What one pass over the file learns besides the rows it stages: small, whatever the file's size."""

    rows: int = 0
    categories: dict[str, str] = field(default_factory=dict)  # lower-cased path -> path as first spelled
    annotators: dict[str, str] = field(default_factory=dict)  # name -> source of its first row


def import_labels(
    *, path: Path, source: str = "human", taxonomy: str | None = None, fmt: str = "auto"
) -> LabelImportReport:
    """Check every row of the file and write its label sets in one transaction (nothing on error).

    Unknown categories are added to the taxonomy's version while nothing points at it; once labels
    do, its categories are fixed: a new version is derived from it (categories copied, each mapped
    `kept`) and the labels go there; with an explicit NAME@N the import is refused instead.
    """
    is_mqm = fmt == "wmt23-mqm" or path.name.lower().endswith((".tsv.tar.gz", ".tsv"))
    taxonomy = taxonomy or (MQM_TAXONOMY if is_mqm else settings.ERRORMAP_DEFAULT_TAXONOMY)
    rows = read_labels(path, fmt=fmt, limits=input_limits())
    config = {"path": str(path), "source": source, "taxonomy": taxonomy, "format": fmt}
    file_name = path.name[:FILE_NAME_CHARS]
    with stage_run("import_labels", config) as run, transaction.atomic(), bulk_cursor() as cursor:
        staged = _stage_rows(cursor, progress(rows, desc=path.name, unit="rows"), default_source=source)
        if not staged.rows:
            raise InputError(str(path), None, "no label rows")
        _match_predictions(cursor, path)
        base = resolve_version(taxonomy, create=True)
        version, new_categories = _version_for(base, taxonomy, staged.categories, path)
        category_ids = {key: category.pk for key, category in category_index(version).items()}
        annotator_ids = {name: _annotator(name, row_source).pk for name, row_source in staged.annotators.items()}
        written, gold_decisions, superseded, label_sets = None, 0, 0, 0
        for sets in _label_set_chunks(cursor, version.pk, category_ids, annotator_ids, file_name):
            label_sets += len(sets)
            # Gold is a decision: recorded through adjudication, superseding what decided the item before.
            gold = record_imported_gold(label_sets=[s for s in sets if s.source == Label.Source.GOLD],
                                        file_name=file_name)
            chunk = replace_label_sets([s for s in sets if s.source != Label.Source.GOLD]) + gold.written
            written = chunk if written is None else written + chunk
            gold_decisions += gold.decisions
            superseded += gold.superseded
        cursor.execute(f"DROP TABLE {STAGE_TABLE}")
        assert written is not None
        run.counts = {"rows": staged.rows, "label_sets": label_sets, **written.__dict__,
                      "gold_decisions": gold_decisions, "superseded_decisions": superseded,
                      "taxonomy_version": str(version)}
    return LabelImportReport(
        path=str(path),
        taxonomy_version=str(version),
        rows=staged.rows,
        label_sets=label_sets,
        new_categories=new_categories,
        gold_decisions=gold_decisions,
        superseded_decisions=superseded,
        derived_from=str(base) if version != base else None,
        **written.__dict__,
    )


def _stage_rows(cursor, rows: Iterable[LabelRow], *, default_source: str) -> _Staged:
    """Copy the checked rows into a temporary staging table, a batch at a time."""
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {STAGE_TABLE} (line integer, dataset text, example_id text, model text, "
        "annotator text, source text, category text, title text, summary text, confidence double precision, "
        "note text, prediction_id bigint)"
    )
    staged = _Staged()
    categories, annotators = staged.categories, staged.annotators
    iterator = iter(rows)
    while batch := list(islice(iterator, STAGE_BATCH_ROWS)):
        values = []
        for row in batch:
            row_source = row.source or default_source
            categories.setdefault(row.category.lower(), row.category)
            annotators.setdefault(row.annotator, row_source)
            values.append((row.line, row.dataset, row.example_id, row.model, row.annotator, row_source,
                           row.category.lower(), row.title, row.summary, row.confidence, row.note))
        insert_rows(cursor, STAGE_TABLE, STAGE_COLUMNS, values)
        staged.rows += len(batch)
    return staged


def match_predictions_sql() -> str:
    """The statement that gives each staged row its prediction's id: one join of the staging table with
    the names (a hash or merge join on PostgreSQL, index lookups on SQLite). Not a correlated subquery
    per row: PostgreSQL ran that one as a subplan per staged row, which stalled for minutes."""
    names = {model: connection.ops.quote_name(model._meta.db_table)
             for model in (Prediction, Example, Dataset, EvaluatedModel)}
    return (
        f"UPDATE {STAGE_TABLE} SET prediction_id = p.id FROM {names[Prediction]} p "
        f"JOIN {names[Example]} e ON e.id = p.example_id JOIN {names[Dataset]} d ON d.id = e.dataset_id "
        f"JOIN {names[EvaluatedModel]} m ON m.id = p.model_id "
        f"WHERE d.name = {STAGE_TABLE}.dataset AND e.example_id = {STAGE_TABLE}.example_id "
        f"AND m.name = {STAGE_TABLE}.model"
    )


def _match_predictions(cursor, path: Path) -> None:
    """Give each staged row its prediction's id; the first row with no prediction is an InputError at
    its line."""
    # The staging table is new: without statistics the planner guesses its size and spread.
    cursor.execute(f"ANALYZE {STAGE_TABLE}")
    cursor.execute(match_predictions_sql())
    cursor.execute(
        f"SELECT line, dataset, example_id, model FROM {STAGE_TABLE} WHERE prediction_id IS NULL "
        "ORDER BY line LIMIT 1"
    )
    missing = cursor.fetchone()
    if missing is not None:
        line, dataset, example_id, model = missing
        raise InputError(
            str(path), line,
            f"no prediction for dataset={dataset!r} example_id={example_id!r} model={model!r} (ingest the results first)",
        )
    cursor.execute(f"CREATE INDEX {STAGE_TABLE}_order ON {STAGE_TABLE} (prediction_id, source, annotator, line)")


def _version_for(
    version: TaxonomyVersion, spec: str, categories: dict[str, str], path: Path
) -> tuple[TaxonomyVersion, list[str]]:
    """The version the labels go into, and the file's categories that were new to it."""
    known = category_index(version)
    new = sorted(spelled for key, spelled in categories.items() if key not in known)
    if not new:
        return version, []
    specs = [CategorySpec(p) for p in new]
    if not version_in_use(version):
        add_categories(version, specs)  # nothing points at it yet: it is still being built
        return version, new
    listed = ", ".join(new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
    if "@" in spec:
        name = version.taxonomy.name
        raise ErrorMapError(
            f"{path}: {version} already has labels, so its categories are fixed, and the file names "
            f"{len(new)} categor{'y' if len(new) == 1 else 'ies'} it does not have ({listed}). Import with "
            f"--taxonomy {name} to make a new version of {name} from {version} with them added "
            f"(each existing category mapped as kept), or use categories of {version}."
        )
    derived = derive_version(
        base=version, added=specs, origin=TaxonomyVersion.Origin.IMPORTED,
        note=f"import_labels {path.name}: {version} plus {len(new)} new categor{'y' if len(new) == 1 else 'ies'}",
    )
    return derived, new


def _annotator(name: str, source: str) -> Annotator:
    kind = {Label.Source.JUDGE: Annotator.Kind.JUDGE,
            Label.Source.GOLD: Annotator.Kind.ADJUDICATOR}.get(source, Annotator.Kind.HUMAN)
    return get_annotator(name, kind=kind)


def _label_set_chunks(
    cursor, version_id: int, category_ids: dict[str, int], annotator_ids: dict[str, int], file_name: str
) -> Iterator[list[LabelSet]]:
    """The staged rows as label sets, a chunk of whole items at a time, in item order (keyset pages on
    prediction id: no cursor stays open while the chunk is written)."""
    after = 0
    external_id = f"import:{file_name}"
    while True:
        # The last item of the next chunk: the item of its WRITE_CHUNK_ROWS-th row, or the very last.
        cursor.execute(
            f"SELECT max(prediction_id) FROM (SELECT prediction_id FROM {STAGE_TABLE} WHERE prediction_id > %s "
            f"ORDER BY prediction_id LIMIT {WRITE_CHUNK_ROWS}) AS head",
            [after],
        )
        (last,) = cursor.fetchone()
        if last is None:
            return
        cursor.execute(
            f"SELECT prediction_id, source, annotator, category, title, summary, confidence, note "
            f"FROM {STAGE_TABLE} WHERE prediction_id > %s AND prediction_id <= %s "
            "ORDER BY prediction_id, source, annotator, line",
            [after, last],
        )
        sets = []
        for (prediction_id, row_source, annotator), rows in groupby(cursor.fetchall(), key=lambda r: r[:3]):
            entries = [
                LabelEntry(category_ids[category], {
                    "error_title": title, "error_summary": summary, "confidence": confidence, "note": note,
                    "external_id": external_id,
                })
                for _, _, _, category, title, summary, confidence, note in rows
            ]
            sets.append(LabelSet(prediction_id=prediction_id, taxonomy_version_id=version_id, source=row_source,
                                 annotator_id=annotator_ids[annotator], entries=tuple(_merge_entries(entries))))
        yield sets
        after = last


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

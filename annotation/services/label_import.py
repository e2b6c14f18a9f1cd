"""Import labels from outside (a long table or the WMT23 MQM ratings) into the one label table.

The file is streamed once into a staging table (a CSV block by block through Arrow, checked column-wise;
other formats row by row), the rows are matched to predictions there in SQL, repeated categories in a
set are folded into one row, and the label sets are written set-wise in SQL (`replace_label_table`);
gold goes through adjudication's writer as a decision. Memory stays flat however long the file is; all
of it happens in one transaction, so a bad row anywhere leaves nothing written.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from annotation.core.label_formats import LabelBatch, read_label_batches
from annotation.errors import ErrorMapError, InputError
from annotation.models import Annotator, Dataset, EvaluatedModel, Example, Label, Prediction
from annotation.services.adjudication import record_imported_gold
from annotation.services.bulk_sql import bulk_cursor, insert_rows, paused_gc
from annotation.services.ingest import input_limits
from annotation.services.labels import (
    LabelEntry,
    LabelSet,
    get_annotator,
    replace_label_table,
)
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
# The staged rows with ids (annotator, category) and the label's detail columns: replace_label_table's input.
WANTED_TABLE = "errormap_label_import_wanted"
NAMES_TABLE = "errormap_label_import_names"  # annotator names and category keys -> ids
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
    batches = read_label_batches(path, fmt=fmt, limits=input_limits())
    config = {"path": str(path), "source": source, "taxonomy": taxonomy, "format": fmt}
    file_name = path.name[:FILE_NAME_CHARS]
    with stage_run("import_labels", config) as run, transaction.atomic(), bulk_cursor() as cursor:
        with progress(None, desc=path.name, unit="rows") as bar, paused_gc():
            staged = _stage_rows(cursor, batches, default_source=source, bar=bar)
        if not staged.rows:
            raise InputError(str(path), None, "no label rows")
        _match_predictions(cursor, path)
        base = resolve_version(taxonomy, create=True)
        version, new_categories = _version_for(base, taxonomy, staged.categories, path)
        category_ids = {key: category.pk for key, category in category_index(version).items()}
        annotator_ids = {name: _annotator(name, row_source).pk for name, row_source in staged.annotators.items()}
        _fold_repeated_categories(cursor)
        cursor.execute(f"SELECT count(*) FROM (SELECT DISTINCT prediction_id, source, annotator FROM {STAGE_TABLE}) s")
        (label_sets,) = cursor.fetchone()
        external_id = f"import:{file_name}"
        _stage_wanted(cursor, category_ids={k: category_ids[k] for k in staged.categories},
                      annotator_ids=annotator_ids, external_id=external_id)
        written = replace_label_table(cursor, WANTED_TABLE, version_id=version.pk)
        gold_decisions = superseded = 0
        for sets in _gold_set_chunks(cursor, version.pk, category_ids, annotator_ids, external_id):
            # Gold is a decision: recorded through adjudication, superseding what decided the item before.
            gold = record_imported_gold(label_sets=sets, file_name=file_name)
            written += gold.written
            gold_decisions += gold.decisions
            superseded += gold.superseded
        for table in (STAGE_TABLE, WANTED_TABLE, NAMES_TABLE):
            cursor.execute(f"DROP TABLE {table}")
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


def _stage_rows(cursor: Any, batches: Iterable[LabelBatch], *, default_source: str, bar: Any) -> _Staged:
    """Copy the checked rows into a temporary staging table, a batch at a time."""
    for table in (STAGE_TABLE, WANTED_TABLE, NAMES_TABLE):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    # line is the key (one row per line; a repeated category is folded into its first line's row).
    cursor.execute(
        f"CREATE TEMPORARY TABLE {STAGE_TABLE} (line integer PRIMARY KEY, dataset text, example_id text, "
        "model text, annotator text, source text, category text, title text, summary text, "
        "confidence double precision, note text, prediction_id bigint)"
    )
    staged = _Staged()
    categories, annotators = staged.categories, staged.annotators
    for batch in batches:
        sources = [row_source or default_source for row_source in batch.source]
        for category in dict.fromkeys(batch.category):  # distinct, in the file's order: the first spelling wins
            categories.setdefault(category.lower(), category)
        if dict.fromkeys(batch.annotator).keys() - annotators.keys():
            for name, row_source in zip(batch.annotator, sources):
                annotators.setdefault(name, row_source)
        keys = [category.lower() for category in batch.category]
        insert_rows(cursor, STAGE_TABLE, STAGE_COLUMNS, list(zip(
            batch.line, batch.dataset, batch.example_id, batch.model, batch.annotator, sources, keys,
            batch.title, batch.summary, batch.confidence, batch.note)))
        staged.rows += len(batch)
        bar.update(len(batch))
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


def _match_predictions(cursor: CursorWrapper, path: Path) -> None:
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
            f"no prediction for dataset={dataset!r} example_id={example_id!r} model={model!r} "
            "(ingest the results first)",
        )
    cursor.execute(
        f"CREATE INDEX {STAGE_TABLE}_order ON {STAGE_TABLE} (prediction_id, source, annotator, category, line)")


def _fold_repeated_categories(cursor: Any) -> None:
    """A category repeated in one set (e.g. two MQM spans of one kind) counts once: the first line's row
    stays, with the notes of all its repeats joined; the others leave the staging table. (Only the
    repeats are read into Python: few, whatever the file's size.)"""
    key = "prediction_id, source, annotator, category"
    cursor.execute(
        f"SELECT s.prediction_id, s.source, s.annotator, s.category, s.line, s.note FROM {STAGE_TABLE} s "
        f"JOIN (SELECT {key} FROM {STAGE_TABLE} GROUP BY {key} HAVING count(*) > 1) r "
        "ON s.prediction_id = r.prediction_id AND s.source = r.source AND s.annotator = r.annotator "
        "AND s.category = r.category ORDER BY s.prediction_id, s.source, s.annotator, s.category, s.line"
    )
    notes: list[tuple[str, int]] = []
    gone: list[tuple[int]] = []
    for _, group in groupby(cursor.fetchall(), key=lambda row: row[:4]):
        (*_, first, first_note), *others = group
        joined = "; ".join(note for note in [first_note, *(row[5] for row in others)] if note)
        if joined != first_note:
            notes.append((joined, first))
        gone.extend((row[4],) for row in others)
    if notes:
        cursor.executemany(f"UPDATE {STAGE_TABLE} SET note = %s WHERE line = %s", notes)
    if gone:
        cursor.executemany(f"DELETE FROM {STAGE_TABLE} WHERE line = %s", gone)


def _stage_wanted(
    cursor: Any, *, category_ids: dict[str, int], annotator_ids: dict[str, int], external_id: str
) -> None:
    """The staged rows other than gold, with annotator and category ids and every label detail column,
    in set order: replace_label_table's input."""
    cursor.execute(f"CREATE TEMPORARY TABLE {NAMES_TABLE} (kind text, name text, id bigint, PRIMARY KEY (kind, name))")
    insert_rows(cursor, NAMES_TABLE, ("kind", "name", "id"),
                [("a", name, pk) for name, pk in annotator_ids.items()]
                + [("c", key, pk) for key, pk in category_ids.items()])
    cursor.execute(
        f"CREATE TEMPORARY TABLE {WANTED_TABLE} (prediction_id bigint, source text, annotator_id bigint, "
        "category_id bigint, confidence double precision, error_title text, error_summary text, rationale text, "
        "note text, proposed_category text, prompt_version_id bigint, analysis_id bigint, external_id text, "
        "PRIMARY KEY (prediction_id, source, annotator_id, category_id))"
    )
    cursor.execute(
        f"INSERT INTO {WANTED_TABLE} SELECT s.prediction_id, s.source, a.id, c.id, s.confidence, s.title, "
        f"s.summary, '', s.note, '', NULL, NULL, %s FROM {STAGE_TABLE} s "
        f"JOIN {NAMES_TABLE} a ON a.kind = 'a' AND a.name = s.annotator "
        f"JOIN {NAMES_TABLE} c ON c.kind = 'c' AND c.name = s.category "
        "WHERE s.source <> %s ORDER BY s.prediction_id, s.source, s.annotator, s.category",
        [external_id, Label.Source.GOLD],
    )
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {WANTED_TABLE}")  # a temporary table has no statistics until asked


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
    kinds: dict[str, str] = {Label.Source.JUDGE: Annotator.Kind.JUDGE, Label.Source.GOLD: Annotator.Kind.ADJUDICATOR}
    kind = kinds.get(source, Annotator.Kind.HUMAN)
    return get_annotator(name, kind=kind)


def _gold_set_chunks(
    cursor: CursorWrapper, version_id: int, category_ids: dict[str, int], annotator_ids: dict[str, int],
    external_id: str
) -> Iterator[list[LabelSet]]:
    """The staged gold rows as label sets, a chunk of whole items at a time, in item order (keyset pages
    on prediction id: no cursor stays open while the chunk is written). Repeats are already folded."""
    after = 0
    gold = Label.Source.GOLD
    while True:
        # The last item of the next chunk: the item of its WRITE_CHUNK_ROWS-th row, or the very last.
        cursor.execute(
            f"SELECT max(prediction_id) FROM (SELECT prediction_id FROM {STAGE_TABLE} WHERE source = %s "
            f"AND prediction_id > %s ORDER BY prediction_id LIMIT {WRITE_CHUNK_ROWS}) AS head",
            [gold, after],
        )
        (last,) = cursor.fetchone()
        if last is None:
            return
        cursor.execute(
            f"SELECT prediction_id, annotator, category, title, summary, confidence, note "
            f"FROM {STAGE_TABLE} WHERE source = %s AND prediction_id > %s AND prediction_id <= %s "
            "ORDER BY prediction_id, annotator, line",
            [gold, after, last],
        )
        yield [
            LabelSet(prediction_id=prediction_id, taxonomy_version_id=version_id, source=gold,
                     annotator_id=annotator_ids[annotator], entries=tuple(
                         LabelEntry(category_ids[category], {
                             "error_title": title, "error_summary": summary, "confidence": confidence,
                             "note": note, "external_id": external_id})
                         for _, _, category, title, summary, confidence, note in rows))
            for (prediction_id, annotator), rows in groupby(cursor.fetchall(), key=lambda r: r[:2])
        ]
        after = last

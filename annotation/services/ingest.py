"""Ingest benchmark results: stream each file, validate it whole, write it in one transaction.

Rows are written in chunks with plain SQL (portable between SQLite and PostgreSQL) because the
ORM's per-object path is ten times slower; an unchanged row (same row hash) is not written at all.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Avg, BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from annotation.core.failure_rules import failure_threshold
from annotation.core.result_formats import ResultRow, read_results
from annotation.errors import InputError
from annotation.models import Dataset, EvaluatedModel, Example, Prediction
from annotation.services.runs import progress, stage_run

CHUNK_ROWS = 20_000
RESULT_SUFFIXES = (".csv", ".jsonl", ".parquet", ".tsv.tar.gz")


@dataclass(frozen=True)
class FileReport:
    path: str
    format: str
    rows: int
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders are searched recursively for result files (sorted, so runs are repeatable)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(RESULT_SUFFIXES))
            )
        else:
            found.append(path)
    return found


def ingest_results(*, paths: Iterable[Path], dataset: str | None = None, fmt: str = "auto") -> IngestReport:
    """Ingest every file; each is all-or-nothing. Stops at the first bad file (earlier files stay)."""
    files = expand_paths(paths)
    if not files:
        raise InputError(", ".join(str(p) for p in paths), None, "no result files found")
    reports: list[FileReport] = []
    touched: set[int] = set()
    with stage_run("ingest", {"paths": [str(p) for p in files], "dataset": dataset, "format": fmt}) as run:
        for path in files:
            report, dataset_ids = _ingest_file(path, dataset=dataset, fmt=fmt)
            reports.append(report)
            touched |= dataset_ids
            run.counts = {"files": len(reports), "rows": sum(r.rows for r in reports)}
        names = apply_failure_rule(dataset_ids=touched)
    return IngestReport(files=reports, datasets=names)


def _ingest_file(path: Path, *, dataset: str | None, fmt: str) -> tuple[FileReport, set[int]]:
    from annotation.core.result_formats import detect_format

    resolved_fmt = detect_format(path) if fmt == "auto" else fmt
    rows = read_results(path, fmt=resolved_fmt, dataset=dataset)
    writer = _ChunkWriter()
    with transaction.atomic():
        for chunk in _chunks(progress(rows, desc=path.name, unit="rows"), CHUNK_ROWS):
            writer.write(chunk)
    report = FileReport(
        path=str(path),
        format=resolved_fmt,
        rows=writer.rows,
        created=writer.created,
        updated=writer.updated,
        unchanged=writer.rows - writer.created - writer.updated,
    )
    return report, set(writer.dataset_ids.values())


def _chunks(rows: Iterable[ResultRow], size: int) -> Iterator[list[ResultRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def content_key(input_text: str, output_text: str, reference: str) -> str:
    """Identical (input, output, reference) failures share this key, and so one judge analysis."""
    joined = "\x1f".join((input_text, output_text, reference))
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


class _ChunkWriter:
    """Upserts examples and predictions chunk by chunk; remembers only dataset and model ids."""

    def __init__(self) -> None:
        self.dataset_ids: dict[str, int] = {}
        self.model_ids: dict[str, int] = {}
        self.rows = self.created = self.updated = 0
        self.example_table = connection.ops.quote_name(Example._meta.db_table)
        self.prediction_table = connection.ops.quote_name(Prediction._meta.db_table)

    def write(self, chunk: list[ResultRow]) -> None:
        self.rows += len(chunk)
        # Within a chunk the last row for a key wins, like a later file overriding an earlier one.
        examples: dict[tuple[int, str], ResultRow] = {}
        predictions: dict[tuple[int, str, int], ResultRow] = {}
        for row in chunk:
            dataset_id = self._dataset_id(row.dataset)
            examples[(dataset_id, row.example_id)] = row
            predictions[(dataset_id, row.example_id, self._model_id(row.model))] = row
        example_pks, new_example_pks = self._upsert_examples(examples)
        self._upsert_predictions(predictions, example_pks, new_example_pks)

    def _dataset_id(self, name: str) -> int:
        if name not in self.dataset_ids:
            self.dataset_ids[name] = Dataset.objects.get_or_create(name=name)[0].pk
        return self.dataset_ids[name]

    def _model_id(self, name: str) -> int:
        if name not in self.model_ids:
            self.model_ids[name] = EvaluatedModel.objects.get_or_create(name=name)[0].pk
        return self.model_ids[name]

    def _upsert_examples(
        self, examples: dict[tuple[int, str], ResultRow]
    ) -> tuple[dict[tuple[int, str], int], set[int]]:
        """Insert new examples, update changed ones; returns every key's pk and the pks just created."""
        by_dataset: dict[int, list[str]] = {}
        for dataset_id, example_id in examples:
            by_dataset.setdefault(dataset_id, []).append(example_id)
        existing: dict[tuple[int, str], tuple[int, str, str]] = {}
        with _bulk_cursor() as cursor:
            for dataset_id, ids in by_dataset.items():
                for part in _batches(ids, 900):
                    marks = ",".join(["%s"] * len(part))
                    cursor.execute(
                        f"SELECT id, example_id, input_text, reference FROM {self.example_table} "
                        f"WHERE dataset_id = %s AND example_id IN ({marks})",
                        [dataset_id, *part],
                    )
                    for pk, example_id, input_text, reference in cursor.fetchall():
                        existing[(dataset_id, example_id)] = (pk, input_text, reference)
            new = [(d, e, r.input_text, r.reference) for (d, e), r in examples.items() if (d, e) not in existing]
            changed = [
                (r.input_text, r.reference, existing[key][0])
                for key, r in examples.items()
                if key in existing and (existing[key][1], existing[key][2]) != (r.input_text, r.reference)
            ]
            if new:
                _insert_rows(cursor, self.example_table, ("dataset_id", "example_id", "input_text", "reference"), new)
            if changed:
                cursor.executemany(
                    f"UPDATE {self.example_table} SET input_text = %s, reference = %s WHERE id = %s", changed
                )
            pks = {key: value[0] for key, value in existing.items()}
            created: set[int] = set()
            if new:
                for dataset_id, ids in by_dataset.items():
                    fresh = [e for e in ids if (dataset_id, e) not in pks]
                    for part in _batches(fresh, 900):
                        marks = ",".join(["%s"] * len(part))
                        cursor.execute(
                            f"SELECT id, example_id FROM {self.example_table} "
                            f"WHERE dataset_id = %s AND example_id IN ({marks})",
                            [dataset_id, *part],
                        )
                        for pk, example_id in cursor.fetchall():
                            pks[(dataset_id, example_id)] = pk
                            created.add(pk)
        return pks, created

    def _upsert_predictions(
        self,
        predictions: dict[tuple[int, str, int], ResultRow],
        example_pks: dict[tuple[int, str], int],
        new_example_pks: set[int],
    ) -> None:
        keyed = {(example_pks[(d, e)], m): row for (d, e, m), row in predictions.items()}
        # An example created in this chunk has no predictions yet: only older ones need a look-up.
        example_ids = sorted({example_pk for example_pk, _ in keyed} - new_example_pks)
        existing: dict[tuple[int, int], tuple[int, str]] = {}
        with _bulk_cursor() as cursor:
            for part in _batches(example_ids, 900):
                marks = ",".join(["%s"] * len(part))
                cursor.execute(
                    f"SELECT id, example_id, model_id, content_key, score FROM {self.prediction_table} "
                    f"WHERE example_id IN ({marks})",
                    part,
                )
                for pk, example_pk, model_pk, content, score in cursor.fetchall():
                    existing[(example_pk, model_pk)] = (pk, content, score)
            # Adapted once: the driver would otherwise format the same timestamp for every row.
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            new, changed = [], []
            for key, row in keyed.items():
                content = content_key(row.input_text, row.output_text, row.reference)
                if key not in existing:
                    new.append((key[0], key[1], row.output_text, row.score, False, content, now))
                elif existing[key][1:] != (content, row.score):
                    # Same content and score means an unchanged row: nothing is written.
                    changed.append((row.output_text, row.score, content, now, existing[key][0]))
            if new:
                _insert_rows(
                    cursor,
                    self.prediction_table,
                    ("example_id", "model_id", "output_text", "score", "is_failure", "content_key", "updated_at"),
                    new,
                )
            if changed:
                cursor.executemany(
                    f"UPDATE {self.prediction_table} SET output_text = %s, score = %s, content_key = %s, "
                    "updated_at = %s WHERE id = %s",
                    changed,
                )
        self.created += len(new)
        self.updated += len(changed)
        # Rows repeated inside the chunk were folded into one: count them as unchanged.


def _insert_rows(cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Bulk insert: COPY on PostgreSQL (executemany there is a round trip per row), executemany elsewhere."""
    if connection.vendor == "postgresql":
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _bulk_cursor():
    """A cursor that skips DEBUG query logging: it would keep every chunk's parameters in memory."""
    connection.ensure_connection()
    return connection.make_cursor(connection.create_cursor())


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def apply_failure_rule(*, dataset_ids: Iterable[int] | None = None, factor: float | None = None) -> list[str]:
    """Recompute each dataset's threshold and every prediction's failure flag; returns the dataset names."""
    from django.conf import settings

    factor = settings.ERRORMAP_THRESHOLD_FACTOR if factor is None else factor
    datasets = Dataset.objects.all() if dataset_ids is None else Dataset.objects.filter(pk__in=list(dataset_ids))
    names = []
    for dataset in datasets.order_by("name"):
        predictions = Prediction.objects.filter(example__dataset=dataset)
        mean = predictions.aggregate(mean=Avg("score"))["mean"]
        threshold = failure_threshold(
            dataset=dataset.name, mean_score=mean, explicit=dataset.success_threshold, factor=factor
        )
        if threshold is not None:
            # One UPDATE per dataset; the subquery form keeps it portable to SQLite.
            Prediction.objects.filter(pk__in=predictions.values("pk")).update(
                is_failure=ExpressionWrapper(Q(score__lt=threshold), output_field=BooleanField())
            )
        if dataset.applied_threshold != threshold:
            dataset.applied_threshold = threshold
            dataset.save(update_fields=["applied_threshold"])
        names.append(dataset.name)
    return names

"""Ingest benchmark results: stream each file, validate it whole, write it in one transaction.

Batches are written column-wise with plain SQL (portable between SQLite and PostgreSQL) because the
ORM's per-object path is ten times slower; an unchanged row (same content and score) is not written.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, BooleanField, ExpressionWrapper, F, Q
from django.utils import timezone

from annotation.changes import PREDICTIONS, bump_changes
from annotation.core.failure_rules import failure_threshold
from annotation.core.result_formats import InputLimits, ResultBatch, detect_format, read_results
from annotation.errors import InputError
from annotation.models import Dataset, EvaluatedModel, Example, Prediction
from annotation.services.bulk_sql import batches, bulk_cursor, insert_rows, paused_gc
from annotation.services.runs import progress, stage_run

# Scores are summed scaled down by an exact power of two, so the mean is bit for bit the plain one
# but no sum (nor PostgreSQL's sum of squares) can overflow, even over rows stored before scores
# were bounded (three of 1e308 made PostgreSQL's AVG fail and SQLite's return Inf).
MEAN_SCALE = 2.0**-600
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


def input_limits() -> InputLimits:
    """The input bounds configured for this server (the ERRORMAP_MAX_* settings)."""
    return InputLimits(
        max_line_bytes=settings.ERRORMAP_MAX_LINE_BYTES,
        max_record_bytes=settings.ERRORMAP_MAX_RECORD_BYTES,
        max_columns=settings.ERRORMAP_MAX_COLUMNS,
        max_decompressed_bytes=settings.ERRORMAP_MAX_DECOMPRESSED_BYTES,
    )


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
    resolved_fmt = detect_format(path) if fmt == "auto" else fmt
    result_batches = read_results(path, fmt=resolved_fmt, dataset=dataset, limits=input_limits())
    writer = _BatchWriter()
    with progress(None, desc=path.name, unit="rows") as bar, transaction.atomic(), paused_gc():
        for batch in result_batches:
            writer.write(batch)
            bar.update(len(batch))
    report = FileReport(
        path=str(path),
        format=resolved_fmt,
        rows=writer.rows,
        created=writer.created,
        updated=writer.updated,
        unchanged=writer.rows - writer.created - writer.updated,
    )
    return report, set(writer.dataset_ids.values())


def content_key(input_text: str, output_text: str, reference: str) -> str:
    """Identical (input, output, reference) failures share this key, and so one judge analysis."""
    return content_keys([input_text], [output_text], [reference])[0]


def content_keys(input_texts: list[str], output_texts: list[str], references: list[str]) -> list[str]:
    """`content_key` of each row, in one loop (a million calls of it were a tenth of an ingest)."""
    sha256 = hashlib.sha256
    return [sha256(f"{i}\x1f{o}\x1f{r}".encode("utf-8", "surrogatepass")).hexdigest()
            for i, o, r in zip(input_texts, output_texts, references)]


class _BatchWriter:
    """Upserts examples and predictions batch by batch; remembers only dataset and model ids."""

    def __init__(self) -> None:
        self.dataset_ids: dict[str, int] = {}
        self.model_ids: dict[str, int] = {}
        self.explicit_thresholds: dict[int, float | None] = {}
        self.threshold_factor: float = settings.ERRORMAP_THRESHOLD_FACTOR
        self.rows = self.created = self.updated = 0
        self.example_table = connection.ops.quote_name(Example._meta.db_table)
        self.prediction_table = connection.ops.quote_name(Prediction._meta.db_table)

    def write(self, batch: ResultBatch) -> None:
        self.rows += len(batch)
        dataset_ids = _ids(batch.dataset, self.dataset_ids, Dataset)
        model_ids = _ids(batch.model, self.model_ids, EvaluatedModel)
        # Within a batch the last row for a key wins, like a later file overriding an earlier one.
        example_keys = list(zip(dataset_ids, batch.example_id))
        examples = dict(zip(example_keys, zip(batch.input_text, batch.reference)))
        example_pks, new_example_pks = self._upsert_examples(examples)
        failing = self._provisional_failures(batch, dataset_ids)
        row_example_pks = list(map(example_pks.__getitem__, example_keys))
        # (example pk, model pk) -> the batch's last row of it
        keyed = dict(zip(zip(row_example_pks, model_ids), range(len(batch))))
        self._upsert_predictions(batch, failing, keyed, new_example_pks, (row_example_pks, model_ids))

    def _provisional_failures(self, batch: ResultBatch, dataset_ids: list[int]) -> list[bool]:
        """Failure flags by the failure rule with this batch's mean score standing in for the dataset's.

        The rule runs again on whole datasets after the last file and has the final say; when these
        flags already agree, as they nearly always do, it has nothing to rewrite (a second write of
        a third of a million rows was a fifth of the ingest time).
        """
        sums: dict[int, float] = dict.fromkeys(dataset_ids, 0.0)
        counts = Counter(dataset_ids)
        for dataset_id, score in zip(dataset_ids, batch.score):
            sums[dataset_id] += score
        names = {pk: name for name, pk in self.dataset_ids.items()}
        unknown = [pk for pk in sums if pk not in self.explicit_thresholds]
        self.explicit_thresholds.update(
            Dataset.objects.filter(pk__in=unknown).values_list("pk", "success_threshold")
        )
        thresholds = {
            pk: failure_threshold(
                dataset=names[pk],
                mean_score=total / counts[pk],
                explicit=self.explicit_thresholds[pk],
                factor=self.threshold_factor,
            )
            for pk, total in sums.items()
        }
        return [
            threshold is not None and score < threshold
            for threshold, score in zip(map(thresholds.__getitem__, dataset_ids), batch.score)
        ]

    def _upsert_examples(
        self, examples: dict[tuple[int, str], tuple[str, str]]
    ) -> tuple[dict[tuple[int, str], int], set[int]]:
        """Insert new examples, update changed ones; returns every key's pk and the pks just created."""
        by_dataset: dict[int, list[str]] = {}
        for dataset_id, example_id in examples:
            by_dataset.setdefault(dataset_id, []).append(example_id)
        existing: dict[tuple[int, str], tuple[int, str, str]] = {}
        with bulk_cursor() as cursor:
            for dataset_id, ids in by_dataset.items():
                for part in batches(ids, 900):
                    marks = ",".join(["%s"] * len(part))
                    cursor.execute(
                        f"SELECT id, example_id, input_text, reference FROM {self.example_table} "
                        f"WHERE dataset_id = %s AND example_id IN ({marks})",
                        [dataset_id, *part],
                    )
                    for pk, example_id, input_text, reference in cursor.fetchall():
                        existing[(dataset_id, example_id)] = (pk, input_text, reference)
            new = [(d, e, text, reference) for (d, e), (text, reference) in examples.items() if (d, e) not in existing]
            changed = [
                (*content, existing[key][0])
                for key, content in examples.items()
                if key in existing and existing[key][1:] != content
            ]
            if new:
                insert_rows(cursor, self.example_table, ("dataset_id", "example_id", "input_text", "reference"), new)
            if changed:
                cursor.executemany(
                    f"UPDATE {self.example_table} SET input_text = %s, reference = %s WHERE id = %s", changed
                )
            pks = {key: value[0] for key, value in existing.items()}
            created: set[int] = set()
            if new:
                for dataset_id, ids in by_dataset.items():
                    fresh = [e for e in ids if (dataset_id, e) not in pks]
                    for part in batches(fresh, 900):
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
        self, batch: ResultBatch, failing: list[bool], keyed: dict[tuple[int, int], int], new_example_pks: set[int],
        row_keys: tuple[list[int], list[int]],
    ) -> None:
        """Insert the batch's new predictions and update changed ones; `row_keys` holds each row's example
        and model pks, `keyed` the last row of each (example, model)."""
        # An example created in this batch has no predictions yet: only older ones need a look-up.
        example_ids = sorted({example_pk for example_pk, _ in keyed} - new_example_pks)
        existing: dict[tuple[int, int], tuple[int, str, float]] = {}
        with bulk_cursor() as cursor:
            for part in batches(example_ids, 900):
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
            outputs, scores = batch.output_text, batch.score
            contents = content_keys(batch.input_text, outputs, batch.reference)
            changed = []
            fresh = keyed  # rows not stored yet: all but those found (a set intersection, in C)
            if stored := keyed.keys() & existing.keys():
                fresh = dict(keyed)
                for key in stored:
                    i, old = fresh.pop(key), existing[key]
                    if old[1:] != (contents[i], scores[i]):
                        # Same content and score means an unchanged row: nothing is written.
                        changed.append((outputs[i], scores[i], failing[i], contents[i], now, old[0]))
            if fresh is keyed and len(keyed) == len(batch):
                # Every row new and none repeated (a first ingest): the columns as they are, no picking.
                new = list(zip(*row_keys, outputs, scores, failing, contents, repeat(now)))
            else:
                rows = list(fresh.values())
                picked = (_picked(column, rows) for column in (outputs, scores, failing, contents))
                new = list(zip(*zip(*fresh), *picked, repeat(now)))
            if new:
                insert_rows(
                    cursor,
                    self.prediction_table,
                    ("example_id", "model_id", "output_text", "score", "is_failure", "content_key", "updated_at"),
                    new,
                )
            if changed:
                cursor.executemany(
                    f"UPDATE {self.prediction_table} SET output_text = %s, score = %s, is_failure = %s, "
                    "content_key = %s, updated_at = %s WHERE id = %s",
                    changed,
                )
                bump_changes(PREDICTIONS)
        self.created += len(new)
        self.updated += len(changed)
        # Rows repeated inside the batch were folded into one: count them as unchanged.


def _picked(values: Sequence[object], rows: list[int]) -> list[object]:
    """values[i] for each i in rows (itemgetter does it in C; it gives a bare value for one row)."""
    if len(rows) == 1:
        return [values[rows[0]]]
    return list(itemgetter(*rows)(values)) if rows else []


def _ids(names: list[str], known: dict[str, int], model: type[Dataset | EvaluatedModel]) -> list[int]:
    """The primary key of each named row, created when new; `known` caches them across batches."""
    for name in dict.fromkeys(names):  # in order of first appearance, so ids are repeatable
        if name not in known:
            known[name] = model.objects.get_or_create(name=name)[0].pk
    return list(map(known.__getitem__, names))


def apply_failure_rule(*, dataset_ids: Iterable[int] | None = None, factor: float | None = None) -> list[str]:
    """Recompute each dataset's threshold and every prediction's failure flag; returns the dataset names."""
    factor = settings.ERRORMAP_THRESHOLD_FACTOR if factor is None else factor
    datasets = Dataset.objects.all() if dataset_ids is None else Dataset.objects.filter(pk__in=list(dataset_ids))
    # One pass for every dataset's mean, then one UPDATE per dataset that writes only flags that change.
    means = dict(
        Prediction.objects.filter(example__dataset__in=datasets)
        .values_list("example__dataset")
        .annotate(mean=Avg(F("score") * MEAN_SCALE))
        .values_list("example__dataset", "mean")
    )
    names = []
    for dataset in datasets.order_by("name"):
        mean = means.get(dataset.pk)
        threshold = failure_threshold(
            dataset=dataset.name, mean_score=None if mean is None else mean / MEAN_SCALE,
            explicit=dataset.success_threshold, factor=factor,
        )
        if threshold is not None:
            fails = ExpressionWrapper(Q(score__lt=threshold), output_field=BooleanField())
            # No join in the UPDATE: rows are picked by their example ids (a semi-join both databases
            # hash), where a pk IN (join) subquery ran as a per-row loop on PostgreSQL and took
            # minutes on a few thousand rows. The stamp tells cached reads of failures that a flag
            # changed (update() does not touch auto_now fields).
            examples = Example.objects.filter(dataset=dataset).values("pk")
            if Prediction.objects.filter(example_id__in=examples).exclude(is_failure=fails).update(
                    is_failure=fails, updated_at=timezone.now()):
                bump_changes(PREDICTIONS)
        if dataset.applied_threshold != threshold:
            dataset.applied_threshold = threshold
            dataset.save(update_fields=["applied_threshold"])
        names.append(dataset.name)
    return names

"""Reads that aggregate annotation data for pages, the API and reports (querysets in, plain data out)."""
from __future__ import annotations

import hashlib
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any, TypeVar

import numpy as np
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.db.models import Count, Exists, Model, OuterRef, Q, QuerySet

from annotation.changes import LABELS, PREDICTIONS, change_marker
from annotation.core.coded_tables import rows_of
from annotation.errors import ErrorMapError
from annotation.models import (
    AdjudicationItem,
    Analysis,
    Annotator,
    Dataset,
    EvaluatedModel,
    Label,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    StageRun,
    WorkSet,
)
from taxonomy.core.paths import PATH_SEPARATOR
from taxonomy.models import Category, CategoryMapping, TaxonomyVersion
from taxonomy.services.versions import resolve_version

ALL_SOURCES: tuple[str, ...] = tuple(Label.Source.values)
T = TypeVar("T")


@dataclass(frozen=True)
class LabelFilter:
    """Which labels a statistic, page, export or audit reads: the one description of "which labels".

    The taxonomy version is not part of the rows' filter: `default_version` turns `taxonomy` (or its
    absence) into one version, and `select_labels` reads that version's rows.
    """

    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    sources: tuple[str, ...] = (Label.Source.HUMAN,)
    annotators: tuple[str, ...] = ()
    taxonomy: str | None = None
    # Only labels whose prediction is (still) a failure: re-ingest can flip the flag.
    failures_only: bool = False
    # Category paths; each one's subtree is included.
    categories: tuple[str, ...] = ()
    predictions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(ALL_SOURCES))
        if unknown:
            raise ErrorMapError(f"unknown label source(s) {', '.join(map(repr, unknown))} "
                                f"(one of {', '.join(ALL_SOURCES)})")

    def as_config(self) -> dict[str, Any]:
        """JSON-ready description of the filter, for reports and stage runs (narrowing keys only when set)."""
        config: dict[str, Any] = {
            "datasets": list(self.datasets), "models": list(self.models),
            "sources": [str(s) for s in self.sources], "annotators": list(self.annotators),
            "taxonomy": self.taxonomy}
        if self.failures_only:
            config["failures_only"] = True
        if self.categories:
            config["categories"] = list(self.categories)
        if self.predictions:
            config["predictions"] = list(self.predictions)
        return config


@dataclass(frozen=True)
class VersionChoice:
    """The taxonomy version a read uses, and why it was chosen (callers print or show the reason)."""

    version: TaxonomyVersion
    reason: str

    def __str__(self) -> str:
        return f"{self.version} ({self.reason})"


def _version_labels(version: TaxonomyVersion | None, sources: Sequence[str]) -> QuerySet[Label]:
    """The label rows of one taxonomy version (all versions when None) from these sources.

    The single place a version's rows are chosen; `label_values` adds an earlier version's
    labels read through the category mapping when `version` was derived from it.
    """
    labels = Label.objects.filter(source__in=list(sources))
    if version is not None:
        labels = labels.filter(taxonomy_version=version)
    return labels


def select_labels(label_filter: LabelFilter, version: TaxonomyVersion | None) -> QuerySet[Label]:
    """The labels of `version` (every version when None) that the filter selects."""
    labels = _version_labels(version, label_filter.sources)
    if label_filter.datasets:
        labels = labels.filter(prediction__example__dataset__name__in=label_filter.datasets)
    if label_filter.models:
        labels = labels.filter(prediction__model__name__in=label_filter.models)
    if label_filter.annotators:
        labels = labels.filter(annotator__name__in=label_filter.annotators)
    if label_filter.failures_only:
        labels = labels.filter(prediction__is_failure=True)
    if label_filter.categories:
        subtree = Q()
        for path in label_filter.categories:
            subtree |= Q(category__path=path) | Q(category__path__startswith=path + PATH_SEPARATOR)
        labels = labels.filter(subtree)
    if label_filter.predictions:
        labels = labels.filter(prediction_id__in=label_filter.predictions)
    return labels


_SET_KEY = ("prediction_id", "source", "annotator_id", "category_id")


def derived_from(version: TaxonomyVersion) -> TaxonomyVersion | None:
    """The version `version` was derived from with a CategoryMapping (its labels carry over), if any."""
    previous = version.previous
    if previous is None or not CategoryMapping.objects.filter(source__version=previous,
                                                              target__version=version).exists():
        return None
    return previous


def label_values(label_filter: LabelFilter, version: TaxonomyVersion, *fields: str) -> list[tuple[Any, ...]]:
    """`select_labels(...).values_list(*fields)` read through the mapping: the rows of `version`, and
    for an (item, source, annotator) set with no row in `version`, its set in the version `version`
    was derived from (recursively), each category replaced by the one it maps to (merged, renamed,
    retired -> Other, kept); a set holding a split category is ambiguous and left out (those items
    are queued for re-labelling). `category_id` and `category__path` name categories of `version`."""
    if derived_from(version) is None:
        return list(select_labels(label_filter, version).values_list(*fields).iterator(chunk_size=50_000))
    extra = [f for f in fields if f not in _SET_KEY and f != "category__path"]
    # A category filter names categories of `version`: applied after the mapping, or a merge's
    # other part (and the sets a split leaves ambiguous) would be judged by V's paths.
    rows = _rows_through_mapping(replace(label_filter, categories=()), version, extra)
    paths = (dict(Category.objects.filter(version=version).values_list("pk", "path"))
             if "category__path" in fields or label_filter.categories else {})
    if label_filter.categories:
        rows = [row for row in rows if _in_subtrees(paths[row[3]], label_filter.categories)]
    position = {name: i for i, name in enumerate([*_SET_KEY, *extra])}
    return [tuple(paths[row[3]] if f == "category__path" else row[position[f]] for f in fields) for row in rows]


def _in_subtrees(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root + PATH_SEPARATOR) for root in roots)


def _rows_through_mapping(label_filter: LabelFilter, version: TaxonomyVersion,
                          extra: list[str]) -> list[tuple[Any, ...]]:
    own = list(select_labels(label_filter, version).values_list(*_SET_KEY, *extra))
    previous = derived_from(version)
    if previous is None:
        return own
    targets: dict[int, list[int]] = {}
    for source_id, target_id in CategoryMapping.objects.filter(
            source__version=previous, target__version=version).values_list("source_id", "target_id"):
        targets.setdefault(source_id, []).append(target_id)
    have = {row[:3] for row in own}
    earlier: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in _rows_through_mapping(label_filter, previous, extra):
        if row[:3] not in have:
            earlier.setdefault(row[:3], []).append(row)
    carried: list[tuple[Any, ...]] = []
    for group in earlier.values():
        if any(len(targets.get(row[3], [])) > 1 for row in group):
            continue  # split: which side is unknown until someone labels it again
        # A category retired without a target maps to nothing: that row goes, the set stays.
        carried.extend((*row[:3], targets[row[3]][0], *row[4:]) for row in group if targets.get(row[3]))
    return own + carried


def default_version(label_filter: LabelFilter, *, shared_by: tuple[str, ...] = ()) -> VersionChoice:
    """The taxonomy version to read: the one the filter names, else the one its labels use.

    When labels span several versions: the version with the most matching labels, or with
    `shared_by` (e.g. judge and human) the version with the most items labelled by every one of
    those sources, so a judge-vs-human comparison has something to compare. Ties go to the newest.
    """
    if label_filter.taxonomy:
        return VersionChoice(resolve_version(label_filter.taxonomy), "named")
    counts = dict(select_labels(label_filter, None).values_list("taxonomy_version_id")
                  .annotate(n=Count("pk")).values_list("taxonomy_version_id", "n"))
    if not counts:
        raise ErrorMapError(f"no labels match {label_filter.as_config()}")
    versions = TaxonomyVersion.objects.select_related("taxonomy").in_bulk(list(counts))
    if len(counts) == 1:
        (only,) = counts
        return VersionChoice(versions[only], "the only version with matching labels")
    if len(shared_by) > 1:
        shared = {pk: _itemsshared_read(label_filter, versions[pk], shared_by) for pk in counts}
        best = max(shared, key=lambda pk: (shared[pk], counts[pk], pk))
        if shared[best]:
            return VersionChoice(versions[best], (
                f"shared by the most {' and '.join(shared_by)} labels ({shared[best]} items) "
                f"of {len(counts)} versions"))
    best = max(counts, key=lambda pk: (counts[pk], pk))
    return VersionChoice(versions[best], f"the most matching labels ({counts[best]}) of {len(counts)} versions")


def _itemsshared_read(label_filter: LabelFilter, version: TaxonomyVersion, sources: tuple[str, ...]) -> int:
    """Items of `version` that carry a label from every one of `sources`."""
    first, *others = sources
    labels = select_labels(_with_sources(label_filter, (first,)), version)
    for other in others:
        labels = labels.filter(Exists(
            select_labels(_with_sources(label_filter, (other,)), version)
            .filter(prediction_id=OuterRef("prediction_id"))))
    return labels.values("prediction_id").distinct().count()


def _with_sources(label_filter: LabelFilter, sources: tuple[str, ...]) -> LabelFilter:
    return replace(label_filter, sources=sources, annotators=())


def label_fingerprint(filters: Sequence[LabelFilter], version: TaxonomyVersion, *parts: Any) -> str:
    """Changes whenever anything a read of these filters' labels depends on does (a cache key).

    The label table's change marker (see annotation/changes.py) moves with every label write, and the
    prediction table's when a filter reads only failures (re-ingest and sampling flip flags in place).
    Category paths and descriptions, annotator, dataset and model names are read whole (small tables):
    renames change what a report shows. Inside `shared_label_reads` all of it is read once per request.
    """
    marks = shared_read("label marks", lambda: change_marker(LABELS))
    failures = (shared_read("prediction marks", lambda: change_marker(PREDICTIONS))
                if any(f.failures_only for f in filters) else None)
    key = (
        parts, [sorted(f.as_config().items()) for f in filters], version.pk, marks, failures,
        shared_read(("names", version.pk), lambda: (
            list(Category.objects.filter(version=version).order_by("pk").values_list("pk", "path", "description")),
            list(Annotator.objects.order_by("pk").values_list("pk", "name")),
            list(Dataset.objects.order_by("pk").values_list("pk", "name")),
            list(EvaluatedModel.objects.order_by("pk").values_list("pk", "name")))),
    )
    return hashlib.sha256(repr(key).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# One read of the label rows per request: a page computing several results from the same labels
# (the judge page: agreement with the judge, gold, the judge audit) reads each row once, as arrays.

_reads: ContextVar[dict[Any, Any] | None] = ContextVar("errormap_label_reads", default=None)


@contextmanager
def shared_label_reads() -> Iterator[None]:
    """Within it, label rows, tables built from them and cache fingerprints are read once and shared.

    For reads only (page contexts): nothing inside may write labels, or later reads would miss it.
    Nested scopes share the outermost one.
    """
    if _reads.get() is not None:
        yield
        return
    token = _reads.set({})
    try:
        yield
    finally:
        _reads.reset(token)


def shared_read(key: Any, compute: Callable[[], T]) -> T:
    """`compute()` once per `shared_label_reads` scope under `key` (every time outside one): for reads
    built from label rows that several results of one page need."""
    scope = _reads.get()
    if scope is None:
        return compute()
    if key not in scope:
        scope[key] = compute()
    value: T = scope[key]
    return value


@dataclass(frozen=True)
class LabelRows:
    """Label rows as arrays: `ids` n x 3 (prediction, annotator, category), `source` an index into
    ALL_SOURCES, `confidence` NaN where none was given."""

    ids: np.ndarray[Any, Any]
    source: np.ndarray[Any, Any]
    confidence: np.ndarray[Any, Any]

    def take(self, rows: np.ndarray[Any, Any]) -> LabelRows:
        """The rows selected by a mask or an index array."""
        return LabelRows(self.ids[rows], self.source[rows], self.confidence[rows])

    @staticmethod
    def joined(parts: Sequence[LabelRows]) -> LabelRows:
        """The parts' rows one after another."""
        if not parts:
            return LabelRows(np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int8), np.zeros(0))
        return LabelRows(np.concatenate([p.ids for p in parts]), np.concatenate([p.source for p in parts]),
                         np.concatenate([p.confidence for p in parts]))


_ROW_FIELDS = ("prediction_id", "annotator_id", "category_id", "confidence")


def label_rows(label_filter: LabelFilter, version: TaxonomyVersion) -> LabelRows:
    """The rows `label_values(label_filter, version, ...)` selects, as arrays, read straight from the
    cursor (no model instances, no Python tuple per row kept).

    Inside `shared_label_reads`, each source's rows under the filter's datasets, models and other
    row conditions are read once and every filter differing only in sources and annotators is cut
    from them in numpy: the judge page reads each label row once, not once per result.
    """
    scope = _reads.get()
    if scope is None:
        rows = LabelRows.joined([_read_source(label_filter, version, source) for source in label_filter.sources])
    else:
        base = replace(label_filter, sources=(), annotators=(), taxonomy=None)
        parts = []
        for source in label_filter.sources:
            key = ("rows", version.pk, base, source)
            if key not in scope:
                scope[key] = _read_source(base, version, source)
            parts.append(scope[key])
        rows = LabelRows.joined(parts)
    if label_filter.annotators:
        wanted = np.array(sorted(Annotator.objects.filter(name__in=label_filter.annotators)
                                 .values_list("pk", flat=True)), dtype=np.int64)
        rows = rows.take(np.isin(rows.ids[:, 1], wanted))
    return rows


def _read_source(label_filter: LabelFilter, version: TaxonomyVersion, source: str) -> LabelRows:
    one = replace(label_filter, sources=(source,), annotators=())
    code = ALL_SOURCES.index(source)
    if derived_from(version) is None:
        packed = _read_packed(select_labels(one, version))
        if packed is not None:
            ids, confidence = packed
            return LabelRows(ids, np.full(len(ids), code, dtype=np.int8), confidence)
        fetched = _fetched(select_labels(one, version).values_list(*_ROW_FIELDS))
    else:
        fetched = label_values(one, version, *_ROW_FIELDS)
    # One flat pass into float64 (ids stay exact below 2**53; NULL confidence becomes NaN).
    flat = _as_array(fetched, 4, np.float64)
    return LabelRows(flat[:, :3].astype(np.int64), np.full(len(flat), code, dtype=np.int8), flat[:, 3])


# A confidence c with |c| < 2 whose bits all lie within 62 binary places after the point (any c >= 2**-9,
# and every value a judge writes) times this is an integer exactly, and that integer times 2**-62 is c again.
_CONFIDENCE_SCALE = 2**62
_INEXACT = "?"  # in the confidence text: a value the scaled integer cannot hold exactly
_SCALED = f"r.confidence * {_CONFIDENCE_SCALE}"  # an integer literal: SQLite multiplies by exactly 2**62
# The rows' confidences as scaled integers joined into one text (none where NULL, _INEXACT where not exact).
_SCALED_CONFIDENCES = (f"group_concat(CASE WHEN r.confidence IS NULL THEN NULL WHEN abs(r.confidence) < 2 "
                       f"AND {_SCALED} = CAST({_SCALED} AS INTEGER) THEN CAST({_SCALED} AS INTEGER) "
                       f"ELSE '{_INEXACT}' END, ' ')")


def _read_packed(labels: QuerySet[Label]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """The rows' (prediction, annotator, category) ids (n x 3) and confidences (NaN where none) from SQLite
    in one statement (`_packed_columns`, with a last digit telling whether the row has a confidence), the
    confidences joined likewise as exact integers times 2**-62. A million rows then never become Python
    tuples (most of the judge page's read).

    None when this does not apply (another database, ids too large to pack into 63 bits, a confidence
    that is not exact as an integer times 2**-62, a text past SQLite's length limit): the caller reads the
    rows through the cursor instead.
    """
    connection = connections[labels.db]
    read = _packed_columns(labels.values_list(*_ROW_FIELDS), [
        ("r.prediction_id", _id_bound(connection, Prediction)), ("r.annotator_id", _id_bound(connection, Annotator)),
        ("r.category_id", _id_bound(connection, Category)), ("(r.confidence IS NOT NULL)", "2"),
    ], extra=(_SCALED_CONFIDENCES,))
    if read is None:
        return None
    (prediction, annotator, category, has), (confidence_text,) = read
    if _INEXACT in (confidence_text or ""):
        return None
    has_confidence = has.astype(bool)
    scaled = _parsed(confidence_text, np.int64)
    if scaled is None or len(scaled) != int(has_confidence.sum()):
        return None
    confidence = np.full(len(prediction), np.nan)
    confidence[has_confidence] = scaled.astype(np.float64) * (1.0 / _CONFIDENCE_SCALE)
    return np.stack([prediction, annotator, category], axis=1), confidence


def _id_bound(connection: Any, model: type[Model]) -> str:
    """SQL for one past the largest id of `model`'s table (NULL when it is empty)."""
    return f"(SELECT max(id) FROM {connection.ops.quote_name(model._meta.db_table)}) + 1"


def _packed_columns(query: QuerySet[Any, Any], digits: Sequence[tuple[str, str]], extra: Sequence[str] = ()
                    ) -> tuple[list[np.ndarray[Any, Any]], list[str | None]] | None:
    """Integer columns of a values_list query's rows (`r` in each expression) from SQLite in one statement:
    each row's `digits` (value, and SQL for one past its largest value) packed into one integer in mixed
    radix, the rows' integers joined by SQLite into one text that numpy parses in C; `extra` aggregates over
    the rows come back as they are. The bounds are read by the same statement, so they hold for its rows
    without a transaction (SQLite's would take the write lock).

    None on another database, when the packed values would not fit in 63 bits (SQLite would make them
    reals) or the text is past SQLite's length limit: the caller reads through the cursor then."""
    connection = connections[query.db]
    if connection.vendor != "sqlite":
        return None
    rows, params = query.query.sql_with_params()
    key = digits[0][0]
    for n, (value, _) in enumerate(digits[1:], start=1):
        key = f"({key}) * b.d{n} + {value}"
    bounds = ", ".join(f"{bound} AS d{n}" for n, (_, bound) in enumerate(digits))
    sizes_sql = ", ".join(f"b.d{n}" for n in range(len(digits)))
    sql = (f"SELECT group_concat({key}, ' '), {''.join(e + ', ' for e in extra)}{sizes_sql} "
           f"FROM ({rows}) AS r, (SELECT {bounds}) AS b")
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            keys_text, *rest = cursor.fetchone()
    except DatabaseError:  # "string or blob too big": past SQLite's text limit
        return None
    texts, sizes = list(rest[:len(extra)]), rest[len(extra):]
    if not keys_text:
        return [np.zeros(0, dtype=np.int64) for _ in digits], texts
    if math.prod(sizes) >= 2**63:
        return None
    keys = _parsed(keys_text, np.int64)
    if keys is None:
        return None
    columns = []
    for size in reversed(sizes[1:]):
        keys, column = np.divmod(keys, size)
        columns.append(column)
    return [keys, *reversed(columns)], texts


def _parsed(text: str | None, dtype: type[np.generic]) -> np.ndarray[Any, Any] | None:
    """Space-separated numbers as an array (empty for no rows); None unless every number parsed."""
    if not text:
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():  # text that is not all numbers: told by the count below
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(text, dtype=dtype, sep=" ")
    return values if len(values) == text.count(" ") + 1 else None


@dataclass(frozen=True)
class PredictionGroups:
    """Model and dataset of predictions as arrays, ids ascending: what a label read without a join to
    the prediction and example tables needs to group its rows and keep only the failures."""

    ids: np.ndarray[Any, Any]
    model: np.ndarray[Any, Any]
    dataset: np.ndarray[Any, Any]

    def locate(self, predictions: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(a mask of the `predictions` found here, the positions here of those found, in their order)."""
        return rows_of(self.ids, predictions)


def prediction_groups(*, failures_only: bool = False, models: Sequence[str] = (),
                      datasets: Sequence[str] = ()) -> PredictionGroups:
    """The predictions (only failures when `failures_only`; of these models and datasets when given) with
    their model and dataset, from one pass over the prediction table, read once per `shared_label_reads`.

    Joining each label row to its prediction visits the prediction table in label order, at random
    (18-22 s for 730k labels at a million predictions on SQLite); one pass in table order plus the small
    example table is a few times cheaper, and the labels are then read alone."""
    return shared_read(("prediction groups", failures_only, tuple(models), tuple(datasets)),
                       lambda: _read_prediction_groups(failures_only, tuple(models), tuple(datasets)))


def _read_prediction_groups(failures_only: bool, models: tuple[str, ...],
                            datasets: tuple[str, ...]) -> PredictionGroups:
    predictions = Prediction.objects.all()
    if failures_only:
        predictions = predictions.filter(is_failure=True)
    if models:
        predictions = predictions.filter(model_id__in=EvaluatedModel.objects.filter(name__in=models).values("pk"))
    if datasets:
        predictions = predictions.filter(example__dataset_id__in=Dataset.objects.filter(name__in=datasets)
                                         .values("pk"))
    # The example table is small and cached: joining it costs nothing beside the pass itself.
    query = predictions.values_list("pk", "model_id", "example__dataset_id")
    columns = _read_packed_predictions(query)
    ids, model, dataset = columns if columns is not None else _int_columns(query, 3)
    # No ORDER BY (PostgreSQL would sort or walk the primary key): SQLite reads in id order already.
    if len(ids) and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids)
        ids, model, dataset = ids[order], model[order], dataset[order]
    return PredictionGroups(ids, model, dataset)


def _read_packed_predictions(query: QuerySet[Any, Any]) -> list[np.ndarray[Any, Any]] | None:
    """(id, model, dataset) of the query's predictions from SQLite in one statement (`_packed_columns`, as
    `_read_packed` reads label rows: 500,000 rows never become Python tuples); None where it does not apply."""
    connection = connections[query.db]
    # The columns are named as values_list("pk", "model_id", "example__dataset_id") names them.
    read = _packed_columns(query, [("r.pk", _id_bound(connection, Prediction)),
                                   ("r.model_id", _id_bound(connection, EvaluatedModel)),
                                   ("r.example__dataset_id", _id_bound(connection, Dataset))])
    return None if read is None else read[0]


def _fetched(query: QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """A values_list query's rows straight from the cursor (no per-row conversion by Django)."""
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def _int_columns(query: QuerySet[Any, Any], width: int) -> list[np.ndarray[Any, Any]]:
    """The integer columns of a values_list query, read straight from the cursor into arrays."""
    return list(_as_array(_fetched(query), width, np.int64).T)


def _as_array(rows: Sequence[tuple[Any, ...]], width: int, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    """Rows of `width` numbers as an n x width array, in one flat pass (no array per row)."""
    return np.fromiter(chain.from_iterable(rows), dtype=dtype, count=width * len(rows)).reshape(-1, width)


LABEL_CACHE_SECONDS = 3600  # keys carry a fingerprint of everything read, so a hit is never stale


def cached_by_labels(name: str, filters: Sequence[LabelFilter], version: TaxonomyVersion,
                     parts: Any, compute: Callable[[], T]) -> T:
    """`compute()`, cached under the fingerprint of every label filter it reads (plus `parts`): the one
    cache of label-derived results (agreement, judge audit, signatures, atlas). Any label write changes
    the fingerprint, so a stale value is never read; it just ages out."""
    return _cached(f"errormap-{name}-" + label_fingerprint(filters, version, parts), compute)


def _cached(key: str, compute: Callable[[], T]) -> T:
    """The cached value under `key`, computed and stored when missing (keys say what the value depends on)."""
    value: T | None = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, LABEL_CACHE_SECONDS)
    return value


@dataclass(frozen=True)
class ProjectProgress:
    project_id: int
    labelstudio_id: int
    title: str
    mode: str
    work_set: str
    taxonomy_version: str
    overlap: int
    tasks: int
    started: int  # tasks with at least one human label
    complete: int  # tasks with labels from at least `overlap` annotators
    annotators: int
    labels: int
    webhook: str = ""  # how labels reach the platform: deliveries arriving, failing, or sync only

    @property
    def percent_complete(self) -> float:
        return 100.0 * self.complete / self.tasks if self.tasks else 0.0


def prediction_counts() -> dict[int, tuple[int, int]]:
    """dataset id -> (predictions, failures), from one grouped pass over the prediction table, cached
    under the table's change marker: a repeat costs a few index look-ups, not the pass."""
    return _cached_by_marker("prediction-counts", PREDICTIONS, lambda: {
        dataset: (n, failures) for dataset, n, failures in
        Prediction.objects.values("example__dataset_id")
        .annotate(n=Count("pk"), failures=Count("pk", filter=Q(is_failure=True))).order_by()
        .values_list("example__dataset_id", "n", "failures")})


def label_counts() -> dict[str, int]:
    """Label rows per source (every source, 0 when none), cached under the label table's change marker."""
    def count() -> dict[str, int]:
        by_source = dict(Label.objects.values_list("source").annotate(n=Count("pk")).values_list("source", "n"))
        return {source: by_source.get(source, 0) for source in Label.Source.values}
    return _cached_by_marker("label-counts", LABELS, count)


def _cached_by_marker(name: str, table: str, compute: Callable[[], T]) -> T:
    return _cached(f"errormap-{name}-" + "-".join(map(str, change_marker(table))), compute)


def overview(counts: dict[int, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Headline counts for the dashboard, with label counts per source (`counts`: prediction_counts())."""
    counts = prediction_counts() if counts is None else counts
    return {
        "datasets": Dataset.objects.count(),
        "models": EvaluatedModel.objects.count(),
        "predictions": sum(n for n, _ in counts.values()),
        "failures": sum(f for _, f in counts.values()),
        "work_sets": WorkSet.objects.count(),
        "analyses": Analysis.objects.count(),
        "labels": label_counts(),
        "labelstudio_projects": LabelStudioProject.objects.count(),
    }


def datasets_table(counts: dict[int, tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """Per dataset: predictions, failures, threshold (`counts`: prediction_counts(), read once per page)."""
    counts = prediction_counts() if counts is None else counts
    return [
        {"name": d.name, "predictions": counts.get(d.pk, (0, 0))[0], "failures": counts.get(d.pk, (0, 0))[1],
         "threshold": d.applied_threshold}
        for d in Dataset.objects.order_by("name")
    ]


def recent_runs(limit: int = 10) -> list[StageRun]:
    return list(StageRun.objects.order_by("-started_at", "-pk")[:limit])


def labelstudio_progress() -> list[ProjectProgress]:
    """Annotation progress of every Label Studio project, counted from the label table."""
    result = []
    for project in LabelStudioProject.objects.select_related("work_set", "taxonomy_version__taxonomy").order_by("pk"):
        tasks = LabelStudioTask.objects.filter(project=project)
        labels = Label.objects.filter(
            source=Label.Source.HUMAN,
            taxonomy_version=project.taxonomy_version,
            prediction_id__in=tasks.values("prediction_id"),
        )
        per_item = Counter(
            dict(labels.values("prediction_id").annotate(n=Count("annotator", distinct=True)).values_list(
                "prediction_id", "n"))
        )
        result.append(
            ProjectProgress(
                project_id=project.pk,
                labelstudio_id=project.labelstudio_id,
                title=project.title,
                mode=project.mode,
                work_set=project.work_set.name if project.work_set is not None else "",
                taxonomy_version=str(project.taxonomy_version),
                overlap=project.overlap,
                tasks=tasks.count(),
                started=len(per_item),
                complete=sum(1 for n in per_item.values() if n >= max(project.overlap, 1)),
                annotators=labels.values("annotator").distinct().count(),
                labels=labels.count(),
                webhook=_webhook_status(project),
            )
        )
    return result


def _webhook_status(project: LabelStudioProject) -> str:
    """How the project's labels reach the platform, as its last sync and deliveries showed."""
    if not project.webhook_url:
        return "no webhook: labels come by sync_labelstudio only"
    if project.missed_by_webhook:
        when = project.last_sync_at.strftime("%Y-%m-%d %H:%M") if project.last_sync_at else ""
        return (f"failing: {project.missed_by_webhook} change(s) came only by the sync of {when}; check that "
                f"Label Studio reaches {project.webhook_url}")
    if project.last_delivery_at:
        return f"deliveries arriving (last {project.last_delivery_at.strftime('%Y-%m-%d %H:%M')})"
    return f"no delivery yet (to {project.webhook_url}); sync_labelstudio checks"


def failure_labels(prediction_ids: list[int], taxonomy_version_id: int | None = None) -> dict[int, list[Label]]:
    """All labels on these failures (any source), grouped by failure, for the example views."""
    version = None if taxonomy_version_id is None else TaxonomyVersion.objects.get(pk=taxonomy_version_id)
    labels = select_labels(LabelFilter(sources=ALL_SOURCES, predictions=tuple(prediction_ids)), version
                           ).select_related("category", "annotator", "analysis", "taxonomy_version__taxonomy"
                                            ).order_by("source", "annotator__name", "category__path")
    grouped: dict[int, list[Label]] = {}
    for label in labels:
        grouped.setdefault(label.prediction_id, []).append(label)
    return grouped


def failure_summary() -> list[dict[str, Any]]:
    """Per (dataset, model): predictions, failures, failure share and the dataset's threshold."""
    rows = (
        Prediction.objects.values("example__dataset__name", "model__name", "example__dataset__applied_threshold")
        .annotate(predictions=Count("pk"), failures=Count("pk", filter=Q(is_failure=True)))
        .order_by("example__dataset__name", "model__name")
    )
    return [
        {
            "dataset": r["example__dataset__name"],
            "model": r["model__name"],
            "predictions": r["predictions"],
            "failures": r["failures"],
            "failure_share": r["failures"] / r["predictions"] if r["predictions"] else 0.0,
            "threshold": r["example__dataset__applied_threshold"],
        }
        for r in rows
    ]


def adjudication_queue(*, status: str = "open") -> dict[str, Any]:
    """Items waiting for (or settled by) adjudication, oldest first, with counts per status."""
    counts = dict(AdjudicationItem.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    items = AdjudicationItem.objects.select_related(
        "prediction__model", "prediction__example__dataset", "taxonomy_version__taxonomy"
    ).order_by("created_at", "pk")
    if status != "all":
        items = items.filter(status=status)
    return {"counts": {s: counts.get(s, 0) for s in AdjudicationItem.Status.values}, "items": items}


def filter_choices() -> dict[str, list[str]]:
    """The taxonomy versions, models and datasets a page's filter form offers."""
    return {
        "versions": [str(v) for v in TaxonomyVersion.objects.select_related("taxonomy")
                     .order_by("taxonomy__name", "number")],
        "models": list(EvaluatedModel.objects.order_by("name").values_list("name", flat=True)),
        "datasets": list(Dataset.objects.order_by("name").values_list("name", flat=True)),
    }


def work_set_named(name: str) -> WorkSet:
    """The work set of that name, or a clear error."""
    work_set = WorkSet.objects.filter(name=name).first()
    if work_set is None:
        raise ErrorMapError(f"unknown work set {name!r}")
    return work_set

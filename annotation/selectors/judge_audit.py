"""Judge reliability: the judge's labels against the human majority and against gold.

Label rows are read once per audit as integer arrays (the same read as agreement's) and compared in
numpy; the report is cached under the fingerprint of the judge, human and gold labels it reads.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from django.db.models import Count, Max

from annotation.core.agreement import CodedTable, Estimate, table_alpha
from annotation.core.coded_tables import renumbered, rows_of
from annotation.core.crossfit import DEFAULT_FOLDS
from annotation.core.judge_audit import JudgedItem, classification_report, coded_classification_report
from annotation.errors import ErrorMapError
from annotation.models import Annotator, JudgeRefinement, Label
from annotation.selectors import (
    LabelFilter,
    VersionChoice,
    cached_by_labels,
    default_version,
    label_rows,
    label_values,
)
from annotation.selectors.agreement import Item, annotation_mode, label_table
from annotation.services.gold_learning import fold_plan, load_gold_set, offline_judgements
from taxonomy.core.induction import normalise_title
from taxonomy.models import TaxonomyVersion

OFFLINE_JUDGE = "judge:offline"
NO_HUMAN_LABELS = "no human labels"


@dataclass(frozen=True)
class CategoryScores:
    """One category's precision, recall and F1 (None where undefined), its support and how often it was
    predicted."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


@dataclass(frozen=True)
class CalibrationBin:
    """One confidence bin of a reliability diagram (mean confidence and accuracy None when empty)."""

    bin: str  # "[0.0, 0.2)"
    low: float
    high: float
    n: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Calibration:
    """Accuracy per confidence bin, and the expected calibration error (None without confidences)."""

    bins: tuple[CalibrationBin, ...]
    n_with_confidence: int
    n_without_confidence: int
    expected_calibration_error: float | None

    @classmethod
    def from_dict(cls, part: Mapping[str, Any]) -> Calibration:
        return cls(**{**part, "bins": tuple(CalibrationBin(**b) for b in part["bins"])})


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Labels against a reference on the items both have: accuracy, Cohen's kappa, per-category P/R/F1,
    the confusion matrix (reference set -> judged set -> items) and calibration."""

    n_items: int
    accuracy: float
    accuracy_note: str
    cohen_kappa: float | None
    cohen_kappa_reason: str | None
    per_category: Mapping[str, CategoryScores]
    confusion: Mapping[str, Mapping[str, int]]
    calibration: Calibration

    @staticmethod
    def parts(report: Mapping[str, Any]) -> dict[str, Any]:
        """A classification report's fields, its nested parts as dataclasses."""
        return {**report, "per_category": {name: CategoryScores(**scores)
                                           for name, scores in report["per_category"].items()},
                "calibration": Calibration.from_dict(report["calibration"])}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class NoComparison:
    """No item has both labels and a reference: nothing to compare, and why."""

    n_items: int  # 0
    accuracy: None = None
    cohen_kappa: None = None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class MajorityComparison(Comparison):
    """Against the human majority (categories chosen by more than half of an item's annotators)."""

    n_items_without_human_majority: int
    reference_note: str


@dataclass(frozen=True, kw_only=True)
class NoMajorityComparison(NoComparison):
    """Against the human majority, where no judged item has one."""

    n_items_without_human_majority: int
    reference_note: str


def majority_comparison(part: Mapping[str, Any]) -> MajorityComparison | NoMajorityComparison:
    """The comparison with the human majority, from its JSON form."""
    if part["n_items"]:
        return MajorityComparison(**Comparison.parts(part))
    return NoMajorityComparison(**part)


@dataclass(frozen=True, kw_only=True)
class CrossFitted:
    """The offline judge re-judging the gold items, each learning only from the other folds' gold."""

    folds: int
    seed: int
    grouping: str
    items_per_fold: list[int]
    texts_per_fold: list[int]
    note: str
    n_items: int
    accuracy: float | None
    cohen_kappa: float | None


@dataclass(frozen=True, kw_only=True)
class NotCrossFitted:
    """The offline judge could not be cross-fitted (too few distinct gold texts for the folds)."""

    folds: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class ExamplesLeftOut:
    """A judge that does not learn from gold: no folds; the items whose own gold was one of its
    prompt's examples are left out."""

    folds: None = None
    excluded_as_examples: int
    note: str


def cross_fitting_of(part: Mapping[str, Any]) -> CrossFitted | NotCrossFitted | ExamplesLeftOut:
    """How a comparison with gold was kept free of leaks, from its JSON form."""
    if part["folds"] is None:
        return ExamplesLeftOut(**part)
    return NotCrossFitted(**part) if "reason" in part else CrossFitted(**part)


@dataclass(frozen=True, kw_only=True)
class NoGold:
    """No judged item has gold yet."""

    n_items: int  # 0
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class GoldComparison(Comparison):
    """Against gold, with how it was kept free of leaks."""

    cross_fitting: CrossFitted | NotCrossFitted | ExamplesLeftOut


def gold_comparison(part: Mapping[str, Any]) -> GoldComparison | NoGold:
    """The comparison with gold, from its JSON form."""
    if part["n_items"]:
        return GoldComparison(**{**Comparison.parts(part), "cross_fitting": cross_fitting_of(part["cross_fitting"])})
    return NoGold(**part)


@dataclass(frozen=True, kw_only=True)
class JudgeAudit:
    """One audited judge (or person): against the human majority and gold, and its effect on alpha."""

    kind: str  # judge or human
    n_items_judged: int
    vs_human_majority: MajorityComparison | NoMajorityComparison
    vs_gold: GoldComparison | NoGold
    alpha_humans: float | None
    alpha_with_judge: float | None
    alpha_change: float | None = None
    judge_effect_on_alpha: str  # raises, lowers, unchanged or undefined
    alpha_reason: str | None

    @classmethod
    def from_dict(cls, part: Mapping[str, Any]) -> JudgeAudit:
        return cls(**{**part, "vs_human_majority": majority_comparison(part["vs_human_majority"]),
                      "vs_gold": gold_comparison(part["vs_gold"])})

    def to_dict(self) -> dict[str, Any]:
        part = asdict(self)
        if self.alpha_reason == NO_HUMAN_LABELS:  # the JSON has never held alpha_change without humans
            del part["alpha_change"]
        return part


@dataclass(frozen=True)
class JudgeAuditReport:
    """The judge audit (the `judge_audit --json` object, field for field, in order)."""

    taxonomy_version: str
    taxonomy_version_chosen: str  # why this version, when none was named
    filters: Mapping[str, Any]
    human_annotation_mode: str  # blind, assisted, mixed (...) or unknown
    human_annotation_mode_note: str
    n_items_with_human_labels: int
    n_human_annotators: int
    n_items_with_gold: int
    judges: Mapping[str, JudgeAudit]

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON-ready dict (what `judge_audit --json` and the API print)."""
        report = asdict(self)
        report["judges"] = {name: judge.to_dict() for name, judge in self.judges.items()}
        return report


@dataclass(frozen=True)
class _Judged:
    """The audited annotators' labels as arrays: their CodedTable, and per (item, annotator) the
    highest confidence among the set's rows (NaN where none was given)."""

    table: CodedTable
    confidence: np.ndarray[Any, Any]


def _judged(label_filter: LabelFilter, version: TaxonomyVersion) -> _Judged:
    rows = label_rows(label_filter, version)
    table = label_table(label_filter, version)
    confidence = np.full(table.codes.shape, np.nan)
    if len(rows.ids):
        annotator_ids = np.unique(rows.ids[:, 1])
        names = dict(Annotator.objects.filter(pk__in=annotator_ids.tolist()).values_list("pk", "name"))
        column = {name: j for j, name in enumerate(table.annotators)}
        column_of_id = np.array([column[names[a]] for a in annotator_ids.tolist()], dtype=np.int64)
        columns = column_of_id[np.searchsorted(annotator_ids, rows.ids[:, 1])]
        np.fmax.at(confidence, (rows_of(table.items, rows.ids[:, 0])[1], columns), rows.confidence)
    return _Judged(table, confidence)


def _examples_seen(label_filter: LabelFilter, version: TaxonomyVersion) -> dict[str, set[Item]]:
    """judge -> items labelled with a refined prompt that carried the item's own title as a gold example."""
    examples = {r.candidate_prompt_id: set(r.candidate_spec.get("examples", {}))
                for r in JudgeRefinement.objects.exclude(candidate_prompt=None)}
    if not any(examples.values()):  # no refined prompt carried examples: no label rows to read
        return {}
    rows = label_values(label_filter, version, "annotator_id", "prediction_id", "error_title", "prompt_version_id")
    names = dict(Annotator.objects.values_list("pk", "name"))
    seen: dict[str, set[Item]] = defaultdict(set)
    for annotator_id, item, title, prompt in rows:
        if prompt in examples and normalise_title(title) in examples[prompt]:
            seen[names[annotator_id]].add(item)
    return seen


class _Sets:
    """One numbering of category sets shared by several CodedTables (codes index `values`)."""

    def __init__(self) -> None:
        self.code: dict[frozenset[str], int] = {}
        self.values: list[frozenset[str]] = []

    def add(self, value: frozenset[str]) -> int:
        if value not in self.code:
            self.code[value] = len(self.values)
            self.values.append(value)
        return self.code[value]

    def recode(self, table: CodedTable) -> np.ndarray[Any, Any]:
        """The table's codes in this numbering (-1 stays -1)."""
        remap = np.array([self.add(v) for v in table.values] + [-1], dtype=np.int64)
        recoded: np.ndarray[Any, Any] = remap[table.codes]
        return recoded

    def union_per_item(self, table: CodedTable) -> np.ndarray[Any, Any]:
        """Per item of the table, the code of the union of its annotators' sets."""
        codes = self.recode(table)
        if not len(table.items):
            return np.zeros(0, dtype=np.int64)
        union: np.ndarray[Any, Any] = codes.max(axis=1)
        for i in np.flatnonzero((codes >= 0).sum(axis=1) > 1).tolist():
            union[i] = self.add(frozenset().union(*(self.values[c] for c in codes[i].tolist() if c >= 0)))
        return union

    def member(self) -> np.ndarray[Any, Any]:
        """(values + 1) x categories: 1 where the set holds the category; the last row (code -1) is empty."""
        categories = sorted({c for value in self.values for c in value})
        index = {c: k for k, c in enumerate(categories)}
        member = np.zeros((len(self.values) + 1, len(categories)), dtype=np.int32)
        for v, value in enumerate(self.values):
            for c in value:
                member[v, index[c]] = 1
        self.categories = categories
        return member


def _distinct_rows(matrix: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """`np.unique(matrix, axis=0, return_inverse=True)` of a boolean matrix: rows packed into one integer
    each (first column highest, so the order is the same) when they fit, which is far faster than
    sorting rows as a whole."""
    width = matrix.shape[1]
    if width > 62 or not len(matrix):
        distinct, inverse = np.unique(matrix, axis=0, return_inverse=True)
        return distinct, inverse.reshape(-1)
    keys = matrix.astype(np.int64) @ (np.int64(1) << np.arange(width - 1, -1, -1, dtype=np.int64))
    distinct_keys, inverse = np.unique(keys, return_inverse=True)
    distinct = ((distinct_keys[:, None] >> np.arange(width - 1, -1, -1, dtype=np.int64)) & 1).astype(bool)
    return distinct, inverse.reshape(-1)


def _audited_sources(names: tuple[str, ...]) -> tuple[str, ...]:
    """Label sources of the named annotators (judges and human annotators can be audited alike)."""
    if not names:
        return (Label.Source.JUDGE,)
    known = dict(Annotator.objects.filter(name__in=names).values_list("name", "kind"))
    unknown = sorted(set(names) - set(known))
    if unknown:
        judges = sorted(Annotator.objects.filter(kind=Annotator.Kind.JUDGE).values_list("name", flat=True))
        raise ErrorMapError(f"no annotator or judge named {', '.join(map(repr, unknown))} "
                            f"(judges: {', '.join(judges) or 'none'}; any human annotator's name works too)")
    if Annotator.Kind.ADJUDICATOR in known.values():
        raise ErrorMapError("an adjudicator's decisions are the gold itself; audit a judge or a human annotator")
    return tuple(sorted({Label.Source.JUDGE if kind == Annotator.Kind.JUDGE else Label.Source.HUMAN
                         for kind in known.values()}))


def audit_judge(*, label_filter: LabelFilter, judges: tuple[str, ...] = (), folds: int = DEFAULT_FOLDS
                ) -> JudgeAuditReport:
    """Accuracy, kappa, per-category P/R/F1, confusion and calibration of each judge; alpha with it.

    `judges` may name judges or human annotators: a person is audited the same way, against gold and
    against the majority of the *other* annotators (alpha: the others alone, then with them).
    Against gold, a judge that learns from gold (the offline judge) is also re-judged cross-fitted
    over `folds` folds, and the report says which folds: its stored labels must be no better.
    """
    humans = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                         sources=(Label.Source.HUMAN,), taxonomy=label_filter.taxonomy)
    judge_filter = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                               sources=_audited_sources(judges), annotators=judges,
                               taxonomy=label_filter.taxonomy)
    gold_filter = LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                              sources=(Label.Source.GOLD,), taxonomy=label_filter.taxonomy)
    # Named annotators: the version with most of their labels; else the one judge and humans share most.
    choice = default_version(judge_filter) if judges else default_version(
        LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                    sources=(Label.Source.JUDGE, Label.Source.HUMAN), taxonomy=label_filter.taxonomy),
        shared_by=(Label.Source.JUDGE, Label.Source.HUMAN))
    version = choice.version
    # Refined prompts decide which gold items a judge saw as examples: they are part of the key.
    refinements = JudgeRefinement.objects.aggregate(n=Count("pk"), last=Max("pk"))
    report = cached_by_labels(
        "judge-audit", (judge_filter, humans, gold_filter), version,
        (choice.reason, folds, sorted(refinements.items())),
        lambda: _audit(choice, judge_filter, humans, gold_filter, folds))
    mode = annotation_mode(humans, version) if report["n_items_with_human_labels"] else "unknown"
    return JudgeAuditReport(**{
        **report, "human_annotation_mode": mode,
        "judges": {name: JudgeAudit.from_dict(part) for name, part in report["judges"].items()}})


def _audit(choice: VersionChoice, judge_filter: LabelFilter, humans: LabelFilter, gold_filter: LabelFilter,
           folds: int) -> dict[str, Any]:
    version = choice.version
    judged = _judged(judge_filter, version)
    if not judged.table.annotators:
        raise ErrorMapError(f"no judge labels match {judge_filter.as_config()}")
    examples_seen = _examples_seen(judge_filter, version)
    human, gold = label_table(humans, version), label_table(gold_filter, version)
    sets = _Sets()
    human_codes, judge_codes = sets.recode(human), sets.recode(judged.table)
    gold_codes = sets.union_per_item(gold)
    member = sets.member()
    human_names = set(human.annotators)
    report: dict[str, Any] = {
        "taxonomy_version": str(version),
        "taxonomy_version_chosen": choice.reason,
        "filters": judge_filter.as_config(),
        "human_annotation_mode": "",  # filled in by audit_judge: it is read from projects, not labels
        "human_annotation_mode_note": (
            "blind: annotators did not see the judge's label; assisted: they saw it as a "
            "pre-label (agreement with the judge is then inflated); unknown: labels were "
            "imported, not collected in a Label Studio project of this platform"),
        "n_items_with_human_labels": len(human.items),
        "n_human_annotators": len(human_names),
        "n_items_with_gold": len(gold.items),
        "judges": {},
    }
    for j, judge in enumerate(judged.table.annotators):
        rated = judge_codes[:, j] >= 0
        items, codes, confidence = judged.table.items[rated], judge_codes[rated, j], judged.confidence[rated, j]
        is_person = judge in human_names
        h_items, h_names, h_codes = human.items, human.annotators, human_codes
        if is_person:  # compared with the others, never with themself
            keep = [k for k, name in enumerate(h_names) if name != judge]
            h_names, h_codes = [h_names[k] for k in keep], h_codes[:, keep]
            rows = (h_codes >= 0).any(axis=1)
            h_items, h_codes = h_items[rows], h_codes[rows]
        table = renumbered(h_items, h_names, h_codes, sets.values) if len(h_items) else None
        alpha_humans = table_alpha(table) if table else None
        # Human majority: categories chosen by more than half of the item's annotators.
        with_humans, rows = rows_of(h_items, items)
        ratings = h_codes[rows]
        counts = sum(member[ratings[:, k]] for k in range(ratings.shape[1])) if ratings.shape[1] else (
            np.zeros((len(rows), member.shape[1]), dtype=np.int32))
        majority = counts * 2 > (ratings >= 0).sum(axis=1)[:, None]
        has_majority = majority.any(axis=1)
        masks, which = _distinct_rows(majority[has_majority])
        majority_codes = np.array([sets.add(frozenset(sets.categories[k] for k in np.flatnonzero(mask).tolist()))
                                   for mask in masks], dtype=np.int64)[which.reshape(-1)]
        vs_majority = coded_classification_report(
            majority_codes, codes[with_humans][has_majority], sets.values, confidence[with_humans][has_majority])
        vs_majority["n_items_without_human_majority"] = int((~has_majority).sum())
        vs_majority["reference_note"] = (
            "human majority: the categories chosen by more than half of the item's annotators"
            + (f" other than {judge}" if is_person else ""))
        # An item whose own gold was an example in the prompt that labelled it is left out.
        seen = examples_seen.get(judge, set())
        with_gold, gold_rows = rows_of(gold.items, items)
        shown = ~np.isin(items[with_gold], np.array(sorted(seen), dtype=np.int64))
        vs_gold = coded_classification_report(gold_codes[gold_rows][shown], codes[with_gold][shown], sets.values,
                                              confidence[with_gold][shown])
        if not vs_gold["n_items"]:
            vs_gold = {"n_items": 0, "reason": "no gold labels on the judged items (run adjudicate first)"}
        else:
            vs_gold["cross_fitting"] = (
                _cross_fitted(version, folds, set(items.tolist())) if judge == OFFLINE_JUDGE else {
                    "folds": None, "excluded_as_examples": len(seen & set(gold.items.tolist())),
                    "note": ("items whose own gold label was a few-shot example in the prompt that labelled "
                             "them are left out; no other gold reaches this judge's prompt")})
        with_judge = None
        if table is not None:
            column = np.full((len(h_items), 1), -1, dtype=np.int64)
            column[rows, 0] = codes[with_humans]
            with_judge = renumbered(h_items, [*h_names, f"judge:{judge}"], np.hstack([h_codes, column]),
                                     sets.values)
        report["judges"][judge] = {
            "kind": "human" if is_person else "judge",
            "n_items_judged": len(items),
            "vs_human_majority": vs_majority,
            "vs_gold": vs_gold,
            **_alpha_effect(alpha_humans, with_judge),
        }
    return report


def _cross_fitted(version: TaxonomyVersion, folds: int, judged: set[Item]) -> dict[str, Any]:
    """The offline judge re-judging the same gold items from the other folds' gold: its honest figure."""
    gold = load_gold_set(version)
    try:
        plan = fold_plan(gold, folds)
    except ErrorMapError as exc:
        return {"folds": folds, "reason": str(exc)}
    indices = [i for i, pid in enumerate(gold.prediction_ids) if pid in judged]
    cats = offline_judgements(gold, plan, indices=indices)
    report = classification_report([JudgedItem(gold.items[i].categories, c) for i, c in zip(indices, cats)])
    return {**plan.describe(gold.keys),
            "note": ("the same items re-judged now by the offline judge, each learning only from the gold "
                     "of the other folds; the stored labels' figure above must be no better"),
            "n_items": report["n_items"], "accuracy": report["accuracy"], "cohen_kappa": report["cohen_kappa"]}


def _alpha_effect(alpha_humans: Estimate | None, with_judge_table: CodedTable | None) -> dict[str, Any]:
    """Alpha of the humans alone and with the judge as one more annotator, on the humans' items (both are
    None when there are no human labels)."""
    if alpha_humans is None or with_judge_table is None:
        return {"alpha_humans": None, "alpha_with_judge": None, "judge_effect_on_alpha": "undefined",
                "alpha_reason": NO_HUMAN_LABELS}
    with_judge = table_alpha(with_judge_table)
    if alpha_humans.value is None or with_judge.value is None:
        effect = "undefined"
    elif abs(with_judge.value - alpha_humans.value) < 5e-4:
        effect = "unchanged"
    else:
        effect = "raises" if with_judge.value > alpha_humans.value else "lowers"
    return {
        "alpha_humans": None if alpha_humans.value is None else round(alpha_humans.value, 6),
        "alpha_with_judge": None if with_judge.value is None else round(with_judge.value, 6),
        "alpha_change": (round(with_judge.value - alpha_humans.value, 6)
                         if alpha_humans.value is not None and with_judge.value is not None else None),
        "judge_effect_on_alpha": effect,
        "alpha_reason": alpha_humans.reason or with_judge.reason,
    }

"""Judge reliability: the judge's labels against the human majority and against gold."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from annotation.core.agreement import RatingTable, table_alpha
from annotation.core.crossfit import DEFAULT_FOLDS
from annotation.core.judge_audit import JudgedItem, classification_report, majority_set
from annotation.errors import ErrorMapError
from annotation.models import Annotator, JudgeRefinement, Label
from annotation.selectors import LabelFilter, default_version, label_values
from annotation.services.agreement import Item, annotation_mode, label_sets, rating_table
from annotation.services.gold_learning import fold_plan, load_gold_set, offline_judgements
from taxonomy.core.induction import normalise_title

OFFLINE_JUDGE = "judge:offline"


def _judge_sets(label_filter: LabelFilter, version) -> dict[str, dict[Item, tuple[frozenset[str], float | None]]]:
    """judge -> item -> (category set, highest confidence among the set's rows)."""
    names = dict(Annotator.objects.values_list("pk", "name"))
    rows = [(names[a], item, path, conf) for a, item, path, conf in label_values(
        label_filter, version, "annotator_id", "prediction_id", "category__path", "confidence")]
    sets: dict[str, dict[Item, set[str]]] = defaultdict(lambda: defaultdict(set))
    confidence: dict[tuple[str, Item], float | None] = {}
    for judge, item, path, conf in rows:
        sets[judge][item].add(path)
        if conf is not None:
            previous = confidence.get((judge, item))
            confidence[(judge, item)] = conf if previous is None else max(previous, conf)
    return {judge: {item: (frozenset(cats), confidence.get((judge, item)))
                    for item, cats in by_item.items()}
            for judge, by_item in sets.items()}


def _examples_seen(label_filter: LabelFilter, version) -> dict[str, set[Item]]:
    """judge -> items labelled with a refined prompt that carried the item's own title as a gold example."""
    rows = label_values(label_filter, version, "annotator_id", "prediction_id", "error_title", "prompt_version_id")
    prompts = {pv for *_, pv in rows if pv is not None}
    examples = {r.candidate_prompt_id: set(r.candidate_spec.get("examples", {}))
                for r in JudgeRefinement.objects.filter(candidate_prompt_id__in=prompts)}
    if not examples:
        return {}
    names = dict(Annotator.objects.values_list("pk", "name"))
    seen: dict[str, set[Item]] = defaultdict(set)
    for annotator_id, item, title, prompt in rows:
        if normalise_title(title) in examples.get(prompt, ()):
            seen[names[annotator_id]].add(item)
    return seen


def _with_judge(table: RatingTable, judge: str,
                judged: dict[Item, tuple[frozenset[str], float | None]]) -> RatingTable:
    """The human table plus the judge as one more annotator column."""
    cells = [row + [judged[item][0] if item in judged else None]
             for item, row in zip(table.items, table.cells)]
    return RatingTable(table.items, table.annotators + [f"judge:{judge}"], cells)


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


def _without(human_sets: dict[Item, dict[str, frozenset[str]]], annotator: str
             ) -> dict[Item, dict[str, frozenset[str]]]:
    """The human labels minus one annotator's (a person is compared with the others, never with themself)."""
    rest = {item: {a: v for a, v in by.items() if a != annotator} for item, by in human_sets.items()}
    return {item: by for item, by in rest.items() if by}


def audit_judge(*, label_filter: LabelFilter, judges: tuple[str, ...] = (), folds: int = DEFAULT_FOLDS
                ) -> dict[str, Any]:
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
    judged_by = _judge_sets(judge_filter, version)
    examples_seen = _examples_seen(judge_filter, version)
    if not judged_by:
        raise ErrorMapError(f"no judge labels match {judge_filter.as_config()}")
    all_human_sets = label_sets(humans, version)
    gold_sets = label_sets(gold_filter, version)
    human_names = {a for by in all_human_sets.values() for a in by}
    mode = annotation_mode(humans, version) if all_human_sets else "unknown"
    report: dict[str, Any] = {
        "taxonomy_version": str(version),
        "taxonomy_version_chosen": choice.reason,
        "filters": judge_filter.as_config(),
        "human_annotation_mode": mode,
        "human_annotation_mode_note": (
            "blind: annotators did not see the judge's label; assisted: they saw it as a "
            "pre-label (agreement with the judge is then inflated); unknown: labels were "
            "imported, not collected in a Label Studio project of this platform"),
        "n_items_with_human_labels": len(all_human_sets),
        "n_human_annotators": len(human_names),
        "n_items_with_gold": len(gold_sets),
        "judges": {},
    }
    for judge, judged in sorted(judged_by.items()):
        is_person = judge in human_names
        human_sets = _without(all_human_sets, judge) if is_person else all_human_sets
        table = rating_table(human_sets) if human_sets else None
        alpha_humans = table_alpha(table) if table else None
        majority_items, no_majority = [], 0
        for item, (cats, conf) in sorted(judged.items()):
            if item not in human_sets:
                continue
            majority = majority_set(list(human_sets[item].values()))
            if majority:
                majority_items.append(JudgedItem(majority, cats, conf))
            else:
                no_majority += 1
        # An item whose own gold was an example in the prompt that labelled it is left out.
        seen = examples_seen.get(judge, set())
        gold_items = [
            JudgedItem(frozenset().union(*gold_sets[item].values()), cats, conf)
            for item, (cats, conf) in sorted(judged.items()) if item in gold_sets and item not in seen
        ]
        vs_majority = classification_report(majority_items)
        vs_majority["n_items_without_human_majority"] = no_majority
        vs_majority["reference_note"] = (
            "human majority: the categories chosen by more than half of the item's annotators"
            + (f" other than {judge}" if is_person else ""))
        vs_gold = classification_report(gold_items) if gold_items else {
            "n_items": 0, "reason": "no gold labels on the judged items (run adjudicate first)"}
        if gold_items:
            vs_gold["cross_fitting"] = (_cross_fitted(version, folds, judged) if judge == OFFLINE_JUDGE else {
                "folds": None, "excluded_as_examples": len(seen & set(gold_sets)),
                "note": ("items whose own gold label was a few-shot example in the prompt that labelled "
                         "them are left out; no other gold reaches this judge's prompt")})
        report["judges"][judge] = {
            "kind": "human" if is_person else "judge",
            "n_items_judged": len(judged),
            "vs_human_majority": vs_majority,
            "vs_gold": vs_gold,
            **_alpha_effect(table, alpha_humans, judge, judged),
        }
    return report


def _cross_fitted(version, folds: int, judged: dict) -> dict[str, Any]:
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


def _alpha_effect(table: RatingTable | None, alpha_humans, judge: str,
                  judged: dict[Item, tuple[frozenset[str], float | None]]) -> dict[str, Any]:
    """Alpha of the humans alone and with the judge as one more annotator, on the humans' items."""
    if table is None:
        return {"alpha_humans": None, "alpha_with_judge": None, "judge_effect_on_alpha": "undefined",
                "alpha_reason": "no human labels"}
    with_judge = table_alpha(_with_judge(table, judge, judged))
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

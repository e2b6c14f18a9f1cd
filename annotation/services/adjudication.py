"""Adjudication: the auto-gold rule over human labels, the queue of the rest, and resolving it.

Gold labels are ordinary Label rows (source=gold, one set per item and taxonomy version); every
change to them comes with an AdjudicationDecision that says who decided, by which rule, and why.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from annotation.core.adjudication import HOW_TO_RESOLVE, SHARE, UNANIMOUS, AutoGoldRule, apply_rule
from annotation.errors import ErrorMapError
from annotation.models import (
    AdjudicationDecision,
    AdjudicationItem,
    Annotator,
    Label,
    Prediction,
)
from annotation.selectors import LabelFilter, default_version, label_values
from annotation.services.bulk_sql import batches
from annotation.services.labels import (
    LabelEntry,
    LabelSet,
    LabelWriteReport,
    get_annotator,
    replace_label_sets,
)
from annotation.services.runs import stage_run
from taxonomy.core.paths import join_path, split_path
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.versions import category_index, resolve_version

AUTO_GOLD_ANNOTATOR = "auto-gold"
IDS_PER_QUERY = 900  # ids in one IN list or one bulk insert (SQLite caps a statement's parameters)
ITEM_SEPARATOR = "|"


@dataclass(frozen=True)
class AdjudicationReport:
    """What one run of the auto rule did."""

    taxonomy_version: str
    rule: str
    items: int
    auto_gold: int
    auto_gold_unanimous: int  # of auto_gold: every annotator gave the same categories
    auto_gold_by_share: int  # of auto_gold: the rule's share, not everyone, agreed
    queued: int
    resolved_by_adjudicator: int
    imported: int  # items whose gold came from import_labels: kept, like a person's decision
    reopened: int
    changed: int
    next_step: str = ""  # what to do about the items still queued


def _item_labels(version: TaxonomyVersion, label_filter: LabelFilter, source: str
                 ) -> tuple[dict[int, dict[str, set[str]]], dict[int, list[str]]]:
    """prediction id -> annotator -> category paths, and prediction id -> proposed new categories."""
    f = LabelFilter(datasets=label_filter.datasets, models=label_filter.models, sources=(source,))
    sets: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    proposals: dict[int, list[str]] = defaultdict(list)
    names = dict(Annotator.objects.values_list("pk", "name"))
    # Read through the mapping: on a derived version, the earlier version's labels count as mapped.
    rows = label_values(f, version, "prediction_id", "annotator_id", "category__path", "proposed_category")
    for prediction_id, annotator_id, path, proposed in rows:
        annotator = names[annotator_id]
        sets[prediction_id][annotator].add(path)
        if proposed:
            proposals[prediction_id].append(proposed)
    return sets, proposals


def _snapshot(humans: dict[str, set[str]], judges: dict[str, set[str]]) -> dict[str, Any]:
    return {"human": {a: sorted(c) for a, c in sorted(humans.items())},
            "judge": {a: sorted(c) for a, c in sorted(judges.items())}}


def _write_gold(decisions: Sequence[AdjudicationDecision], version: TaxonomyVersion, annotator: Annotator) -> None:
    """Make each decision's item's gold set exactly its categories, by `annotator` (other gold rows on
    those items go); the decisions are saved. One pass for many items: a query per item made the auto
    rule on a few thousand items take most of a minute on PostgreSQL."""
    for chunk in batches([d.prediction_id for d in decisions], IDS_PER_QUERY):
        Label.objects.filter(prediction_id__in=chunk, taxonomy_version=version,
                             source=Label.Source.GOLD).exclude(annotator=annotator).delete()
    index = category_index(version)
    replace_label_sets([
        LabelSet(d.prediction_id, version.pk, Label.Source.GOLD, annotator.pk, tuple(
            LabelEntry(index[p.lower()].pk, {"rationale": d.reason, "external_id": f"adjudication:{d.pk}"})
            for p in d.categories))
        for d in decisions])


def _clear_gold(prediction_id: int, version: TaxonomyVersion) -> None:
    Label.objects.filter(prediction_id=prediction_id, taxonomy_version=version,
                         source=Label.Source.GOLD).delete()


def adjudicate_labels(*, label_filter: LabelFilter, rule: AutoGoldRule) -> AdjudicationReport:
    """Apply the auto rule to every item with human labels: gold where it holds, queue the rest."""
    version = default_version(LabelFilter(datasets=label_filter.datasets, models=label_filter.models,
                                          sources=(Label.Source.HUMAN,), taxonomy=label_filter.taxonomy)).version
    config = {**label_filter.as_config(), "taxonomy_version": str(version), "rule": rule.describe()}
    auto = get_annotator(AUTO_GOLD_ANNOTATOR, kind=Annotator.Kind.ADJUDICATOR)
    counts = {"items": 0, "auto_gold": 0, "auto_gold_unanimous": 0, "auto_gold_by_share": 0, "queued": 0,
              "resolved_by_adjudicator": 0, "imported": 0, "reopened": 0, "changed": 0}
    with stage_run("adjudicate", config) as run, transaction.atomic():
        humans, proposals = _item_labels(version, label_filter, Label.Source.HUMAN)
        judges, _ = _item_labels(version, label_filter, Label.Source.JUDGE)
        active = {d.prediction_id: d for d in AdjudicationDecision.objects.filter(
            taxonomy_version=version, superseded=False, prediction_id__in=list(humans))}
        queue = {q.prediction_id: q for q in AdjudicationItem.objects.filter(
            taxonomy_version=version, prediction_id__in=list(humans))}
        new_gold: list[AdjudicationDecision] = []
        new_queue: list[AdjudicationItem] = []
        for prediction_id in sorted(humans):
            counts["items"] += 1
            decision = active.get(prediction_id)
            if decision is not None and decision.method == AdjudicationDecision.Method.ADJUDICATOR:
                counts["resolved_by_adjudicator"] += 1  # a person's decision is never overridden by the rule
                continue
            if decision is not None and decision.method == AdjudicationDecision.Method.IMPORT:
                counts["imported"] += 1  # nor is gold someone brought in from a file
                continue
            values = [frozenset(c) for c in humans[prediction_id].values()]
            outcome = apply_rule(values, rule, proposals=proposals.get(prediction_id, ()))
            queued = queue.get(prediction_id)
            if outcome.gold is not None:
                counts["auto_gold"] += 1
                counts[{UNANIMOUS: "auto_gold_unanimous", SHARE: "auto_gold_by_share"}[outcome.settled_by]] += 1
                paths = sorted(outcome.gold)
                if decision is None or decision.categories != paths or decision.rule != rule.describe():
                    counts["changed"] += 1
                    new_gold.append(AdjudicationDecision(
                        prediction_id=prediction_id, taxonomy_version=version, categories=paths,
                        method=AdjudicationDecision.Method.AUTO_RULE, rule=rule.describe(),
                        decided_by=auto, reason=outcome.why))
                if queued is not None and queued.status == AdjudicationItem.Status.OPEN:
                    queued.status = AdjudicationItem.Status.AUTO_GOLD
                    queued.save(update_fields=["status", "updated_at"])
                continue
            counts["queued"] += 1
            if decision is not None:  # the rule no longer holds (labels changed): back to a person
                counts["reopened"] += 1
                decision.superseded = True
                decision.save(update_fields=["superseded"])
                _clear_gold(prediction_id, version)
            snapshot = _snapshot(humans[prediction_id], judges.get(prediction_id, {}))
            if queued is None:
                counts["changed"] += 1
                new_queue.append(AdjudicationItem(prediction_id=prediction_id, taxonomy_version=version,
                                                  why=outcome.why, labels=snapshot))
            elif (queued.status, queued.why, queued.labels) != (AdjudicationItem.Status.OPEN, outcome.why,
                                                               snapshot):
                counts["changed"] += 1
                queued.status, queued.why, queued.labels = AdjudicationItem.Status.OPEN, outcome.why, snapshot
                queued.save(update_fields=["status", "why", "labels", "updated_at"])
        # Written together: the decisions the rule replaces, the new ones with their gold, new queue items.
        for chunk in batches([d.prediction_id for d in new_gold], IDS_PER_QUERY):
            AdjudicationDecision.objects.filter(prediction_id__in=chunk, taxonomy_version=version,
                                                superseded=False).update(superseded=True)
        _write_gold(AdjudicationDecision.objects.bulk_create(new_gold, batch_size=IDS_PER_QUERY), version, auto)
        AdjudicationItem.objects.bulk_create(new_queue, batch_size=IDS_PER_QUERY)
        run.counts = counts
    return AdjudicationReport(taxonomy_version=str(version), rule=rule.describe(), **counts,
                              next_step=_next_step(counts["queued"], version, rule))


def _next_step(queued: int, version: TaxonomyVersion, rule: AutoGoldRule) -> str:
    """How to go on with the items the rule left in the queue."""
    if not queued:
        return "nothing queued: every item with human labels is gold (export_gold writes the set)"
    return (f"{queued} item(s) queued: see why with `adjudicate --list --taxonomy {version}`; items short of "
            f"{rule.min_annotators} annotators need more labels (push_labelstudio --overlap "
            f"{rule.min_annotators}, then sync_labelstudio); for the rest {HOW_TO_RESOLVE}")


@dataclass(frozen=True)
class GoldImportReport:
    """What importing gold label sets did: the label rows written and the decisions recorded."""

    written: LabelWriteReport
    decisions: int  # new import decisions (an unchanged re-import records none)
    superseded: int  # earlier decisions (rule, adjudicator, older import) these replaced


def import_decision_id(file_name: str) -> str:
    """The external id of a decision (and its gold labels) read from a file."""
    return f"import:{file_name}"


@transaction.atomic
def record_imported_gold(*, label_sets: Sequence[LabelSet], file_name: str) -> GoldImportReport:
    """Gold from a file is a decision too: for each item, supersede the active decision with one of
    method `import` (decided_by the file's annotator), make the item's gold exactly the imported set
    and close its queue item. Re-importing the same file changes nothing."""
    by_item: dict[tuple[int, int], list[LabelSet]] = defaultdict(list)
    for label_set in label_sets:
        by_item[(label_set.prediction_id, label_set.taxonomy_version_id)].append(label_set)
    if not by_item:
        return GoldImportReport(LabelWriteReport(0, 0, 0, 0), 0, 0)
    shared = sorted(key for key, sets in by_item.items() if len({s.annotator_id for s in sets}) > 1)
    if shared:
        names = Prediction.objects.filter(pk__in=[p for p, _ in shared]).select_related(
            "example__dataset", "model")
        items = ", ".join(sorted(f"{p.example.dataset.name}{ITEM_SEPARATOR}{p.example.example_id}"
                                 f"{ITEM_SEPARATOR}{p.model.name}" for p in names)[:5])
        raise ErrorMapError(f"{file_name}: gold from more than one annotator for {len(shared)} item(s) "
                            f"({items}); an item has one gold set: keep one annotator's rows per item")
    prediction_ids = sorted({p for p, _ in by_item})
    version_ids = sorted({v for _, v in by_item})
    path_of = dict(Category.objects.filter(pk__in={e.category_id for s in label_sets for e in s.entries})
                   .values_list("pk", "path"))
    active = {(d.prediction_id, d.taxonomy_version_id): d for d in AdjudicationDecision.objects.filter(
        prediction_id__in=prediction_ids, taxonomy_version_id__in=version_ids, superseded=False)}
    external_id = import_decision_id(file_name)
    to_supersede: list[int] = []
    new_decisions: list[AdjudicationDecision] = []
    for (prediction_id, version_id), (label_set,) in sorted(by_item.items()):
        paths = sorted({path_of[e.category_id] for e in label_set.entries})
        current = active.get((prediction_id, version_id))
        if current is not None and (current.method, current.categories, current.decided_by_id,
                                    current.external_id) == (AdjudicationDecision.Method.IMPORT, paths,
                                                             label_set.annotator_id, external_id):
            continue
        if current is not None:
            to_supersede.append(current.pk)
        new_decisions.append(AdjudicationDecision(
            prediction_id=prediction_id, taxonomy_version_id=version_id, categories=paths,
            method=AdjudicationDecision.Method.IMPORT, decided_by_id=label_set.annotator_id,
            reason=f"gold imported from {file_name}", external_id=external_id))
    AdjudicationDecision.objects.filter(pk__in=to_supersede).update(superseded=True)
    AdjudicationDecision.objects.bulk_create(new_decisions)
    # The item's gold is the imported set alone: gold rows by anyone else on it (an auto rule's, an
    # adjudicator's) go with the decision they came from.
    other_gold = [pk for pk, prediction_id, version_id, annotator_id in Label.objects.filter(
        prediction_id__in=prediction_ids, taxonomy_version_id__in=version_ids, source=Label.Source.GOLD,
    ).values_list("pk", "prediction_id", "taxonomy_version_id", "annotator_id")
        if (prediction_id, version_id) in by_item
        and by_item[(prediction_id, version_id)][0].annotator_id != annotator_id]
    removed = Label.objects.filter(pk__in=other_gold).delete()[0] if other_gold else 0
    written = replace_label_sets(label_sets)
    open_items = [q.pk for q in AdjudicationItem.objects.filter(
        prediction_id__in=prediction_ids, taxonomy_version_id__in=version_ids,
        status=AdjudicationItem.Status.OPEN).only("pk", "prediction_id", "taxonomy_version_id")
        if (q.prediction_id, q.taxonomy_version_id) in by_item]
    AdjudicationItem.objects.filter(pk__in=open_items).update(status=AdjudicationItem.Status.RESOLVED,
                                                              updated_at=timezone.now())
    return GoldImportReport(written=written + LabelWriteReport(0, 0, removed, 0),
                            decisions=len(new_decisions), superseded=len(to_supersede))


def item_key(prediction: Prediction) -> str:
    """'DATASET|EXAMPLE_ID|MODEL' of a prediction (the item), as `find_prediction` reads it back."""
    return ITEM_SEPARATOR.join((prediction.example.dataset.name, prediction.example.example_id,
                                prediction.model.name))


def find_prediction(item: str) -> Prediction:
    """'DATASET|EXAMPLE_ID|MODEL' -> the prediction (the item)."""
    parts = item.split(ITEM_SEPARATOR)
    if len(parts) != 3:
        raise ErrorMapError(f"item {item!r}: expected a queue id or DATASET{ITEM_SEPARATOR}EXAMPLE_ID"
                            f"{ITEM_SEPARATOR}MODEL")
    dataset, example_id, model = parts
    prediction = Prediction.objects.filter(example__dataset__name=dataset, example__example_id=example_id,
                                           model__name=model).first()
    if prediction is None:
        raise ErrorMapError(f"no item {item!r}")
    return prediction


def adjudicator_named(name: str) -> Annotator:
    """The adjudicator of that name (kind adjudicator), created on first use. A person who is also a
    human annotator under that name decides as '<name> (adjudicator)', so their labels and their
    decisions stay apart."""
    annotator = Annotator.objects.filter(name=name).first()
    if annotator is None:
        return Annotator.objects.create(name=name, kind=Annotator.Kind.ADJUDICATOR)
    if annotator.kind == Annotator.Kind.ADJUDICATOR:
        return annotator
    return get_annotator(f"{name} (adjudicator)", kind=Annotator.Kind.ADJUDICATOR, email=annotator.email)


@transaction.atomic
def resolve_item(*, item: str, categories: list[str], by: str, reason: str,
                 taxonomy: str | None = None, external_id: str = "") -> AdjudicationDecision:
    """An adjudicator's decision on one item: gold categories, who, and why (all kept).

    `external_id` says where it was made ("ls:<annotation id>", "api:<user id>"); the command leaves it
    empty. The command, the REST API and the Label Studio adjudication project all come through here."""
    if not reason.strip():
        raise ErrorMapError("a decision needs a reason (--reason)")
    if not by.strip():
        raise ErrorMapError("a decision needs the adjudicator's name (--by)")
    if not categories:
        raise ErrorMapError("a decision needs at least one category (--category)")
    queued: AdjudicationItem | None = None
    if item.isdigit():
        queued = AdjudicationItem.objects.select_related("prediction", "taxonomy_version").filter(pk=int(item)).first()
        if queued is None:
            raise ErrorMapError(f"no adjudication queue item {item}")
        prediction, version = queued.prediction, queued.taxonomy_version
    else:
        prediction = find_prediction(item)
        version = resolve_version(taxonomy) if taxonomy else _version_of(prediction)
        queued = AdjudicationItem.objects.filter(prediction=prediction, taxonomy_version=version).first()
    index = category_index(version)
    wanted = {c: join_path(split_path(c)).lower() for c in categories}
    unknown = [c for c, key in wanted.items() if key not in index]
    if unknown:
        raise ErrorMapError(f"unknown categories in {version}: {', '.join(unknown)} (new categories go "
                            "through a taxonomy version, not through adjudication)")
    paths = sorted({index[key].path for key in wanted.values()})
    adjudicator = adjudicator_named(by.strip())
    AdjudicationDecision.objects.filter(prediction=prediction, taxonomy_version=version,
                                        superseded=False).update(superseded=True)
    decision = AdjudicationDecision.objects.create(
        prediction=prediction, taxonomy_version=version, categories=paths,
        method=AdjudicationDecision.Method.ADJUDICATOR, decided_by=adjudicator, reason=reason.strip(),
        external_id=external_id)
    _write_gold([decision], version, adjudicator)
    if queued is not None:
        queued.status = AdjudicationItem.Status.RESOLVED
        queued.save(update_fields=["status", "updated_at"])
    return decision


def _version_of(prediction: Prediction) -> TaxonomyVersion:
    ids = sorted(set(Label.objects.filter(prediction=prediction, source=Label.Source.HUMAN)
                     .values_list("taxonomy_version_id", flat=True)))
    if len(ids) != 1:
        raise ErrorMapError(f"{prediction}: human labels in {len(ids)} taxonomy versions; pick one with --taxonomy")
    return TaxonomyVersion.objects.get(pk=ids[0])


def adjudication_queue(*, taxonomy: str | None = None, status: str = AdjudicationItem.Status.OPEN
                       ) -> list[dict[str, Any]]:
    """The queue as plain data: item, why it is disputed, each annotator's and the judge's labels."""
    items = AdjudicationItem.objects.filter(status=status).select_related(
        "prediction__example__dataset", "prediction__model", "taxonomy_version__taxonomy").order_by("pk")
    if taxonomy:
        items = items.filter(taxonomy_version=resolve_version(taxonomy))
    return [{
        "id": q.pk,
        "item": item_key(q.prediction),
        "taxonomy_version": str(q.taxonomy_version),
        "status": q.status,
        "why": q.why,
        "labels": q.labels,
    } for q in items]


@transaction.atomic
def withdraw_decision(*, decision: AdjudicationDecision) -> AdjudicationItem | None:
    """Take back an adjudicator's decision (its Label Studio annotation was deleted): it stays in the
    history as superseded, the item's gold labels go, and the queue item is open again."""
    if decision.superseded:
        return None  # already replaced by a newer decision: nothing to take back
    decision.superseded = True
    decision.save(update_fields=["superseded"])
    _clear_gold(decision.prediction_id, decision.taxonomy_version)
    queued = AdjudicationItem.objects.filter(prediction_id=decision.prediction_id,
                                             taxonomy_version=decision.taxonomy_version).first()
    if queued is not None and queued.status != AdjudicationItem.Status.OPEN:
        queued.status = AdjudicationItem.Status.OPEN
        queued.save(update_fields=["status", "updated_at"])
    return queued


def decision_history(*, item: str) -> list[dict[str, Any]]:
    """Every decision on an item, oldest first (who, method, rule, why, superseded, where made).

    ITEM is 'DATASET|EXAMPLE_ID|MODEL' (every taxonomy version) or a queue id (that item's version)."""
    if item.isdigit():
        queued = AdjudicationItem.objects.filter(pk=int(item)).first()
        if queued is None:
            raise ErrorMapError(f"no adjudication queue item {item}")
        decisions = AdjudicationDecision.objects.filter(prediction_id=queued.prediction_id,
                                                        taxonomy_version_id=queued.taxonomy_version_id)
    else:
        decisions = AdjudicationDecision.objects.filter(prediction=find_prediction(item))
    return [{
        "id": d.pk, "categories": d.categories, "method": d.method, "rule": d.rule,
        "decided_by": d.decided_by.name, "reason": d.reason, "superseded": d.superseded,
        "taxonomy_version": str(d.taxonomy_version), "external_id": d.external_id,
        "created_at": d.created_at.isoformat(),
    } for d in decisions.select_related("decided_by", "taxonomy_version__taxonomy").order_by("pk")]


def report_dict(report: AdjudicationReport) -> dict[str, Any]:
    """JSON-ready form of a report."""
    return asdict(report)

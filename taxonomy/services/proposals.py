"""Taxonomy change proposals on the database: read a version's labels, propose, store the proposals."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Count, Q

from annotation.core.judge import JudgeError
from annotation.errors import ErrorMapError
from annotation.models import Label, Prediction, WorkSet, WorkSetFailure
from annotation.selectors import LabelFilter
from annotation.selectors.agreement import label_sets
from annotation.services.adjudication import ITEM_SEPARATOR
from annotation.services.judging import get_judge_backend, json_completion
from annotation.services.runs import progress, stage_run
from taxonomy.core.paths import OTHER
from taxonomy.core.proposals import (
    REWRITE_SCHEMA,
    REWRITE_SYSTEM,
    CategoryInfo,
    LabelText,
    Proposal,
    Settings,
    propose_changes,
    rewrite_request,
)
from taxonomy.models import CategoryMapping, TaxonomyProposal, TaxonomyVersion
from taxonomy.services.versions import (
    CategoryChange,
    CategorySpec,
    derive_version,
    leaf_categories,
    resolve_version,
)

SOURCES = (Label.Source.HUMAN, Label.Source.GOLD)
DEFAULT_SETTINGS = Settings()


def propose_taxonomy_changes(*, taxonomy: str, source: str = Label.Source.HUMAN,
                             settings: Settings = DEFAULT_SETTINGS, judge: str | None = None,
                             model: str | None = None) -> dict[str, Any]:
    """Propose changes to a version from its labels and store them (open); nothing is applied.

    Merge and rewrite read the human annotators' confusion and per-category agreement whatever the
    source; add, split and retire read the labels of `source` (human or gold). With the OpenAI judge
    (`judge`, default ERRORMAP_JUDGE) a rewrite's description is written by it from the rule's draft.
    """
    judge = judge or django_settings.ERRORMAP_JUDGE
    if source not in SOURCES:
        raise ErrorMapError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    version = resolve_version(taxonomy)
    labels = _label_texts(version, source)
    if not labels:
        hint = "run `adjudicate` first" if source == Label.Source.GOLD else "import or collect labels first"
        raise ErrorMapError(f"no {source} labels in {version} yet: {hint}")
    sets = label_sets(LabelFilter(sources=(Label.Source.HUMAN,), taxonomy=str(version)), version)
    categories = [CategoryInfo(c.path, c.description) for c in leaf_categories(version)]
    config = {"taxonomy": str(version), "source": source, "settings": settings.__dict__, "judge": judge}
    with stage_run("propose_taxonomy_changes", config) as run, transaction.atomic():
        proposals = propose_changes(categories=categories, sets=sets, labels=labels,
                                    item_texts=_item_texts({lt.item for lt in labels} | set(sets)),
                                    settings=settings,
                                    each_kind=lambda kinds: progress(kinds, desc="proposals", unit="kind"))
        if judge == "openai":
            proposals = _rewritten_by_judge(proposals, {c.path: c.description for c in categories}, model)
        names = _item_names({i for p in proposals for i in _example_items(p)})
        rows = [_store(version, source, p, names) for p in proposals]
        run.counts = {"proposals": len(rows), **{kind: sum(r.kind == kind for r in rows)
                                                 for kind in TaxonomyProposal.Kind.values}}
    return {"taxonomy": str(version), "proposals": [proposal_dict(r) for r in rows]}


def _rewritten_by_judge(proposals: list[Proposal], descriptions: dict[str, str], model: str | None) -> list[Proposal]:
    """Rewrite proposals with the description the OpenAI judge writes from the rule's draft (its two
    examples kept); a failed answer keeps the draft and says why in the evidence."""
    rewrites = [p for p in proposals if p.kind == TaxonomyProposal.Kind.REWRITE]
    if not rewrites:
        return proposals
    backend = get_judge_backend("openai", model=model)
    complete = json_completion(backend)
    done: dict[int, Proposal] = {}
    try:
        for p in rewrites:
            messages = [{"role": "system", "content": REWRITE_SYSTEM},
                        {"role": "user", "content": rewrite_request(p, descriptions.get(p.categories[0], ""))}]
            try:
                text = str(complete("rewrite_category", messages, REWRITE_SCHEMA)["description"]).strip()
            except JudgeError as exc:
                done[id(p)] = replace(p, evidence={**p.evidence, "judge_error": str(exc)})
                continue
            if text:
                done[id(p)] = replace(p, description=text, evidence={
                    **p.evidence, "written_by": f"openai judge {backend.model_name} from the rule's draft",
                    "draft": p.description})
    finally:
        if hasattr(backend, "close"):
            backend.close()
    return [done.get(id(p), p) for p in proposals]


def list_proposals(*, taxonomy: str) -> dict[str, Any]:
    """The stored proposals of a version, open first (a read: it writes nothing)."""
    version = resolve_version(taxonomy)
    rows = version.proposals.select_related("accepted_in__taxonomy").order_by("status", "id")
    made = sorted({v for r in rows if (v := r.accepted_in) is not None}, key=lambda v: v.number)
    queues = {w.name: w.n for w in WorkSet.objects.filter(name__in=[relabel_work_set_name(v) for v in made])
              .annotate(n=Count("failures"))}
    return {"taxonomy": str(version),
            "proposals": [{**proposal_dict(r), "status": r.status,
                           "accepted_in": str(r.accepted_in) if r.accepted_in_id else None,
                           "decided_by": r.decided_by} for r in rows],
            "relabel_queues": [{"version": str(v), "work_set": relabel_work_set_name(v),
                                "items": queues.get(relabel_work_set_name(v), 0)} for v in made]}


def proposal_dict(row: TaxonomyProposal) -> dict[str, Any]:
    """A stored proposal in the JSON shape of `propose_taxonomy_changes --json`."""
    return {"id": row.pk, "kind": row.kind, "categories": row.categories, "new_name": row.new_name,
            "description": row.description, "evidence": row.evidence}


def _store(version: TaxonomyVersion, source: str, proposal: Proposal,
           names: dict[int, dict[str, Any]]) -> TaxonomyProposal:
    evidence = dict(proposal.evidence)
    evidence["source"] = source
    evidence["examples"] = [names[i] for i in proposal.examples if i in names]
    if proposal.kind == TaxonomyProposal.Kind.SPLIT:
        for side in evidence.get("sides", []):
            side["examples"] = [names[i] for i in side["examples"] if i in names]
    row, created = TaxonomyProposal.objects.get_or_create(
        version=version, key=proposal.key,
        defaults={"kind": proposal.kind, "categories": list(proposal.categories), "new_name": proposal.new_name,
                  "description": proposal.description, "evidence": evidence, "source": source})
    if not created and row.status == TaxonomyProposal.Status.OPEN:
        row.description, row.evidence, row.source = proposal.description, evidence, source
        row.save(update_fields=["description", "evidence", "source", "updated_at"])
    return row


def _example_items(proposal: Proposal) -> list[int]:
    items = list(proposal.examples)
    for side in proposal.evidence.get("sides", []):
        items.extend(side["examples"])
    return items


def _label_texts(version: TaxonomyVersion, source: str) -> list[LabelText]:
    rows = (Label.objects.filter(taxonomy_version=version, source=source).order_by("id")
            .values_list("prediction_id", "annotator__name", "category__path", "error_title", "error_summary",
                         "note", "proposed_category"))
    return [LabelText(item=pid, annotator=who, path=path, text=" ".join(p for p in (title, summary) if p),
                      note=note, proposed=proposed)
            for pid, who, path, title, summary, note, proposed in rows.iterator(chunk_size=5000)]


def _item_texts(items: set[int]) -> dict[int, str]:
    """Each item's output, cut short: what an example shows."""
    out: dict[int, str] = {}
    ids = sorted(items)
    for start in range(0, len(ids), 500):
        for pk, text in Prediction.objects.filter(pk__in=ids[start:start + 500]).values_list("pk", "output_text"):
            out[pk] = text[:300]
    return out


def _item_names(items: set[int]) -> dict[int, dict[str, str]]:
    rows = Prediction.objects.filter(pk__in=sorted(items)).values_list(
        "pk", "example__dataset__name", "example__example_id", "model__name", "output_text")
    return {pk: {"item": ITEM_SEPARATOR.join((d, e, m)), "output": text[:200]} for pk, d, e, m, text in rows}


@dataclass(frozen=True)
class AcceptReport:
    """What accepting proposals made: the new version, its mapping and what must be labelled again."""

    taxonomy_version: str
    base_version: str
    accepted: list[int]
    mapping: dict[str, dict[str, Any]]  # base path -> {"kind", "targets"}
    added: list[str]  # new categories no base category maps to
    rewritten: list[str]  # kept categories with a new description
    relabel_items: int  # items holding base labels on a split category: queued for re-labelling
    relabel_work_set: str | None  # the queue, a work set named after the new version (None when empty)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accept_proposals(*, taxonomy: str, ids: list[int], by: str, reason: str = "") -> AcceptReport:
    """Derive NAME@latest+1 from the proposals' version with every accepted change and a mapping for
    every category; the base version is not touched and the proposals are marked accepted."""
    if not by.strip():
        raise ErrorMapError("say who accepts (--by WHO)")
    if not ids:
        raise ErrorMapError("name at least one proposal id")
    name = taxonomy.partition("@")[0].strip()
    rows = list(TaxonomyProposal.objects.select_related("version__taxonomy").filter(pk__in=ids))
    missing = sorted(set(ids) - {r.pk for r in rows})
    if missing:
        raise ErrorMapError(f"no proposal {', '.join(f'#{i}' for i in missing)}")
    for row in rows:
        if row.version.taxonomy.name != name:
            raise ErrorMapError(f"proposal #{row.pk} is about {row.version}, not taxonomy {name!r}")
        if row.status != TaxonomyProposal.Status.OPEN:
            raise ErrorMapError(f"proposal #{row.pk} was already accepted into {row.accepted_in}")
    bases = {row.version for row in rows}
    if len(bases) > 1:
        raise ErrorMapError(f"the proposals are about different versions ({', '.join(sorted(map(str, bases)))}); "
                            "accept those of one version at a time")
    base = bases.pop()
    changes, added = _changes(sorted(rows, key=lambda r: r.pk))
    config = {"taxonomy": str(base), "proposals": sorted(ids), "by": by, "reason": reason}
    with stage_run("accept_proposals", config) as run, transaction.atomic():
        version = derive_version(
            base=base, added=added, changes=changes, origin=TaxonomyVersion.Origin.REFINED,
            note=(f"proposals {', '.join(f'#{i}' for i in sorted(ids))} accepted by {by}"
                  + (f": {reason}" if reason else "")),
            config={"accepted_proposals": sorted(ids), "by": by, "reason": reason})
        TaxonomyProposal.objects.filter(pk__in=ids).update(
            status=TaxonomyProposal.Status.ACCEPTED, accepted_in=version, decided_by=by, reason=reason)
        mapping = version_mapping(base, version)
        queue = queue_relabelling(version)
        relabel = queue.failures.count() if queue else 0
        run.counts = {"accepted": len(ids), "categories": len(mapping), "relabel_items": relabel}
    targets = {t for m in mapping.values() for t in m["targets"]}
    added_paths = sorted(set(version.categories.filter(children__isnull=True).values_list("path", flat=True))
                         - targets)
    rewritten = sorted(r.categories[0] for r in rows if r.kind == TaxonomyProposal.Kind.REWRITE)
    return AcceptReport(str(version), str(base), sorted(ids), mapping, added_paths, rewritten, relabel,
                        queue.name if queue else None)


def relabel_work_set_name(version: TaxonomyVersion) -> str:
    """The name of `version`'s re-labelling queue: a work set, so analyze, prelabel and push_labelstudio take it."""
    return f"relabel-{version}"


def queue_relabelling(version: TaxonomyVersion) -> WorkSet | None:
    """Queue for re-labelling in `version` every item whose labels in the version it was derived from
    name a category split in `version` (which side is unknown until someone labels it again).

    The queue is the work set `relabel-NAME@V`: judge first (`analyze`, then `prelabel --work-set`),
    then people (`push_labelstudio --work-set`). Idempotent: a re-run adds only items not yet queued
    (none, unless labels of the base version arrived since). None when nothing is ambiguous.
    """
    base = version.previous
    if base is None:
        return None
    split = (CategoryMapping.objects.filter(source__version=base, target__version=version,
                                            kind=CategoryMapping.Kind.SPLIT).values("source_id"))
    items = sorted(set(Label.objects.filter(taxonomy_version=base, category_id__in=split)
                       .values_list("prediction_id", flat=True)))
    name = relabel_work_set_name(version)
    if not items and not WorkSet.objects.filter(name=name).exists():
        return None
    with transaction.atomic():
        queue, _ = WorkSet.objects.get_or_create(
            name=name, defaults={"ratio": 1.0, "seed": 0,
                                 "filters": {"relabel_for": str(version), "derived_from": str(base)}})
        WorkSetFailure.objects.bulk_create(
            [WorkSetFailure(work_set=queue, prediction_id=pk) for pk in items], ignore_conflicts=True)
    return queue


def version_mapping(base: TaxonomyVersion, version: TaxonomyVersion) -> dict[str, dict[str, Any]]:
    """base path -> how it carries over to `version` (kind and target paths)."""
    out: dict[str, dict[str, Any]] = {}
    rows = (CategoryMapping.objects.filter(source__version=base)
            .filter(Q(target__version=version) | Q(target__isnull=True))
            .select_related("source", "target").order_by("source__path", "target__path"))
    for m in rows:
        entry = out.setdefault(m.source.path, {"kind": m.kind, "targets": []})
        if m.target is not None:
            entry["targets"].append(m.target.path)
    return out


def _changes(rows: list[TaxonomyProposal]) -> tuple[dict[str, CategoryChange], list[CategorySpec]]:
    """The accepted proposals as derive_version's changes and added categories; conflicts refused."""
    changes: dict[str, CategoryChange] = {}
    added: list[CategorySpec] = []
    touched: dict[str, int] = {}

    def claim(path: str, row: TaxonomyProposal) -> None:
        if path in touched:
            raise ErrorMapError(f"proposals #{touched[path]} and #{row.pk} both change {path!r}; accept one")
        touched[path] = row.pk

    for row in rows:
        kind = row.kind
        if kind == TaxonomyProposal.Kind.ADD:
            added.append(CategorySpec(row.new_name, row.description))
        elif kind == TaxonomyProposal.Kind.MERGE:
            for path in row.categories:
                claim(path, row)
                changes[path] = CategoryChange(CategoryMapping.Kind.MERGED, (row.new_name,))
            added.append(CategorySpec(row.new_name, row.description))
        elif kind == TaxonomyProposal.Kind.SPLIT:
            (path,) = row.categories
            claim(path, row)
            targets = tuple(row.evidence.get("targets") or row.new_name.split(" | "))
            changes[path] = CategoryChange(CategoryMapping.Kind.SPLIT, targets)
            added.extend(CategorySpec(t, f"Split from {path!r}: {row.description}") for t in targets)
        elif kind == TaxonomyProposal.Kind.REWRITE:
            (path,) = row.categories
            claim(path, row)
            added.append(CategorySpec(path, row.description))
        elif kind == TaxonomyProposal.Kind.RETIRE:
            (path,) = row.categories
            claim(path, row)
            changes[path] = CategoryChange(CategoryMapping.Kind.RETIRED, (OTHER,))
    return changes, added

"""Stages 2-4 of ErrorMap on the database: induce a taxonomy version from the judge's analyses,
and label failures into a version (`prelabel`); both write judge labels through the label service.

A run is keyed by a hash of exactly what shapes its result (the analyses in scope, the judge's
configuration, the induction parameters and prompts), stored in the version's config: re-running
with the same inputs reuses that version and its stored assignments, so nothing is duplicated and a
stopped run resumes by writing the labels it had not written yet.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from annotation.core.crossfit import DEFAULT_FOLDS, DEFAULT_SEED, assign_folds, folds_of_queries
from annotation.core.judge import JudgeBackend, JudgeError, stable_hash
from annotation.core.offline_labelling import ClassifierConfig
from annotation.core.prompts import PromptTemplate
from annotation.errors import ErrorMapError
from annotation.models import Analysis, Annotator, Label, PromptVersion, StageRun
from annotation.services.judging import (
    analyses_for_predictions,
    failures_in_scope,
    get_judge_backend,
    gold_text,
    json_completion,
    judge_annotator,
    prediction_text_key,
    record_prompt_version,
    resolve_work_set,
    text_keys,
)
from annotation.services.labels import LabelEntry, LabelSet, replace_label_sets
from annotation.services.runs import progress, stage_run
from taxonomy.core import induction as core
from taxonomy.core.classification import nearest_categories
from taxonomy.core.paths import OTHER
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.refinement import (
    classify_template,
    offline_classifier_config,
    offline_template,
)
from taxonomy.services.versions import (
    CategorySpec,
    category_text,
    create_version,
    leaf_categories,
    resolve_version,
)

LABEL_BATCH = 1000
OFFLINE_INDUCER_VERSION = "offline-tfidf-kmeans-v1"
OFFLINE_CLASSIFIER_VERSION = "offline-nearest-category-v1"

# What the offline methods do, stored as their "prompt" so labels point to an exact, hashed description.
OFFLINE_INDUCER_TEMPLATE = PromptTemplate(
    stage="induce_classify",
    name=OFFLINE_INDUCER_VERSION,
    system="",
    user=(
        "Offline taxonomy induction (no model): each distinct error title plus up to 3 of its summaries "
        "-> TF-IDF (unigrams+bigrams, English and generic error words removed, sublinear tf) -> k-means "
        "(seeded, 4 inits, weighted by title counts) with k in 2..limit chosen by cosine silhouette; "
        "clusters named from their most distinctive terms (mean TF-IDF inside minus outside); rare "
        "clusters folded into Other; recursion into clusters with more than 5 distinct titles."
    ),
)
OFFLINE_CLASSIFIER_TEMPLATE = PromptTemplate(
    stage="prelabel",
    name=OFFLINE_CLASSIFIER_VERSION,
    system="",
    user=(
        "Offline classification (no model): the error title and summary -> TF-IDF -> the leaf category "
        "whose path, name and description are most similar (cosine); a gold-labelled failure at least "
        f"{0.5} similar decides instead; no shared term -> Other when the version has one."
    ),
)


@dataclass(frozen=True)
class InduceReport:
    taxonomy: str
    version: int
    reused: bool
    judge: str
    failures: int
    analysed: int
    unanalysed: int
    distinct_titles: int
    top_level: int
    categories: int
    leaves: int
    labels_created: int
    labels_updated: int
    labels_unchanged: int
    run_id: int
    usage: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Categories the judge proposed that are not in the version: {"parent", "name", "reason"}.
    dropped: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class PrelabelReport:
    taxonomy: str
    version: int
    judge: str
    failures: int
    analysed: int
    unanalysed: int
    kept: int  # already labelled by this judge in this version, left as they were
    via_gold: int
    to_other: int
    labels_created: int
    labels_updated: int
    labels_unchanged: int
    run_id: int
    usage: dict[str, int] = field(default_factory=dict)


def _judge_label(backend: JudgeBackend) -> str:
    return backend.name + (f":{backend.model_name}" if backend.model_name else "")


def _scope(work_set: str | None, backend: JudgeBackend) -> tuple[Any, int, dict[int, Analysis]]:
    ws = resolve_work_set(work_set)
    failures = failures_in_scope(ws)
    analyses = analyses_for_predictions(failures, judge=backend.name, model=backend.model_name)
    return ws, failures.count(), analyses


def _usage(backend: JudgeBackend) -> dict[str, int]:
    usage = getattr(backend, "usage", None)
    return usage.as_dict() if usage is not None and hasattr(usage, "as_dict") else {}


def _close(backend: JudgeBackend, owned: bool) -> None:
    if owned and hasattr(backend, "close"):
        backend.close()


def induce_taxonomy(
    *,
    name: str,
    work_set: str | None = None,
    judge: str | None = None,
    model: str | None = None,
    max_depth: int = 2,
    max_categories: int | None = None,
    rare_freq: float = core.DEFAULT_RARE_FREQ,
    seed: int = 0,
    backend: JudgeBackend | None = None,
    prompts: dict[str, PromptTemplate] | None = None,
) -> InduceReport:
    """A new induced version of taxonomy `name` (or the one these exact inputs made before), and a judge
    label at the leaf for every analysed failure in scope."""
    if max_depth < 1:
        raise ErrorMapError("--max-depth must be at least 1")
    if max_categories is not None and not 1 <= max_categories <= 200:
        raise ErrorMapError("--max-categories must be between 1 and 200")
    if not 0 <= rare_freq < 1:
        raise ErrorMapError("--rare-freq must be in [0, 1)")
    owned = backend is None
    backend = backend or get_judge_backend(judge, model=model)
    try:
        return _induce(name=name, work_set=work_set, backend=backend, max_depth=max_depth,
                       max_categories=max_categories, rare_freq=rare_freq, seed=seed, prompts=prompts)
    finally:
        _close(backend, owned)


def _induce(*, name: str, work_set: str | None, backend: JudgeBackend, max_depth: int, max_categories: int | None,
            rare_freq: float, seed: int, prompts: dict[str, PromptTemplate] | None) -> InduceReport:
    ws, n_failures, analyses = _scope(work_set, backend)
    if not analyses:
        raise ErrorMapError(
            f"no failure in scope has an ok analysis by judge {_judge_label(backend)}: run `analyze` first"
        )
    if backend.name == "offline":
        template = OFFLINE_INDUCER_TEMPLATE
        prompt_hashes = {"induce_classify": template.sha256}
    else:
        prompts = prompts or core.load_induction_prompts()
        template = prompts["induce_classify"]
        prompt_hashes = {stage: t.sha256 for stage, t in sorted(prompts.items())}
    params: dict[str, Any] = {"max_depth": max_depth, "max_categories": max_categories or core.CATEGORY_CAP,
                              "rare_freq": rare_freq, "seed": seed}
    if max_categories is not None:  # the user's limit replaces min(25, ceil(0.1 x errors)): another result
        params["category_limit"] = "fixed"
    input_key = stable_hash(
        "induce", sorted((pid, a.key) for pid, a in analyses.items()), backend.config(), params, prompt_hashes
    )
    config = {
        "input_key": input_key,
        "judge": backend.name,
        "model": backend.model_name,
        "work_set": ws.name if ws else None,
        **params,
        "prompts": prompt_hashes,
    }
    annotator = judge_annotator(backend)
    prompt_version = record_prompt_version(template)
    with stage_run("induce_taxonomy", {"taxonomy": name, **config}) as run:
        version = (
            TaxonomyVersion.objects.filter(taxonomy__name=name, config__input_key=input_key)
            .order_by("-number")
            .first()
        )
        reused = version is not None
        notes: tuple[str, ...] = ()
        dropped: list[dict[str, str]] = []
        if version is None:
            records = [
                core.ErrorRecord(str(pid), a.error_title, a.error_summary)
                for pid, a in sorted(analyses.items())
            ]
            if backend.name == "offline":
                inducer: core.Inducer = core.ClusterInducer()
            else:
                inducer = core.LLMInducer(json_completion(backend), prompts=prompts or core.load_induction_prompts())
            try:
                result = core.build_tree(
                    records, inducer, max_depth=max_depth, max_categories=max_categories,
                    rare_freq=rare_freq, seed=seed,
                )
            except (core.InductionError, JudgeError) as exc:
                raise ErrorMapError(f"induction failed: {exc}") from exc
            notes = result.notes
            dropped = [{"parent": d.parent, "name": d.name, "reason": d.reason} for d in result.dropped]
            version = create_version(
                taxonomy_name=name,
                categories=[CategorySpec(path, description) for path, description in result.categories()],
                origin=TaxonomyVersion.Origin.INDUCED,
                note=f"induced from {len(analyses)} analysed failures by judge {_judge_label(backend)}",
                config={**config, "notes": list(notes), "assignments": result.assignments, "dropped": dropped},
            )
        else:
            dropped = list(version.config.get("dropped", []))
        assignments: dict[str, str] = version.config["assignments"]
        by_path = {c.path: c for c in version.categories.all()}
        missing = sorted({core.normalise_title(a.error_title) for a in analyses.values()} - set(assignments))
        if missing:  # cannot happen for a version made from these inputs; say so loudly if it does
            raise ErrorMapError(f"version {version} has no assignment for {len(missing)} titles, e.g. {missing[0]!r}")

        def label_set(pid: int, analysis: Analysis) -> LabelSet:
            title = core.normalise_title(analysis.error_title)
            leaf = by_path[assignments[title]]
            return _judge_label_set(pid, analysis, version=version, annotator=annotator, leaf=leaf,
                                    confidence=analysis.confidence, prompt_version=prompt_version,
                                    rationale=f"error title {title!r} induced into {leaf.path!r}")

        counts = _write_labels((label_set(pid, a) for pid, a in sorted(analyses.items())), len(analyses),
                               desc="induce: labels", run=run)
        categories = list(by_path.values())
        run.counts = {
            "version": version.number, "reused": reused, "failures": n_failures, "analysed": len(analyses),
            **counts, **_usage(backend),
            "dropped_categories": [f"{d['parent']} / {d['name']}" if d["parent"] else d["name"] for d in dropped],
        }
    return InduceReport(
        taxonomy=name,
        version=version.number,
        reused=reused,
        judge=_judge_label(backend),
        failures=n_failures,
        analysed=len(analyses),
        unanalysed=n_failures - len(analyses),
        distinct_titles=len(assignments),
        top_level=sum(1 for c in categories if c.depth == 1),
        categories=len(categories),
        leaves=len({c.id for c in categories} - {c.parent_id for c in categories}),
        labels_created=counts["created"],
        labels_updated=counts["updated"],
        labels_unchanged=counts["unchanged"],
        run_id=run.id,
        usage=_usage(backend),
        notes=notes,
        dropped=tuple(dropped),
    )


def _judge_label_set(prediction_id: int, analysis: Analysis, *, version: TaxonomyVersion, annotator: Annotator,
                     leaf: Category, confidence: float | None, rationale: str,
                     prompt_version: PromptVersion) -> LabelSet:
    """The judge's one label for a failure: its analysis's title and summary at `leaf`."""
    return LabelSet(
        prediction_id=prediction_id,
        taxonomy_version_id=version.id,
        source=Label.Source.JUDGE,
        annotator_id=annotator.id,
        entries=(LabelEntry(leaf.id, {
            "confidence": confidence,
            "error_title": analysis.error_title,
            "error_summary": analysis.error_summary,
            "rationale": rationale,
            "prompt_version_id": prompt_version.id,
            "analysis_id": analysis.id,
        }),),
    )


def _write_labels(sets: Iterable[LabelSet], total: int, *, desc: str, run: StageRun) -> dict[str, int]:
    """Write label sets in committed batches (a stopped run keeps what it wrote), with a progress bar."""
    counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    batch: list[LabelSet] = []
    bar = progress(range(total), total=total, desc=desc, unit="label")

    def flush() -> None:
        report = replace_label_sets(batch)
        for key in counts:
            counts[key] += getattr(report, key)
        bar.update(len(batch))
        run.counts = dict(counts)
        run.save(update_fields=["counts"])
        batch.clear()

    for label_set in sets:
        batch.append(label_set)
        if len(batch) >= LABEL_BATCH:
            flush()
    if batch:
        flush()
    bar.close()
    return counts


def prelabel_failures(
    *,
    taxonomy: str,
    work_set: str | None = None,
    judge: str | None = None,
    model: str | None = None,
    relabel: bool = False,
    backend: JudgeBackend | None = None,
    prompts: dict[str, PromptTemplate] | None = None,
) -> PrelabelReport:
    """The judge labels every analysed failure in scope with a leaf category of the given version.

    Failures this judge already labelled in the version (by induction or an earlier prelabel) keep
    their label unless `relabel`; so induce + prelabel agree and a re-run changes nothing.
    """
    version = resolve_version(taxonomy)
    owned = backend is None
    backend = backend or get_judge_backend(judge, model=model)
    try:
        return _prelabel(version=version, work_set=work_set, backend=backend, prompts=prompts, relabel=relabel)
    finally:
        _close(backend, owned)


def _prelabel(*, version: TaxonomyVersion, work_set: str | None, backend: JudgeBackend,
              prompts: dict[str, PromptTemplate] | None, relabel: bool) -> PrelabelReport:
    ws, n_failures, analyses = _scope(work_set, backend)
    if not analyses:
        raise ErrorMapError(
            f"no failure in scope has an ok analysis by judge {_judge_label(backend)}: run `analyze` first"
        )
    annotator = judge_annotator(backend)
    already: set[int] = set()
    if not relabel:
        already = set(
            Label.objects.filter(taxonomy_version=version, source=Label.Source.JUDGE, annotator=annotator)
            .values_list("prediction_id", flat=True)
        )
    kept = sum(1 for pid in analyses if pid in already)
    analyses = {pid: a for pid, a in analyses.items() if pid not in already}
    leaves = leaf_categories(version)
    if not leaves:
        raise ErrorMapError(f"taxonomy version {version} has no categories")
    by_id = {c.id: c for c in version.categories.all()}
    leaf_index = {c.id: i for i, c in enumerate(leaves)}
    other = next((i for i, c in enumerate(leaves) if c.name.lower() == OTHER.lower() and c.depth == 1), None)
    items = sorted(analyses.items())
    queries = [f"{a.error_title} {a.error_title} {a.error_summary}" for _, a in items]
    category_texts = [category_text(c, by_id) for c in leaves]
    config = {"taxonomy": str(version), "judge": backend.name, "model": backend.model_name,
              "work_set": ws.name if ws else None}
    with stage_run("prelabel", config) as run:
        # Offline choice first: it is the whole answer offline, and the fallback for unknown LLM names.
        gold = _gold_examples(version, leaf_index, by_id)
        # No item learns from itself: a gold item (or a duplicate of its text) sees only other folds' gold.
        fold_of = assign_folds([g[2] for g in gold], DEFAULT_FOLDS, seed=DEFAULT_SEED)
        item_keys = text_keys([pid for pid, _ in items])
        # The offline classifier as refine_judge last accepted it for this taxonomy (else the default).
        settings = offline_classifier_config(version.taxonomy)
        fallback = other
        if settings.majority_fallback and gold:
            votes = Counter(g[1] for g in gold)
            fallback = min(votes, key=lambda i: (-votes[i], i))
        choices = nearest_categories(
            queries, category_texts, gold_texts=[g[0] for g in gold], gold_categories=[g[1] for g in gold],
            fallback=fallback, gold_folds=[fold_of[g[2]] for g in gold],
            query_folds=folds_of_queries([item_keys[pid] for pid, _ in items], fold_of),
            gold_neighbours=settings.gold_neighbours,
        ) if items else []
        chosen = [(c.index, c.score, c.via) for c in choices]
        if backend.name == "offline":
            template = OFFLINE_CLASSIFIER_TEMPLATE if settings == ClassifierConfig() else offline_template(settings)
        else:
            prompts = prompts or core.load_induction_prompts()
            template = classify_template(version.taxonomy, backend.model_name) or prompts["induce_classify"]
            defs = [core.CategoryDef(c.path, c.description) for c in leaves]
            titles = sorted({core.normalise_title(a.error_title) for _, a in items})
            try:
                names = core.classify_titles(json_completion(backend), template, defs, titles)
            except JudgeError as exc:
                raise ErrorMapError(f"classification failed: {exc}") from exc
            by_name = {c.path: i for i, c in enumerate(leaves)}
            for row, (_, a) in enumerate(items):
                name = names.get(core.normalise_title(a.error_title), OTHER)
                if name in by_name:
                    chosen[row] = (by_name[name], 1.0, "judge")
                elif other is not None:
                    chosen[row] = (other, 0.0, "judge")
                # else: keep the offline nearest category (the version has no Other to fall back to)
        prompt_version = record_prompt_version(template)

        def label_sets() -> Iterable[LabelSet]:
            for (pid, analysis), (index, score, via) in zip(items, chosen):
                leaf = leaves[index]
                confidence = analysis.confidence if via == "judge" else round(score, 4)
                yield _judge_label_set(
                    pid, analysis, version=version, annotator=annotator, leaf=leaf, confidence=confidence,
                    prompt_version=prompt_version,
                    rationale=f"{via}: {leaf.path!r}" + (f" (similarity {score:.2f})" if via != "judge" else ""),
                )

        counts = _write_labels(label_sets(), len(items), desc="prelabel: labels", run=run)
        via_gold = sum(1 for _, _, via in chosen if via == "gold")
        to_other = sum(1 for index, _, _ in chosen if index == other) if other is not None else 0
        run.counts = {"failures": n_failures, "analysed": len(items), "kept": kept, "via_gold": via_gold,
                      "to_other": to_other,
                      **counts, **_usage(backend)}
    return PrelabelReport(
        taxonomy=version.taxonomy.name,
        version=version.number,
        judge=_judge_label(backend),
        failures=n_failures,
        analysed=len(items) + kept,
        unanalysed=n_failures - len(items) - kept,
        kept=kept,
        via_gold=via_gold,
        to_other=to_other,
        labels_created=counts["created"],
        labels_updated=counts["updated"],
        labels_unchanged=counts["unchanged"],
        run_id=run.id,
        usage=_usage(backend),
    )


def _gold_examples(version: TaxonomyVersion, leaf_index: dict[int, int],
                   by_id: dict[int, Category]) -> list[tuple[str, int, str]]:
    """(text, leaf index, text key of the item) of gold labels in this version; inner nodes skipped."""
    rows = (
        Label.objects.filter(taxonomy_version=version, source=Label.Source.GOLD)
        .select_related("analysis", "prediction__example")
        .order_by("id")
    )
    found = []
    for label in rows.iterator(chunk_size=2000):
        if label.category_id not in leaf_index:
            continue
        text = gold_text(label, by_id[label.category_id])
        if text:
            key = prediction_text_key(label.prediction)
            found.append((text, leaf_index[label.category_id], key))
    return found

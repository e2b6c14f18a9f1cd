"""Judge refinement from gold, under a gate: a candidate prompt (OpenAI: few-shot examples and decision
rules from gold; offline: gold neighbours voting and the commonest gold category as fallback) is
compared with the current one on held-out folds and accepted only when its kappa with gold is higher
and the paired bootstrap interval of the difference excludes 0. Accepted ones become the default."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from annotation.core.crossfit import FoldPlan, nested_order
from annotation.core.judge import JudgeBackend, JudgeError
from annotation.core.judge_audit import (
    BOOTSTRAP_REPS,
    agreement_scores,
    kappa_interval,
    paired_bootstrap,
)
from annotation.core.offline_labelling import ClassifierConfig, GoldItem
from annotation.core.prompts import PromptTemplate
from annotation.errors import ErrorMapError
from annotation.models import JudgeRefinement, Prediction, PromptVersion
from annotation.services.gold_learning import GoldSet, fold_plan, load_gold_set, offline_judgements
from annotation.services.judging import (
    analyses_for_predictions,
    get_judge_backend,
    json_completion,
    record_prompt_version,
)
from annotation.services.runs import progress, stage_run
from taxonomy.core import induction as core
from taxonomy.core.paths import OTHER
from taxonomy.models import Taxonomy, TaxonomyVersion
from taxonomy.services.versions import leaf_categories, resolve_version

JUDGES = ("offline", "openai")
EXAMPLES_PER_CATEGORY = 3
MAX_RULES = 8
EXAMPLES_ANCHOR = "Error titles (JSON, id -> title):"


# --- the judge's default for a taxonomy --------------------------------------------------------


def accepted_refinement(taxonomy: Taxonomy, judge: str, model: str = "") -> JudgeRefinement | None:
    """The latest accepted refinement of this judge (and model) for the taxonomy, if any."""
    return (JudgeRefinement.objects.filter(taxonomy=taxonomy, judge=judge, model_name=model or "", accepted=True)
            .order_by("-created_at", "-pk").first())


def offline_classifier_config(taxonomy: Taxonomy) -> ClassifierConfig:
    """The offline judge's classifier settings for the taxonomy: the accepted refinement's, else default."""
    refinement = accepted_refinement(taxonomy, "offline")
    return ClassifierConfig(**refinement.candidate_spec["config"]) if refinement else ClassifierConfig()


def classify_template(taxonomy: Taxonomy, model: str) -> PromptTemplate | None:
    """The accepted refined classification prompt of this OpenAI model for the taxonomy, if any."""
    refinement = accepted_refinement(taxonomy, "openai", model)
    return PromptTemplate(**refinement.candidate_spec["template"]) if refinement else None


def offline_template(config: ClassifierConfig) -> PromptTemplate:
    """The offline classifier's settings as a hashed "prompt", so labels point to exactly what ran."""
    return PromptTemplate(stage="induce_classify", name=config.name, system="", user=config.describe())


# --- building a candidate OpenAI prompt from gold ----------------------------------------------


def with_gold_examples(template: PromptTemplate, examples: dict[str, str], rules: Sequence[str]) -> PromptTemplate:
    """`template` plus gold examples (title -> category) and decision rules, inserted as data."""
    block = ("Examples adjudicated by people (JSON, title -> category); follow them:\n<<<EXAMPLES\n"
             + json.dumps(examples, ensure_ascii=False, indent=1) + "\nEXAMPLES>>>\n")
    if rules:
        block += "Decision rules learned where the judge and people disagreed:\n" + "\n".join(
            f"- {rule}" for rule in rules) + "\n"
    block = block.replace("$", "$$")  # data, never placeholders when the template is rendered
    user = (template.user.replace(EXAMPLES_ANCHOR, block + "\n" + EXAMPLES_ANCHOR)
            if EXAMPLES_ANCHOR in template.user else template.user + "\n\n" + block)
    return PromptTemplate(stage=template.stage, name=f"{template.name}+gold{len(examples)}", system=template.system,
                          user=user)


def gold_examples(titles: Sequence[str], gold: Sequence[str], judged: Sequence[str]) -> tuple[dict[str, str],
                                                                                              list[str]]:
    """Up to EXAMPLES_PER_CATEGORY (title -> gold category) per category, titles the judge got wrong
    first; and rules for the commonest confusions ("titles like T are G, not J")."""
    chosen: dict[str, str] = {}
    per_category: Counter[str] = Counter()
    order = sorted(range(len(titles)), key=lambda i: (gold[i] == judged[i], titles[i]))
    for i in order:
        if titles[i] in chosen or per_category[gold[i]] >= EXAMPLES_PER_CATEGORY:
            continue
        chosen[titles[i]] = gold[i]
        per_category[gold[i]] += 1
    confusions = Counter((gold[i], judged[i]) for i in range(len(titles)) if gold[i] != judged[i])
    rules = []
    for (g, j), _ in confusions.most_common(MAX_RULES):
        example = next(titles[i] for i in range(len(titles)) if gold[i] == g and judged[i] == j)
        rules.append(f"titles like {json.dumps(example, ensure_ascii=False)} are {g!r}, not {j!r}")
    return dict(sorted(chosen.items())), rules


# --- the comparison ------------------------------------------------------------------------------


def refine_judge(*, taxonomy: str, judge: str = "offline", model: str | None = None, folds: int = 5,
                 reps: int = BOOTSTRAP_REPS, backend: JudgeBackend | None = None) -> dict[str, Any]:
    """Build a candidate from gold, compare it with the current judge on held-out folds, store the
    report with the candidate's prompt version, and accept it only if it passes the gate."""
    version, gold, plan, config = _gold_run(taxonomy, judge, model, folds, reps)
    reference = [item.categories for item in gold.items]
    with stage_run("refine_judge", config) as run:
        if judge == "offline":
            current, candidate, spec, model_name = _offline(version, gold, plan)
        else:
            owned = backend is None
            backend = backend or get_judge_backend("openai", model=model)
            try:
                current, candidate, spec, model_name = _openai(version, gold, plan, backend)
            finally:
                if owned and hasattr(backend, "close"):
                    backend.close()
        (current_template, current_labels), (candidate_template, candidate_labels) = current, candidate
        intervals = paired_bootstrap(reference, current_labels, candidate_labels, reps=reps)
        scores = {"current": agreement_scores(reference, current_labels),
                  "candidate": agreement_scores(reference, candidate_labels)}
        current_prompt = record_prompt_version(current_template)
        candidate_prompt = record_prompt_version(candidate_template)
        difference = (None if scores["candidate"]["kappa"] is None or scores["current"]["kappa"] is None
                      else round(scores["candidate"]["kappa"] - scores["current"]["kappa"], 6))
        accepted = bool(difference is not None and difference > 0 and intervals["difference"] is not None
                        and intervals["difference"][0] > 0)
        report = {
            "taxonomy": str(version), "judge": judge + (f":{model_name}" if model_name else ""),
            "current": {"prompt_version": _name(current_prompt), **_scored(scores["current"], intervals["current"])},
            "candidate": {"prompt_version": _name(candidate_prompt),
                          **_scored(scores["candidate"], intervals["candidate"])},
            "difference": {"kappa": difference, "ci95": intervals["difference"]},
            "accepted": accepted, "folds": folds,
            "n_items": len(gold.items), "fold_plan": plan.describe(gold.keys),
            "gate": ("accepted only when the candidate's kappa with gold is higher and the 95% paired "
                     f"bootstrap interval of the difference ({reps} resamples of the items) excludes 0"),
        }
        JudgeRefinement.objects.create(
            taxonomy=version.taxonomy, taxonomy_version=version, judge=judge, model_name=model_name,
            current_prompt=current_prompt, candidate_prompt=candidate_prompt, candidate_spec=spec, report=report,
            accepted=accepted, run=run)
        run.counts = {"items": len(gold.items), "accepted": accepted}
    return report


def _gold_run(taxonomy: str, judge: str, model: str | None, folds: int,
              reps: int) -> tuple[TaxonomyVersion, GoldSet, FoldPlan, dict[str, Any]]:
    """What a run learning from gold starts from: the version, its gold, the folds and the run config
    (clear errors for an unknown judge or taxonomy, no gold yet, too few gold items for K folds)."""
    if judge not in JUDGES:
        raise ErrorMapError(f"unknown judge {judge!r}: choose one of {', '.join(JUDGES)}")
    version = resolve_version(taxonomy)
    gold = load_gold_set(version)
    plan = fold_plan(gold, folds)
    return version, gold, plan, {"taxonomy": str(version), "judge": judge, "model": model or "",
                                 "folds": folds, "reps": reps}


def _scored(scores: dict[str, Any], ci95: list[float] | None) -> dict[str, Any]:
    return {"kappa": scores["kappa"], "ci95": ci95, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def _name(prompt: PromptTemplate | PromptVersion) -> str:
    return f"{prompt.name}@{prompt.sha256[:12]}"


Labels = list[frozenset[str]]
Judged = tuple[PromptTemplate, Labels]  # what judged, and its labels of the gold items
Arms = tuple[Judged, Judged, dict[str, Any], str]  # current, candidate, the candidate's spec, the model


def _offline(version: TaxonomyVersion, gold: GoldSet, plan: FoldPlan) -> Arms:
    """Current and candidate classifier settings, each judging every item from the other folds' gold."""
    current = offline_classifier_config(version.taxonomy)
    candidate = next(c for c in (ClassifierConfig(5, True), ClassifierConfig(9, True), ClassifierConfig(3, False))
                     if c != current)
    results: list[Judged] = []
    for config in progress([current, candidate], desc="refine_judge (offline)", unit="judge"):
        results.append((offline_template(config), offline_judgements(gold, plan, config=config)))
    return results[0], results[1], {"config": {"gold_neighbours": candidate.gold_neighbours,
                                               "majority_fallback": candidate.majority_fallback}}, ""


def _openai(version: TaxonomyVersion, gold: GoldSet, plan: FoldPlan, backend: JudgeBackend) -> Arms:
    """Current and candidate classification prompts on each held-out fold (the candidate built from
    the other folds' gold); the stored candidate is built from all gold the same way."""
    titles, golds, defs, current = _openai_inputs(version, gold, backend)
    classify = _classifier(backend, defs)
    folds_of = [plan.fold_of[key] for key in gold.keys]
    current_labels: list[str] = [""] * len(titles)
    candidate_labels: list[str] = [""] * len(titles)
    bar = progress(None, total=plan.k, desc="refine_judge (openai)", unit="fold")
    try:
        for fold in range(plan.k):
            test = [i for i, f in enumerate(folds_of) if f == fold]
            train = [i for i, f in enumerate(folds_of) if f != fold]
            if not test:
                continue
            judged_train = classify(current, [titles[i] for i in train])
            examples, rules = gold_examples([titles[i] for i in train], [golds[i] for i in train], judged_train)
            fold_candidate = with_gold_examples(current, examples, rules)
            for i, path in zip(test, classify(current, [titles[i] for i in test])):
                current_labels[i] = path
            for i, path in zip(test, classify(fold_candidate, [titles[i] for i in test])):
                candidate_labels[i] = path
            bar.update(1)
    except JudgeError as exc:
        raise ErrorMapError(f"refine_judge stopped: {exc}") from exc
    finally:
        bar.close()
    # The candidate to keep learns from all gold; the current judge's held-out answers pick its examples.
    examples, rules = gold_examples(titles, golds, current_labels)
    candidate = with_gold_examples(current, examples, rules)
    # The examples' titles let judge_audit leave out the items whose own gold the prompt carries.
    spec = {"template": {"stage": candidate.stage, "name": candidate.name, "system": candidate.system,
                         "user": candidate.user}, "examples": examples}
    return (current, _as_sets(current_labels)), (candidate, _as_sets(candidate_labels)), spec, backend.model_name


def _as_sets(paths: list[str]) -> list[frozenset[str]]:
    return [frozenset({p}) for p in paths]


def _openai_inputs(version: TaxonomyVersion, gold: GoldSet, backend: JudgeBackend
                   ) -> tuple[list[str], list[str], list[core.CategoryDef], PromptTemplate]:
    """The judge's title of each gold item, its gold category (one path), the categories and the
    current classification prompt; a clear error when gold items were never analysed."""
    analyses = analyses_for_predictions(Prediction.objects.filter(pk__in=gold.prediction_ids),
                                        judge="openai", model=backend.model_name)
    missing = [pid for pid in gold.prediction_ids if pid not in analyses]
    if missing:
        raise ErrorMapError(f"{len(missing)} of {len(gold.prediction_ids)} gold items have no analysis by judge "
                            f"openai:{backend.model_name}: run `analyze --judge openai` on them first")
    titles = [core.normalise_title(analyses[pid].error_title) for pid in gold.prediction_ids]
    defs = [core.CategoryDef(c.path, c.description) for c in leaf_categories(version)]
    paths = {d.name for d in defs}
    current = classify_template(version.taxonomy,
                                backend.model_name) or core.load_induction_prompts()["induce_classify"]
    return titles, [_one_path(item, paths) for item in gold.items], defs, current


def _one_path(item: GoldItem, paths: set[str]) -> str:
    """An item's gold category as one path for examples (sets of several: the first leaf, by path)."""
    known = sorted(p for p in item.categories if p in paths)
    return known[0] if known else OTHER


def _classifier(backend: JudgeBackend, defs: list[Any]) -> Callable[[PromptTemplate, list[str]], list[str]]:
    """(template, titles) -> a category path per title (unknown names -> Other), through the cache."""
    names = {d.name for d in defs}

    def classify(template: PromptTemplate, titles: list[str]) -> list[str]:
        answers = core.classify_titles(json_completion(backend), template, defs, sorted(set(titles)))
        return [answers.get(t, OTHER) if answers.get(t, OTHER) in names else OTHER for t in titles]

    return classify


# --- the learning curve ----------------------------------------------------------------------------


def curve_sizes(n_train: int) -> list[int]:
    """0, 1, 2, 4, ... doubling, then all: how many gold labels the judge may learn from."""
    sizes, n = [0], 1
    while n < n_train:
        sizes.append(n)
        n *= 2
    return sizes + [n_train] if n_train else sizes


def judge_learning_curve(*, taxonomy: str, judge: str = "offline", model: str | None = None, folds: int = 5,
                         reps: int = BOOTSTRAP_REPS, backend: JudgeBackend | None = None) -> dict[str, Any]:
    """The judge's kappa with gold, cross-fitted, as a function of how many gold labels it may learn
    from: each item is judged from at most n gold items of the other folds (the first n of one fixed
    order, so the sets are nested). Runs the judge itself (offline: no network)."""
    version, gold, plan, config = _gold_run(taxonomy, judge, model, folds, reps)
    reference = [item.categories for item in gold.items]
    sizes = curve_sizes(len(set(gold.keys)))
    points = []
    with stage_run("judge_learning_curve", config) as run:
        owned = judge == "openai" and backend is None
        if judge == "openai":
            backend = backend or get_judge_backend("openai", model=model)
        model_name = backend.model_name if backend is not None else ""
        try:
            for n in progress(sizes, desc=f"learning curve ({judge})", unit="point"):
                judged = (offline_judgements(gold, plan, train_limit=n,
                                             config=offline_classifier_config(version.taxonomy))
                          if judge == "offline" or backend is None
                          else _openai_with_examples(version, gold, plan, backend, n))
                scores = agreement_scores(reference, judged)
                points.append({"n_gold": n, "kappa": scores["kappa"],
                               "ci95": kappa_interval(reference, judged, reps=reps),
                               "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]})
        finally:
            if owned and backend is not None and hasattr(backend, "close"):
                backend.close()
        report = {"taxonomy": str(version), "judge": judge + (f":{model_name}" if judge == "openai" else ""),
                  "folds": folds, "n_items": len(gold.items), "fold_plan": plan.describe(gold.keys),
                  "note": ("each point: every gold item judged by the judge learning from at most n_gold gold "
                           "items, none from its own fold (cross-fitted); kappa with a 95% bootstrap interval"),
                  "points": points}
        run.counts = {"points": len(points), "curve": report}
    return report


def latest_learning_curve(taxonomy: str | None = None) -> dict[str, Any] | None:
    """The most recent stored learning curve (of a taxonomy version, when named): a read for pages."""
    from annotation.models import StageRun

    runs = StageRun.objects.filter(stage="judge_learning_curve", status=StageRun.Status.SUCCEEDED).order_by("-pk")
    for run in runs[:200]:
        curve: dict[str, Any] | None = run.counts.get("curve")
        if curve and (not taxonomy or curve["taxonomy"] == taxonomy or curve["taxonomy"].partition("@")[0] == taxonomy):
            return curve
    return None


def _openai_with_examples(version: TaxonomyVersion, gold: GoldSet, plan: FoldPlan, backend: JudgeBackend,
                          n: int) -> list[frozenset[str]]:
    """The OpenAI judge's classification of every gold item with gold examples from at most the first
    n gold items of the other folds in its prompt."""
    titles, golds, defs, current = _openai_inputs(version, gold, backend)
    allowed = set(nested_order(gold.keys, plan.seed)[:n])
    classify = _classifier(backend, defs)
    folds_of = [plan.fold_of[key] for key in gold.keys]
    labels = [""] * len(titles)
    for fold in range(plan.k):
        test = [i for i, f in enumerate(folds_of) if f == fold]
        train = [i for i, f in enumerate(folds_of) if f != fold and gold.keys[i] in allowed]
        examples, _ = gold_examples([titles[i] for i in train], [golds[i] for i in train],
                                    [golds[i] for i in train])
        template = with_gold_examples(current, examples, []) if examples else current
        for i, path in zip(test, classify(template, [titles[i] for i in test])):
            labels[i] = path
    return [frozenset({p}) for p in labels]

"""What the judge learns from gold, cross-fitted: gold items of a taxonomy version as the offline
judge sees them, and the offline judge's held-out judgements of them (audits, curves, refinement)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from annotation.core.crossfit import DEFAULT_SEED, FoldPlan, NotEnoughGold, nested_order, plan_folds
from annotation.core.offline_labelling import (
    ClassifierConfig,
    GoldItem,
    GoldLabel,
    Leaf,
    label_offline,
)
from annotation.errors import ErrorMapError
from annotation.models import Label
from annotation.selectors import LabelFilter, label_values
from annotation.services.judging import build_requests, gold_words
from taxonomy.core.paths import OTHER
from taxonomy.models import TaxonomyVersion
from taxonomy.services.versions import category_text, leaf_categories

DEFAULT_CLASSIFIER = ClassifierConfig()


@dataclass(frozen=True)
class GoldSet:
    """The gold items of one version (prediction ids beside them) and the leaves a judge may choose."""

    version: TaxonomyVersion
    prediction_ids: list[int]
    items: list[GoldItem]
    leaves: list[Leaf]
    other: int | None

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]


def load_gold_set(version: TaxonomyVersion) -> GoldSet:
    """Every gold-labelled item of `version` (read through the mapping on a derived version) with its
    gold set; a clear error when there is none."""
    rows = label_values(LabelFilter(sources=(Label.Source.GOLD,)), version, "prediction_id", "category_id",
                      "error_title", "error_summary", "rationale", "analysis__error_title",
                      "analysis__error_summary", "prediction__content_key")
    if not rows:
        raise ErrorMapError(f"no gold labels in {version} yet: run `adjudicate` first")
    categories = {c.pk: c for c in version.categories.all()}
    by_item: dict[int, list[GoldLabel]] = defaultdict(list)
    content: dict[int, str] = {}
    for pid, category_id, title, summary, rationale, a_title, a_summary, content_key in sorted(
            rows, key=lambda r: (r[0], categories[r[1]].path)):
        category = categories[category_id]
        if any(label.path == category.path for label in by_item[pid]):
            continue  # two categories merged into one: the set names it once
        by_item[pid].append(GoldLabel(
            path=category.path, title=title or category.name, summary=summary or rationale,
            text=gold_words(title, summary, rationale, category.name, a_title or "", a_summary or ""),
        ))
        content[pid] = content_key
    representative: dict[str, int] = {}
    for pid in sorted(by_item):
        representative.setdefault(content[pid], pid)
    requests = {r.content_key: r for r in build_requests(list(representative), representative, k_correct=1)}
    pids = sorted(by_item)
    items = [GoldItem(requests[content[pid]], tuple(by_item[pid])) for pid in pids]
    leaves, other = version_leaves(version)
    return GoldSet(version, pids, items, leaves, other)


def version_leaves(version: TaxonomyVersion) -> tuple[list[Leaf], int | None]:
    """The categories the judge may choose, as the offline classifier sees them, and Other's index."""
    categories = leaf_categories(version)
    by_id = {c.id: c for c in version.categories.all()}
    leaves = [Leaf(c.path, category_text(c, by_id)) for c in categories]
    other = next((i for i, c in enumerate(categories) if c.name.lower() == OTHER.lower() and c.depth == 1), None)
    return leaves, other


def fold_plan(gold: GoldSet, folds: int, *, seed: int = DEFAULT_SEED) -> FoldPlan:
    """K folds over the gold items (a clear error when there are too few for K)."""
    try:
        return plan_folds(gold.keys, folds, seed=seed)
    except NotEnoughGold as exc:
        raise ErrorMapError(f"{gold.version}: {exc}") from None


def offline_judgements(gold: GoldSet, plan: FoldPlan, *, train_limit: int | None = None,
                       indices: list[int] | None = None,
                       config: ClassifierConfig = DEFAULT_CLASSIFIER) -> list[frozenset[str]]:
    """The offline judge's category set for gold items (all, or those at `indices`), each judged only
    by gold of the other folds; with `train_limit`, by at most the first n gold items (nested order)."""
    train = gold.items
    if train_limit is not None:
        allowed = set(nested_order(gold.keys, plan.seed)[:train_limit])
        train = [item for item in gold.items if item.key in allowed]
    test = gold.items if indices is None else [gold.items[i] for i in indices]
    chosen = label_offline([t.request for t in test], train, gold.leaves, other=gold.other, fold_of=plan.fold_of,
                           config=config)
    return [frozenset({path}) for path, _ in chosen]

"""The offline judge end to end on items: rules and gold retrieval (stage 1), then the nearest category
(prelabel's offline classifier), with the same cross-fitting as the stored labels. Plain Python."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from annotation.core.crossfit import (
    DEFAULT_FOLDS,
    DEFAULT_SEED,
    assign_folds,
    folds_of_queries,
    text_key,
)
from annotation.core.judge import AnalysisRequest
from annotation.core.offline_judge import GoldExample, OfflineJudge
from taxonomy.core.classification import nearest_categories
from taxonomy.core.paths import PATH_SEPARATOR


@dataclass(frozen=True)
class GoldLabel:
    """One category of an item's gold set, with what the label says in words."""

    path: str
    title: str  # the label's error title, else the category's name
    summary: str
    text: str  # title twice and summary: what the classifier compares titles with


@dataclass(frozen=True)
class GoldItem:
    """A gold-labelled item: what the judge sees, and its gold categories."""

    request: AnalysisRequest
    labels: tuple[GoldLabel, ...]

    @property
    def key(self) -> str:
        return text_key(self.request.input_text, self.request.output_text)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(label.path for label in self.labels)


@dataclass(frozen=True)
class Leaf:
    """A category the judge may choose: its path and the text it is recognised by."""

    path: str
    text: str


@dataclass(frozen=True)
class ClassifierConfig:
    """How the offline judge turns a title into a category; refinement proposes other settings."""

    gold_neighbours: int = 1  # gold examples that vote (1: the nearest decides)
    majority_fallback: bool = False  # nothing matches: the commonest gold category instead of Other

    @property
    def name(self) -> str:
        parts = [OFFLINE_CLASSIFIER]
        if self.gold_neighbours > 1:
            parts.append(f"knn{self.gold_neighbours}")
        if self.majority_fallback:
            parts.append("majority")
        return "+".join(parts)

    def describe(self) -> str:
        return (f"{self.name}: nearest category by TF-IDF of title and summary; gold examples at least "
                f"0.5 similar decide ({self.gold_neighbours} nearest vote, weighted by similarity); "
                + ("with no term in common, the commonest gold category" if self.majority_fallback
                   else "with no term in common, Other"))


OFFLINE_CLASSIFIER = "offline-nearest-category-v1"


def majority_leaf(train: Sequence[GoldItem], leaves: Sequence[Leaf]) -> int | None:
    """Index of the leaf most gold labels name (ties: the first path), None without gold."""
    index = {leaf.path: i for i, leaf in enumerate(leaves)}
    counts = Counter(index[label.path] for g in train for label in g.labels if label.path in index)
    return min(counts, key=lambda i: (-counts[i], i)) if counts else None


def label_offline(test: Sequence[AnalysisRequest], train: Sequence[GoldItem], leaves: Sequence[Leaf], *,
                  other: int | None = None, fold_of: Mapping[str, int] | None = None,
                  config: ClassifierConfig = ClassifierConfig()) -> list[tuple[str, float]]:
    """(category path, confidence) the offline judge gives each test request, learning from `train`.

    Cross-fitted as in `analyze` + `prelabel`: a test request whose text has a fold (in `fold_of`,
    default: the train items dealt into DEFAULT_FOLDS) sees only the gold of the other folds.
    """
    if not test:
        return []
    if fold_of is None:
        fold_of = assign_folds([g.key for g in train], DEFAULT_FOLDS, seed=DEFAULT_SEED)
    fold_of = dict(fold_of)
    examples = [GoldExample(g.request.input_text, g.request.output_text, g.request.reference,
                            category=label.path.split(PATH_SEPARATOR)[-1], error_title=label.title,
                            error_summary=label.summary)
                for g in train for label in g.labels]
    results = OfflineJudge(gold=examples, fold_of=fold_of).analyze(list(test))
    queries = [f"{r.error_title} {r.error_title} {r.error_summary}" for r in results]
    index = {leaf.path: i for i, leaf in enumerate(leaves)}
    gold = [(label.text, index[label.path], g.key) for g in train for label in g.labels if label.path in index]
    fallback = other
    if config.majority_fallback:
        fallback = majority_leaf(train, leaves) if train else other
    choices = nearest_categories(
        queries, [leaf.text for leaf in leaves], gold_texts=[t for t, _, _ in gold],
        gold_categories=[c for _, c, _ in gold], fallback=fallback, gold_neighbours=config.gold_neighbours,
        gold_folds=[fold_of.get(key, -1) for _, _, key in gold],
        query_folds=folds_of_queries([text_key(r.input_text, r.output_text) for r in test], fold_of),
    )
    return [(leaves[c.index].path, round(c.score, 4)) for c in choices]

"""Cross-fitting: gold items split into K folds so that no item is judged by what was learned from it.

Items are grouped by their text (input + output, whitespace and case folded), so an item and every
duplicate of its text always fall in the same fold: judging fold f uses only gold from the other folds.
Plain Python, no Django.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_FOLDS = 5
DEFAULT_SEED = 0
# A held-out fold needs a few items for its judgements to mean anything; K folds need K times that.
MIN_ITEMS_PER_FOLD = 2
GROUPING = "identical input and output text (whitespace and case folded) share a fold"



class NotEnoughGold(ValueError):
    """Fewer distinct gold items than K folds need."""


def text_key(input_text: str, output_text: str) -> str:
    """One key for an item's text: duplicates (up to whitespace and case) share it."""
    folded = "\x1f".join(" ".join(t.split()).casefold() for t in (input_text, output_text))
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def required_items(k: int) -> int:
    """How many distinct gold items K-fold cross-fitting needs."""
    return MIN_ITEMS_PER_FOLD * k


def check_enough(n_items: int, k: int) -> None:
    """Raise NotEnoughGold saying how many are needed when `n_items` cannot fill K folds."""
    if k < 2:
        raise NotEnoughGold(f"--folds must be at least 2, got {k}")
    need = required_items(k)
    if n_items < need:
        raise NotEnoughGold(
            f"too few gold labels for {k} folds: {n_items} distinct gold item(s), at least {need} needed "
            f"({MIN_ITEMS_PER_FOLD} per fold); adjudicate more items or use fewer --folds")


def assign_folds(keys: Sequence[str], k: int, *, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """key -> fold in 0..k-1: keys ordered by a seeded hash, dealt round-robin (folds differ by <= 1).

    Depends only on the set of keys, the seed and K, so every stage that cross-fits the same gold
    assigns the same folds. With fewer keys than folds each key is its own fold (leave one out).
    """
    distinct = sorted(set(keys), key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    return {key: i % k for i, key in enumerate(distinct)} if k > 0 else {key: i for i, key in enumerate(distinct)}


@dataclass(frozen=True)
class FoldPlan:
    """Which fold each item is in, and how large each fold is: what a report says it used."""

    k: int
    seed: int
    fold_of: dict[str, int]

    def sizes(self, keys: Sequence[str]) -> list[int]:
        """How many of `keys` (items, duplicates counted) fall in each fold."""
        counts = [0] * self.k
        for key in keys:
            counts[self.fold_of[key]] += 1
        return counts

    def describe(self, keys: Sequence[str]) -> dict:
        """What a report says it used: K, seed, grouping, items and distinct texts per fold."""
        return {"folds": self.k, "seed": self.seed, "grouping": GROUPING, "items_per_fold": self.sizes(keys),
                "texts_per_fold": self.sizes(sorted(set(keys)))}


def plan_folds(keys: Sequence[str], k: int, *, seed: int = DEFAULT_SEED) -> FoldPlan:
    """Check there are enough distinct keys for K folds, then assign them."""
    check_enough(len(set(keys)), k)
    return FoldPlan(k, seed, assign_folds(keys, k, seed=seed))


def nested_order(keys: Sequence[str], seed: int = DEFAULT_SEED) -> list[str]:
    """Distinct keys in a fixed seeded order: the first n are what "n gold labels" learn from, so the
    training sets of a learning curve are nested."""
    return sorted(set(keys), key=lambda key: hashlib.sha256(f"train:{seed}:{key}".encode()).hexdigest())


def folds_of_queries(query_keys: Sequence[Hashable], fold_of: Mapping) -> list[int | None]:
    """Each query's fold when its text is among the gold, else None (it may learn from all gold)."""
    return [fold_of.get(key) for key in query_keys]

"""Which items people should label next: where one more gold label teaches the most about the judge.

Per category c (the judge's categories cut to a depth), from the items that already have gold:
- n_c: gold items that inform c (c in the judge's set or in gold), the sample behind c's estimates;
- kappa_c: Cohen's kappa of "judge says c" vs "gold says c" over all gold items (one vs rest);
- width_c: width of the Wilson 95 % interval of c's share among the gold items.
A category's need is w_c = max(1 - max(kappa_c, 0), min(1, 2 width_c)), and w_c = 1 while n_c is
under `min_gold` (kappa on a handful of items says nothing). One more gold item in c narrows its
intervals by about 1/sqrt(n_c + 1) - 1/sqrt(n_c + 2); an item's value is the largest w_c times that
gain (scaled so the first gold item of a category gains 1) over the judge's categories on it, times
(1 + d + l): d = 1 when several judge runs or judges disagree on it, l = (t - confidence) / t when
the judge's confidence is under t. The doubt multiplies rather than adds, so doubtful items of a
category come first without starving the other categories: their value falls with their category's
gain too. Picks are greedy: after each pick its categories count one more planned gold item, so the
next picks spread over categories as their gains fall (lazy greedy; values only fall).

Overlap: the unanimous auto-gold rule needs two people, so 2; a disputed item (judges disagree or
low confidence) gets 3 so that two of three can settle it. Plain Python; no Django.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from annotation.core.agreement import cohen_kappa
from taxonomy.core.signatures import wilson_interval

PATH_SEPARATOR = " / "


@dataclass(frozen=True)
class PlanSettings:
    depth: int = 1
    min_gold: int = 10
    low_confidence: float = 0.5
    overlap: int = 2
    disputed_overlap: int = 3


@dataclass(frozen=True)
class Candidate:
    """An item people could label: the judge's set from each judge run or judge, and its confidence."""

    item: int
    judge_sets: tuple[frozenset[str], ...]
    confidence: float | None = None


@dataclass(frozen=True)
class CategoryNeed:
    category: str
    n_gold: int
    kappa: float | None
    gold_share_width: float
    need: float
    why: str


@dataclass(frozen=True)
class Pick:
    item: int
    overlap: int
    score: float
    categories: tuple[str, ...]
    reasons: tuple[str, ...]


def cut(path: str, depth: int) -> str:
    return PATH_SEPARATOR.join(path.split(PATH_SEPARATOR)[:depth])


def _cut_set(values: frozenset[str], depth: int) -> frozenset[str]:
    return frozenset(cut(v, depth) for v in values)


def wilson_width(k: int, n: int) -> float:
    """Width of the Wilson 95 % interval of k of n, as the signatures compute it (1 when n is 0)."""
    if n <= 0:
        return 1.0
    low, high = wilson_interval(k, n)
    return high - low


def binary_kappa(judge: Sequence[bool], gold: Sequence[bool]) -> float | None:
    """Cohen's kappa of two yes/no raters (None when undefined: no variation)."""
    return cohen_kappa(list(judge), list(gold)).value


def category_needs(gold_pairs: Sequence[tuple[frozenset[str], frozenset[str]]], categories: Sequence[str],
                   settings: PlanSettings = PlanSettings()) -> dict[str, CategoryNeed]:
    """Each category's need for gold from the (judge set, gold set) pairs of the gold items."""
    pairs = [(_cut_set(j, settings.depth), _cut_set(g, settings.depth)) for j, g in gold_pairs]
    needs = {}
    for category in sorted(set(categories) | {c for j, g in pairs for c in j | g}):
        judge = [category in j for j, _ in pairs]
        gold = [category in g for _, g in pairs]
        n_gold = sum(1 for a, b in zip(judge, gold) if a or b)
        kappa = binary_kappa(judge, gold)
        width = wilson_width(sum(gold), len(pairs))
        if n_gold < settings.min_gold:
            need, why = 1.0, f"only {n_gold} gold item(s) inform '{category}' (fewer than {settings.min_gold})"
        else:
            unreliable = 1 - max(kappa, 0.0) if kappa is not None else 1.0
            wide = min(1.0, 2 * width)
            if unreliable >= wide:
                kappa_text = "undefined" if kappa is None else f"{kappa:.2f}"
                need, why = unreliable, (f"judge-vs-gold kappa for '{category}' is {kappa_text} "
                                         f"over {len(pairs)} gold items")
            else:
                need, why = wide, (f"gold-only share of '{category}' has a 95 % interval {width:.2f} wide "
                                   f"({sum(gold)} of {len(pairs)} gold items)")
        needs[category] = CategoryNeed(category, n_gold, kappa, width, need, why)
    return needs


def _gain(n: int) -> float:
    """Narrowing of a 1/sqrt(n + 1) interval by one more item, scaled so the first item gains 1."""
    return (1 / math.sqrt(n + 1) - 1 / math.sqrt(n + 2)) / (1 - 1 / math.sqrt(2))


def plan(candidates: Sequence[Candidate], gold_pairs: Sequence[tuple[frozenset[str], frozenset[str]]],
         budget: int, settings: PlanSettings = PlanSettings()) -> tuple[list[Pick], dict[str, CategoryNeed]]:
    """The next `budget` items for people, most informative first, each with its overlap and reasons."""
    categories = {c for cand in candidates for s in cand.judge_sets for c in _cut_set(s, settings.depth)}
    needs = category_needs(gold_pairs, sorted(categories), settings)
    planned = {c: need.n_gold for c, need in needs.items()}

    def value(candidate: Candidate) -> tuple[float, tuple[str, ...], tuple[str, ...], bool]:
        cats = sorted({c for s in candidate.judge_sets for c in _cut_set(s, settings.depth)})
        reasons: list[str] = []
        best = max(cats, key=lambda c: (needs[c].need * _gain(planned[c]), c), default=None)
        base = needs[best].need * _gain(planned[best]) if best is not None else 0.0
        if best is not None:
            reasons.append(needs[best].why)
        doubt = 1.0
        disputed = False
        distinct = {_cut_set(s, settings.depth) for s in candidate.judge_sets}
        if len(distinct) > 1:
            doubt += 1.0
            disputed = True
            shown = " | ".join(sorted(", ".join(sorted(s)) for s in distinct))
            reasons.append(f"{len(candidate.judge_sets)} judge runs/judges disagree: {shown}")
        if candidate.confidence is not None and candidate.confidence < settings.low_confidence:
            doubt += (settings.low_confidence - candidate.confidence) / settings.low_confidence
            disputed = True
            reasons.append(f"judge confidence {candidate.confidence:.2f} (under {settings.low_confidence:.2f})")
        return base * doubt, tuple(cats), tuple(reasons), disputed

    heap = [(-value(c)[0], c.item, i) for i, c in enumerate(candidates)]
    heapq.heapify(heap)
    picks: list[Pick] = []
    while heap and len(picks) < budget:
        _, item, index = heapq.heappop(heap)
        score, cats, reasons, disputed = value(candidates[index])
        if heap and (-heap[0][0], -heap[0][1]) > (score, -item):
            heapq.heappush(heap, (-score, item, index))  # its gain fell since it was scored
            continue
        for c in cats:
            planned[c] += 1
        picks.append(Pick(item, settings.disputed_overlap if disputed else settings.overlap, score, cats, reasons))
    return picks, needs

"""Offline classification into an existing taxonomy: nearest category by TF-IDF similarity of the
error's title and summary to each category's name and description, plus retrieval from gold labels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A gold neighbour at least this similar decides the category (it is more specific than a description).
GOLD_MIN_SIMILARITY = 0.5


@dataclass(frozen=True)
class Choice:
    index: int  # into the category list
    score: float  # cosine similarity in [0, 1]
    via: str  # "category" or "gold"


def nearest_categories(
    queries: Sequence[str],
    category_texts: Sequence[str],
    *,
    gold_texts: Sequence[str] = (),
    gold_categories: Sequence[int] = (),
    gold_min_similarity: float = GOLD_MIN_SIMILARITY,
    fallback: int | None = None,
    gold_folds: Sequence[int] = (),
    query_folds: Sequence[int | None] = (),
    gold_neighbours: int = 1,
) -> list[Choice]:
    """For each query, the category it is most similar to; a close enough gold example wins.

    Cross-fitting: with `gold_folds` and `query_folds`, a query in fold f never sees gold of fold f
    (its own label and its duplicates); a query whose fold is None sees all gold.
    With `gold_neighbours` k > 1, the k most similar gold examples (at least `gold_min_similarity`)
    vote, weighted by similarity, instead of the single nearest deciding.

    Ties go to the lower index, so the result depends only on the inputs' order. A query that shares
    no term with any category gets `fallback` (e.g. the index of `Other`) when given, else index 0.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    if not category_texts:
        raise ValueError("no categories to classify into")
    if len(gold_texts) != len(gold_categories):
        raise ValueError("gold_texts and gold_categories differ in length")
    corpus = list(category_texts) + list(gold_texts) + list(queries)
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, ngram_range=(1, 2),
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        vectorizer.fit(corpus)
    except ValueError:  # no usable term anywhere
        default = 0 if fallback is None else fallback
        return [Choice(default, 0.0, "category") for _ in queries]
    q = vectorizer.transform(list(queries))
    to_categories = cosine_similarity(q, vectorizer.transform(list(category_texts)))
    to_gold = cosine_similarity(q, vectorizer.transform(list(gold_texts))) if gold_texts else None
    if to_gold is not None and len(query_folds):
        folds = np.asarray(gold_folds)
        for row, fold in enumerate(query_folds):
            if fold is not None:
                to_gold[row, folds == fold] = -1.0
    choices: list[Choice] = []
    for row in range(len(queries)):
        if to_gold is not None:
            g = int(np.argmax(to_gold[row]))
            if to_gold[row, g] >= gold_min_similarity:
                if gold_neighbours > 1:
                    g = _vote(to_gold[row], gold_categories, gold_neighbours, gold_min_similarity, g)
                choices.append(Choice(int(gold_categories[g]), float(to_gold[row, g]), "gold"))
                continue
        c = int(np.argmax(to_categories[row]))
        score = float(to_categories[row, c])
        if score <= 0 and fallback is not None:
            c = fallback
        choices.append(Choice(c, score, "category"))
    return choices


def _vote(similarities: np.ndarray, categories: Sequence[int], k: int, threshold: float, nearest: int) -> int:
    """The gold example standing for the category with the most similarity among the k nearest."""
    top = [int(j) for j in np.argsort(-similarities, kind="stable")[:k] if similarities[j] >= threshold]
    weight: dict[int, float] = {}
    for j in top:
        weight[int(categories[j])] = weight.get(int(categories[j]), 0.0) + float(similarities[j])
    best = max(weight, key=lambda c: (weight[c], c == int(categories[nearest])))
    return next(j for j in top if int(categories[j]) == best)

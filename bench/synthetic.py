"""Synthetic rating tables shared by the agreement benchmarks (statistics alone, and the page)."""
from __future__ import annotations

import numpy as np

from annotation.core.agreement import RatingTable


def synthetic_table(n_items: int, n_annotators: int, n_categories: int, *, sets: bool,
                    seed: int = 0) -> RatingTable:
    """Annotators copy a latent true category with probability 0.7, else pick at random.

    Categories form a two-level tree (4 parents) so the per-depth figures have work to do; with
    `sets`, a fifth of the ratings carry a second category.
    """
    rng = np.random.default_rng(seed)
    names = [f"Parent {i % 4} / Child {i:02d}" for i in range(n_categories)]
    truth = rng.integers(0, n_categories, n_items)
    copy = rng.random((n_items, n_annotators)) < 0.7
    codes = np.where(copy, truth[:, None], rng.integers(0, n_categories, (n_items, n_annotators)))
    extra = rng.integers(0, n_categories, (n_items, n_annotators))
    add = (rng.random((n_items, n_annotators)) < 0.2) if sets else np.zeros_like(copy)
    singles = [frozenset([n]) for n in names]
    cells = [[frozenset([names[c], names[e]]) if a else singles[c] for c, e, a in zip(row, xrow, arow)]
             for row, xrow, arow in zip(codes.tolist(), extra.tolist(), add.tolist())]
    return RatingTable(list(range(n_items)), [f"annotator {j}" for j in range(n_annotators)], cells)

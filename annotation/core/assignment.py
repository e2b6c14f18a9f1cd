"""Which tasks of a mixed Label Studio project show the judge's pre-label: a seeded random draw of an
exact share, the same for the same items, share and seed (so a resumed push draws nothing anew)."""
from __future__ import annotations

import random
from collections.abc import Iterable


def draw_assisted(item_ids: Iterable[int], *, share: float, seed: int) -> set[int]:
    """round(share x n) of the items, drawn uniformly without replacement by `seed` from the sorted ids."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the assisted share must be between 0 and 1, not {share}")
    ordered = sorted(set(item_ids))
    count = round(share * len(ordered))
    return set(random.Random(seed).sample(ordered, count))

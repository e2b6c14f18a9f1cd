"""Stratified, seed-reproducible sampling of failures per (model, dataset)."""
from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)  # a stratum member: an example id


def sample_size(n: int, ratio: float) -> int:
    """How many of `n` failures a stratum keeps: ceil(ratio x n), at least one when there are any."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if n == 0:
        return 0
    return min(n, max(1, math.ceil(ratio * n - 1e-9)))


def stratified_sample(
    strata: Mapping[tuple[str, str], Sequence[T]], *, ratio: float, seed: int
) -> dict[tuple[str, str], list[T]]:
    """Sample each stratum independently with a generator seeded by (seed, stratum).

    Keys are sorted first, so the result depends only on the keys, the ratio and the seed,
    never on database order; adding a new stratum does not change the others' samples.
    """
    sampled: dict[tuple[str, str], list[T]] = {}
    for stratum in sorted(strata):
        keys = sorted(strata[stratum], key=str)
        rng = random.Random(f"{seed}|{stratum[0]}|{stratum[1]}")
        chosen = rng.sample(keys, sample_size(len(keys), ratio))
        sampled[stratum] = sorted(chosen, key=str)
    return sampled

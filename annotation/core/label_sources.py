"""Where a label comes from: the judge ("annotator zero"), a human annotator, or adjudicated gold."""
from __future__ import annotations

from enum import StrEnum


class LabelSource(StrEnum):
    """The sources of the one label table; `Label.Source` is the same three values as Django choices."""

    JUDGE = "judge"
    HUMAN = "human"
    GOLD = "gold"

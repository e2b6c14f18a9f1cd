"""The auto-gold rule: when do annotators agree enough for an item to become gold without a person.

Plain Python, no Django. Values are sets of category paths (one annotator's labels on one item).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class AutoGoldRule:
    """Gold when at least `min_share` of at least `min_annotators` gave the identical set."""

    min_share: Fraction = Fraction(1)
    min_annotators: int = 2
    block_on_proposals: bool = True  # someone proposing a new category sends the item to a person

    def describe(self) -> str:
        """The rule in words, stored with every decision it makes."""
        share = "all annotators" if self.min_share == 1 else f">= {self.min_share} of annotators"
        proposals = ", nobody proposing a new category" if self.block_on_proposals else ""
        return f"{share} give the same categories (at least {self.min_annotators} annotators{proposals})"


RULES = {
    "unanimous": AutoGoldRule(Fraction(1), 2, True),
    # Two annotators (the demo's default overlap) settle only when both agree: 2/3 of 2 is both.
    "two-thirds": AutoGoldRule(Fraction(2, 3), 2, True),
}
UNANIMOUS = "unanimous"  # RuleOutcome.settled_by: every annotator gave the same categories
SHARE = "share"  # enough, but not all, annotators gave the same categories

# How to go on with an item the rule cannot settle (the queue and the command say it).
HOW_TO_RESOLVE = ("a person decides: `adjudicate --resolve ITEM --category PATH --by NAME --reason TEXT`, "
                  "or in Label Studio after `push_adjudication`")
HOW_TO_GET_LABELS = ("get more annotators' labels (push_labelstudio --overlap N, then sync_labelstudio), lower "
                     "--min-annotators, or let a person decide")


@dataclass(frozen=True)
class RuleOutcome:
    """Gold categories when the rule settles the item, else None and why not."""

    gold: frozenset[str] | None
    why: str
    settled_by: str = ""  # UNANIMOUS or SHARE when settled


def apply_rule(values: Sequence[frozenset[str]], rule: AutoGoldRule, *,
               proposals: Sequence[str] = ()) -> RuleOutcome:
    """Decide one item from its annotators' sets (and any proposed new categories)."""
    if len(values) < rule.min_annotators:
        return RuleOutcome(None, f"only {len(values)} annotator(s); the rule needs {rule.min_annotators}: "
                                 f"{HOW_TO_GET_LABELS}")
    if rule.block_on_proposals and proposals:
        return RuleOutcome(None, "new category proposed: " + "; ".join(sorted(set(proposals)))
                           + f"; {HOW_TO_RESOLVE} (a new category goes through a taxonomy version)")
    value, count = Counter(values).most_common(1)[0]
    if count == len(values):
        return RuleOutcome(value, f"{count} of {len(values)} annotators agree (unanimous)", UNANIMOUS)
    if Fraction(count, len(values)) >= rule.min_share:
        return RuleOutcome(value, f"{count} of {len(values)} annotators agree (>= {rule.min_share})", SHARE)
    return RuleOutcome(None, f"disagreement: at most {count} of {len(values)} annotators give the same "
                             f"categories; {HOW_TO_RESOLVE}")

"""Verdicts that say a flagged failure is not a model error: offered beside the taxonomy's categories
to annotators (and the judge), stored as top-level categories of a version, and counted apart from
error categories (a false-failure rate), never as an error category."""
from __future__ import annotations

NOT_AN_ERROR = "Not an error"  # the model's answer was right; the failure rule or reference was wrong
BROKEN_ITEM = "Broken item or bad reference"  # the test item itself is broken: wrong reference, ambiguous
NON_ERROR_VERDICTS: tuple[str, ...] = (NOT_AN_ERROR, BROKEN_ITEM)
VERDICT_DESCRIPTIONS = {
    NOT_AN_ERROR: "The model's answer is correct (or acceptable); it was flagged as a failure by mistake.",
    BROKEN_ITEM: "The test item itself is broken: a wrong or missing reference, or an ambiguous question.",
}


def is_non_error_verdict(path: str) -> bool:
    """True for a category path that is a verdict rather than an error category."""
    return path in NON_ERROR_VERDICTS

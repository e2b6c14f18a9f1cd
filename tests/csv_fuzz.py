"""What the fast-path tests share: random CSV files with one defect at a random row, and the outcome of
a reader (its rows or its error). Their `small_blocks` fixture is in tests/unit/conftest.py."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from annotation.errors import InputError

# Defects every CSV fuzz test adds to its own (those that change a field's value).
FILE_DEFECTS = ["extra field", "invalid UTF-8", "lone carriage return"]


def outcome(read: Callable[..., list[tuple]], *args: Any) -> list[tuple] | str:
    """The rows, or the error message: two readers must agree on one or the other."""
    try:
        return read(*args)
    except InputError as exc:
        return f"InputError: {exc}"


def quoted_text(rnd: random.Random, pieces: list[str], longest: int) -> str:
    """A valid CSV field built of `pieces`, quoted when it must be (and often when it need not)."""
    text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, longest)))
    if any(c in text for c in ',"\n\r') or text.startswith(" ") or rnd.random() < 0.3:
        return '"' + text.replace('"', '""') + '"'
    return text


def random_csv(rnd: random.Random, header: str, rows: int, fields: Callable[[int], dict[str, str]],
               value_defects: dict[str, tuple[str, str] | None], defect: str) -> bytes:
    """`rows` rows of `fields(i)` under `header`, line endings mixed (blank lines too), with `defect` at
    one random row: a field's value from `value_defects`, or one of FILE_DEFECTS."""
    at = rnd.randrange(rows)
    lines = [header]
    for i in range(rows):
        values = fields(i)
        if i == at and value_defects.get(defect):
            column, value = value_defects[defect]  # type: ignore[misc]
            values[column] = value
        line = ",".join(values.values())
        if i == at and defect == "extra field":
            line += ",extra"
        ending = "\r" if i == at and defect == "lone carriage return" else rnd.choice(["\n", "\n", "\r\n", "\n\n"])
        lines.append(line + ending)
    data = "".join(lines).encode("utf-8")
    if defect == "invalid UTF-8":
        cut = rnd.randrange(len(header) + 1, len(data))
        data = data[:cut] + b"\xff" + data[cut:]
    return data

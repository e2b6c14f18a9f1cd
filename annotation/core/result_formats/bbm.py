"""BIG-Bench-Mistake: one JSONL file per task, each line a PaLM 2 chain of thought scored against its target."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from annotation.core.result_formats.io import DEFAULT_LIMITS, InputLimits, ResultRow, json_lines
from annotation.core.result_formats.table import checked_row
from annotation.errors import InputError

BBM_MODEL = "PaLM 2"


def normalise_answer(text: str) -> str:
    """Collapse whitespace: Dyck answers differ only in spacing from their targets."""
    return " ".join(text.split())


def read_big_bench_mistake(
    path: Path, dataset: str | None, limits: InputLimits = DEFAULT_LIMITS
) -> Iterator[ResultRow]:
    """One row per line: the steps and answer as the output, score 1 when the answer matches the target."""
    task = path.name.split(".")[0]
    dataset = dataset or f"bbm_{task}"
    for line_number, record in json_lines(path, limits):
        missing = [k for k in ("input", "steps", "answer", "target") if k not in record]
        if missing:
            raise InputError(str(path), line_number, f"missing field(s) {', '.join(missing)}")
        steps = record["steps"]
        if not isinstance(steps, list):
            raise InputError(str(path), line_number, "'steps' must be a list of strings")
        answer = "" if record["answer"] is None else str(record["answer"])
        target = str(record["target"])
        output = "\n".join(str(s) for s in steps) + f"\nAnswer: {answer}"
        score = 1.0 if normalise_answer(answer) == normalise_answer(target) else 0.0
        yield checked_row(
            path, line_number, dataset, f"{task}-{line_number:05d}", BBM_MODEL, str(record["input"]), output,
            score, target,
        )

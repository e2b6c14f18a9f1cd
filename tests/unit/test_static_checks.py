"""ruff (line length enforced) and mypy (django-stubs, DRF stubs; strict for core/) run with the suite.

Everything is held to zero findings except two rooms still being cleaned on other branches, the Label
Studio package (mypy) and the benchmarks (ruff): their older findings, recorded in
tests/data/*-baseline.txt, are tolerated and may only shrink; a finding anywhere else fails, and so does
a baseline line naming any other file. Findings are keyed by file, rule and message (not line numbers,
which move). Rewrite a baseline after fixing findings:
    python -m tests.unit.test_static_checks --write
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "tests" / "data"
RUFF_BASELINE = BASELINES / "ruff-baseline.txt"
MYPY_BASELINE = BASELINES / "mypy-baseline.txt"
MYPY_TARGETS = ["annotation", "taxonomy", "server"]
MYPY_LINE = re.compile(r"^(?P<path>[^:]+):\d+: error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")


def ruff_findings() -> Counter[str]:
    """file<TAB>rule<TAB>the offending line's text (stripped), counted."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", ".", "--output-format", "json", "--exit-zero"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    found: Counter[str] = Counter()
    for item in json.loads(done.stdout):
        path = Path(item["filename"]).resolve().relative_to(ROOT)
        line = (ROOT / path).read_text(encoding="utf-8").splitlines()[item["location"]["row"] - 1].strip()
        found[f"{path}\t{item['code']}\t{line}"] += 1
    return found


def mypy_findings() -> Counter[str]:
    """file<TAB>code<TAB>message, counted (configuration in pyproject.toml)."""
    from mypy import api

    stdout, _, _ = api.run(["--no-error-summary", "--no-pretty", "--hide-error-context", *MYPY_TARGETS])
    found: Counter[str] = Counter()
    for line in stdout.splitlines():
        match = MYPY_LINE.match(line)
        if match:
            found[f"{match['path']}\t{match['code'] or ''}\t{match['message']}"] += 1
    return found


def _baseline(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter({key: int(n) for n, key in (line.split("\t", 1) for line in
                                                 path.read_text(encoding="utf-8").splitlines() if line)})


def _new(found: Counter[str], baseline: Counter[str]) -> list[str]:
    return sorted(f"{key} (x{n - baseline[key]})" for key, n in found.items() if n > baseline[key])


def test_ruff_finds_nothing_new() -> None:
    new = _new(ruff_findings(), _baseline(RUFF_BASELINE))
    assert not new, "new ruff findings (see `ruff check .`); fix them:\n" + "\n".join(new)


def test_mypy_finds_nothing_new() -> None:
    new = _new(mypy_findings(), _baseline(MYPY_BASELINE))
    assert not new, "new mypy findings (see `mypy annotation taxonomy server`); fix them:\n" + "\n".join(new)


# The only places an older finding may still stand; when they are clean, the baselines are empty.
BASELINED = ("annotation/services/labelstudio/", "bench/")


def test_baselines_hold_only_the_rooms_still_being_cleaned() -> None:
    for path in (RUFF_BASELINE, MYPY_BASELINE):
        stray = sorted(key.split("\t")[0] for key in _baseline(path) if not key.startswith(BASELINED))
        assert not stray, f"{path.name} may name only files under {BASELINED}; fix these instead: {stray}"


def test_the_ratchet_reports_a_finding_not_in_the_baseline() -> None:
    baseline = Counter({"a.py\tE501\tx = 1": 1})
    assert _new(Counter({"a.py\tE501\tx = 1": 1}), baseline) == []
    assert _new(Counter({"a.py\tE501\tx = 1": 2, "b.py\tF401\timport os": 1}), baseline) == [
        "a.py\tE501\tx = 1 (x1)", "b.py\tF401\timport os (x1)"]


def _write(path: Path, found: Counter[str]) -> None:
    path.write_text("".join(f"{n}\t{key}\n" for key, n in sorted(found.items())), encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        _write(RUFF_BASELINE, ruff_findings())
        _write(MYPY_BASELINE, mypy_findings())

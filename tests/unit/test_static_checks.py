"""ruff (line length enforced) and mypy (django-stubs, DRF stubs; strict for core/) run with the suite.

Both must find nothing anywhere: there is no baseline of tolerated findings. A failure lists each
finding (file, rule and message, or the offending line) so it can be fixed where it stands.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def _listed(found: Counter[str]) -> list[str]:
    return sorted(f"{key} (x{n})" for key, n in found.items())


def test_ruff_finds_nothing() -> None:
    found = _listed(ruff_findings())
    assert not found, "ruff findings (see `ruff check .`); fix them:\n" + "\n".join(found)


def test_mypy_finds_nothing() -> None:
    found = _listed(mypy_findings())
    assert not found, "mypy findings (see `mypy annotation taxonomy server`); fix them:\n" + "\n".join(found)

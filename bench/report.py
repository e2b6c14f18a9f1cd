"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""
from __future__ import annotations

import platform
import re
from datetime import date
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nMeasured on the development machine (2 cores, noisy): medians and ratios, not single runs.\n"


def write_section(key: str, title: str, body: str, *, path: Path = BENCHMARKS) -> None:
    """Replace the text between <!-- key:start --> and <!-- key:end --> of `path` (appending the section if new)."""
    text = path.read_text() if path.exists() else HEADER
    machine = f"{platform.machine()}, Python {platform.python_version()}, {date.today().isoformat()}"
    section = f"<!-- {key}:start -->\n## {title}\n\n_{machine}_\n\n{body.strip()}\n<!-- {key}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(key)}:start -->.*?<!-- {re.escape(key)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)

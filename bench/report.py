"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""
from __future__ import annotations

import platform
import random
import re
import statistics
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nMeasured on the development machine (2 cores, noisy): medians and ratios, not single runs.\n"
# Sections that hold other benchmarks' subsections: key -> (title, introduction).
PARENTS = {
    "postgres": (
        "PostgreSQL at 1,000,000",
        ("The same benchmarks on PostgreSQL (the server `scripts/services start` runs: Debian's PostgreSQL on\n"
         "loopback, fsync off), each beside the same work on SQLite measured in the same session. Ratios are\n"
         "PostgreSQL / SQLite: above 1 means PostgreSQL is slower. Each benchmark below writes its own part."),
    ),
}


def _replace_block(text: str, key: str, block: str) -> str:
    """`text` with the block marked `key` replaced by `block` (appended when absent)."""
    pattern = re.compile(rf"<!-- {re.escape(key)}:start -->.*?<!-- {re.escape(key)}:end -->", re.DOTALL)
    return pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"


def write_section(key: str, title: str, body: str, *, path: Path = BENCHMARKS, parent: str | None = None) -> None:
    """Replace the text between <!-- key:start --> and <!-- key:end --> of `path` (appending the section if new).

    With `parent` (a key of PARENTS) the section is a `###` subsection inside that section, which is made
    when missing; the parent's other subsections are left as they are.
    """
    text = path.read_text() if path.exists() else HEADER
    machine = f"{platform.machine()}, Python {platform.python_version()}, {date.today().isoformat()}"
    level = "###" if parent else "##"
    section = f"<!-- {key}:start -->\n{level} {title}\n\n_{machine}_\n\n{body.strip()}\n<!-- {key}:end -->"
    if parent is None:
        text = _replace_block(text, key, section)
    else:
        parent_title, introduction = PARENTS[parent]
        found = re.search(rf"<!-- {re.escape(parent)}:start -->(.*?)<!-- {re.escape(parent)}:end -->", text, re.DOTALL)
        inner = found.group(1) if found else f"\n## {parent_title}\n\n{introduction}\n"
        inner = _replace_block(inner.rstrip("\n"), key, section)
        text = _replace_block(text, parent, f"<!-- {parent}:start -->{inner.rstrip()}\n<!-- {parent}:end -->")
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


def machine_load() -> str:
    """The load averages `uptime` prints (1, 5, 15 minutes): how busy the shared machine was during a run."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return uptime.rsplit("load average:", 1)[-1].strip()


@dataclass(frozen=True)
class PairedRatio:
    """Ours / the alternative over alternated pairs of runs: the median of the per-pair ratios and a
    bootstrap interval of that median (pairs share the machine's load of their moment, so their ratios
    are steadier than a ratio of medians)."""

    ratios: tuple[float, ...]
    median: float
    low: float
    high: float

    def summary(self, target: float) -> str:
        """'**1.07** (95 % interval 0.98-1.15 over 9 pairs; target <= 1.1: met)'."""
        met = "met" if self.median <= target else "not met"
        return (f"**{self.median:.2f}** (95 % bootstrap interval {self.low:.2f}-{self.high:.2f} over "
                f"{len(self.ratios)} pairs; target <= {target:g}: {met})")


def paired_ratio(ours: list[float], alternative: list[float], *, resamples: int = 5000, seed: int = 0) -> PairedRatio:
    """Per-pair ratios ours[i] / alternative[i], their median and a percentile bootstrap 95 % interval."""
    ratios = [o / a for o, a in zip(ours, alternative, strict=True)]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return PairedRatio(tuple(ratios), statistics.median(ratios), medians[int(0.025 * resamples)],
                       medians[int(0.975 * resamples) - 1])

"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""
from __future__ import annotations

import platform
import re
import subprocess
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


def publish(key: str, title: str, body: str, *, write: bool, parent: str | None = None) -> None:
    """Print a benchmark's section, then write it into docs/benchmarks.md unless `write` is false."""
    print(body)
    if write:
        write_section(key, title, body, parent=parent)


def code_version() -> str:
    """The commit the benchmark ran (short id; "+changes" when the code outside bench/ differed from it)."""
    root = BENCHMARKS.parents[1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py", ":!bench"],
                             cwd=root, capture_output=True, text=True, check=False).stdout.strip()
    return commit + ("+changes" if changed else "")


def machine_load() -> str:
    """The load averages `uptime` prints (1, 5, 15 minutes): how busy the shared machine was during a run."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return uptime.rsplit("load average:", 1)[-1].strip()

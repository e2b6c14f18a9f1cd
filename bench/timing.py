"""Timing shared by the benchmarks: one child process's wall time, CPU time and peak memory, or one call
in this process (a page request), runs of several contenders alternated so a drifting machine hits them
alike, their medians and paired ratios."""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds, CPU seconds (user + system) and peak resident memory in MiB."""

    seconds: float
    cpu: float = 0.0
    rss_mib: float = 0.0
    output: str = ""


def run_child(args: list[str], *, env: Mapping[str, str] | None = None, capture: bool = False) -> Run:
    """Run `python args...` from the repository root as a child process and time it end to end (start-up
    included); CPU and peak memory are the child's own, from wait4(). A failure stops the benchmark."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=None if env is None else dict(env),
                             stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
    output = child.stdout.read() if child.stdout is not None else ""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed with status {status}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output)


def run_in_process(call: Callable[[], object], *, before: Callable[[], object] | None = None) -> Run:
    """Time one call in this process (wall and CPU seconds); `before` runs first, untimed (clearing a
    cache, say)."""
    if before is not None:
        before()
    start, start_cpu = time.perf_counter(), time.process_time()
    call()
    return Run(time.perf_counter() - start, time.process_time() - start_cpu)


def alternated(contenders: Mapping[str, Callable[[], Run]], repeats: int) -> dict[str, list[Run]]:
    """Each contender `repeats` times, taking turns (a, b, a, b, ...): a slow spell of a shared machine
    then lands on both sides instead of on one."""
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            runs[name].append(run())
    return runs


def median(runs: list[Run], field: str = "seconds") -> float:
    return statistics.median(getattr(run, field) for run in runs)


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

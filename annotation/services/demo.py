"""The main job on the embedded defaults: the bundled real data through every stage that exists."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from annotation.selectors import failure_summary
from annotation.services.ingest import ingest_results
from annotation.services.label_import import import_labels
from annotation.services.sampling import sample_failures

DATA_DIR = Path(settings.BASE_DIR) / "data"
MQM_RATINGS = DATA_DIR / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
DEMO_WORK_SET = "demo"


@dataclass
class DemoReport:
    steps: list[str] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    work_set: str = DEMO_WORK_SET


def run_demo(*, say: Callable[[str], None] = print, ratio: float = 0.1, seed: int = 0) -> DemoReport:
    """Ingest the bundled data, import the MQM human ratings, draw the demo work set. Idempotent."""
    report = DemoReport()

    def step(text: str) -> None:
        report.steps.append(text)
        say(text)

    ingest = ingest_results(paths=[DATA_DIR])
    step(f"ingested {ingest.rows} predictions from {len(ingest.files)} files into {len(ingest.datasets)} datasets")
    labels = import_labels(path=MQM_RATINGS)
    step(f"imported {labels.rows} WMT23 MQM ratings as {labels.label_sets} human label sets ({labels.taxonomy_version})")
    sample = sample_failures(ratio=ratio, seed=seed, name=DEMO_WORK_SET)
    step(f"work set {sample.work_set!r}: {sample.sampled} failures sampled (ratio {ratio}, seed {seed})")
    report.summary = failure_summary()
    return report

"""The main job on the embedded defaults: the bundled real data through every stage, offline."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.core.result_formats.mqm import WMT23_DEFAULT_DATASET
from annotation.models import WorkSet
from annotation.selectors import LabelFilter, failure_summary
from annotation.selectors.judge_audit import JudgeAuditReport, audit_judge
from annotation.services.accounts import ensure_user
from annotation.services.ingest import ingest_results
from annotation.services.judging import analyze_failures
from annotation.services.label_import import import_labels
from annotation.services.labelstudio.push import push_labelstudio
from annotation.services.sampling import SampleReport, sample_failures
from taxonomy.services.induction import induce_taxonomy, prelabel_failures

DATA_DIR = Path(settings.BASE_DIR) / "data"
MQM_RATINGS = DATA_DIR / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
DEMO_WORK_SET = "demo"
DEMO_MQM_WORK_SET = "demo-wmt23"  # the WMT23 failures the judge labels in the raters' taxonomy
DEMO_TAXONOMY = "errormap-demo"
DEMO_USER = os.environ.get("ERRORMAP_DEMO_USER", "demo")
DEMO_PASSWORD = os.environ.get("ERRORMAP_DEMO_PASSWORD", "demo-password")


@dataclass
class DemoReport:
    steps: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    work_set: str = DEMO_WORK_SET
    taxonomy: str = ""
    labelstudio_url: str = ""
    api_token: str = ""
    user_created: bool = False  # the demo user was made by this run (its password is shown once)
    judge_audit: JudgeAuditReport | None = None


def run_demo(
    *,
    say: Callable[[str], None] = print,
    ratio: float = 0.1,
    seed: int = 0,
    labelstudio: bool = True,
    overlap: int = 2,
) -> DemoReport:
    """Ingest, import the MQM ratings, sample, analyse and induce offline, push to Label Studio. Idempotent."""
    report = DemoReport()

    def step(text: str) -> None:
        report.steps.append(text)
        say(text)

    ingest = ingest_results(paths=[DATA_DIR])
    step(f"ingested {ingest.rows} predictions from {len(ingest.files)} files into {len(ingest.datasets)} datasets")
    labels = import_labels(path=MQM_RATINGS)
    step(f"imported {labels.rows} WMT23 MQM ratings as {labels.label_sets} human label sets "
         f"({labels.taxonomy_version})")
    sample = _demo_work_set(datasets=ingest.datasets, ratio=ratio, seed=seed)
    step(f"work set {sample.work_set!r}: {sample.sampled} failures of the bundled datasets "
         f"({'sampled now' if sample.created else 'as drawn before'}; ratio {sample.ratio}, seed {sample.seed})")
    analysis = analyze_failures(work_set=DEMO_WORK_SET, judge="offline")
    step(
        f"offline judge: {analysis.unique} unique failures, {analysis.analysed} analysed now, "
        f"{analysis.already_done} already analysed, {analysis.failed} failed"
    )
    induced = induce_taxonomy(name=DEMO_TAXONOMY, work_set=DEMO_WORK_SET, judge="offline", seed=seed)
    report.taxonomy = f"{induced.taxonomy}@{induced.version}"
    step(
        f"taxonomy {report.taxonomy} ({'reused' if induced.reused else 'induced'}): {induced.top_level} top-level "
        f"categories, {induced.leaves} leaves; judge labels: {induced.labels_created} new, "
        f"{induced.labels_unchanged} unchanged"
    )
    report.judge_audit = _judge_audit_in_the_humans_taxonomy(labels.taxonomy_version, ratio=ratio, seed=seed,
                                                             step=step)
    if labelstudio:
        push = push_labelstudio(
            work_set=DEMO_WORK_SET, taxonomy=report.taxonomy, mode="assisted", overlap=overlap
        )
        report.labelstudio_url = push.url
        step(
            f"Label Studio project {push.url}: {push.tasks_total} tasks ({push.tasks_imported} new), "
            f"judge pre-labels as predictions, {overlap} annotators per task"
        )
    report.user_created, report.api_token = ensure_user(username=DEMO_USER, password=DEMO_PASSWORD)
    report.summary = failure_summary()
    return report


def _demo_work_set(*, datasets: list[str], ratio: float, seed: int) -> SampleReport:
    """The demo's work set over the bundled datasets only (a user's own data never enters it). Drawn
    once; a later demo run reuses it as drawn, whatever its parameters were."""
    existing = WorkSet.objects.filter(name=DEMO_WORK_SET).first()
    if existing is not None:
        ratio, seed = existing.ratio, existing.seed
        datasets = existing.filters.get("datasets", [])
    return sample_failures(ratio=ratio, seed=seed, datasets=sorted(datasets), name=DEMO_WORK_SET)


def _judge_audit_in_the_humans_taxonomy(version: str, *, ratio: float, seed: int,
                                        step: Callable[[str], None]) -> JudgeAuditReport:
    """The judge pre-labels the WMT23 failures in the raters' own taxonomy (MQM), so judge and humans
    label the same items with the same categories and the judge audit has something to compare."""
    dataset = WMT23_DEFAULT_DATASET
    existing = WorkSet.objects.filter(name=DEMO_MQM_WORK_SET).first()
    if existing is not None:  # drawn once, reused as drawn
        ratio, seed = existing.ratio, existing.seed
    sample = sample_failures(ratio=ratio, seed=seed, datasets=[dataset], name=DEMO_MQM_WORK_SET)
    analyze_failures(work_set=DEMO_MQM_WORK_SET, judge="offline")
    prelabel = prelabel_failures(taxonomy=version, work_set=DEMO_MQM_WORK_SET, judge="offline")
    step(f"offline judge pre-labels in the raters' taxonomy {version}: {sample.sampled} {dataset} failures "
         f"(work set {DEMO_MQM_WORK_SET!r}), labels "
         f"{prelabel.labels_created} new, {prelabel.labels_unchanged + prelabel.kept} unchanged")
    audit = audit_judge(label_filter=LabelFilter(taxonomy=version))
    for judge, part in audit.judges.items():
        vs = part.vs_human_majority
        step(f"judge audit in {version}: {judge} against the raters' majority on {vs.n_items} items: "
             f"accuracy {_figure(vs.accuracy)}, Cohen's kappa {_figure(vs.cohen_kappa)}; "
             f"alpha of the raters {_figure(part.alpha_humans)}, with the judge "
             f"{_figure(part.alpha_with_judge)}")
    return audit


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"

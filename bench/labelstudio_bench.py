"""Benchmark: Label Studio push and sync against what Label Studio itself costs, on a real Label Studio.

- push: `push_labelstudio` of N tasks with judge predictions, against one raw SDK `import_tasks` of the very
  same task payloads into a new project (the payloads built beforehand, outside the timing);
- sync: `sync_labelstudio` of N annotations into human labels (from an empty label table), against Label
  Studio's raw JSON export of the same project, read and parsed.
Runs come in pairs, the order switching each pair; the ratio is the median of the per-pair ratios with a
bootstrap interval (target: sync within 1.1x of the export). Starts its own Label Studio (a copy of the
tests' initialised data folder, on a free port) and uses a fresh SQLite database.

    .venv/bin/python bench/labelstudio_bench.py [--tasks 2000] [--pairs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=7, help="alternated pairs of runs (ours, Label Studio's own)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ls-bench-"))
    # Settings are read at import: a fresh database, and no webhook (no receiver runs here).
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["LABEL_STUDIO_WEBHOOK_SECRET"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench.report import machine_load
    from bench.timing import paired_ratio
    from tests.integration import conftest_labelstudio as ls

    call_command("migrate", verbosity=0)
    if not (ls.VENV / "bin" / "label-studio").exists():
        sys.exit("Label Studio is not installed: run scripts/labelstudio install")
    load_before = machine_load()
    ls._ensure_cache()
    shutil.copytree(ls.CACHE / "run" / "data", workdir / "run" / "data")
    shutil.copy(ls.CACHE / "labelstudio.env", workdir / "labelstudio.env")
    port = ls._free_port(8095)
    env = ls._script_env(workdir / "run" / "data", workdir / "labelstudio.env", port)
    ls._run_script("start", env)
    try:
        values = ls._read_env_file(workdir / "labelstudio.env")
        settings.LABEL_STUDIO_URL = f"http://127.0.0.1:{port}"
        settings.LABEL_STUDIO_API_KEY = values["LABEL_STUDIO_API_KEY"]
        t = run(args.tasks, args.pairs)
    finally:
        ls._run_script("stop", env)
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = machine_load()

    push = paired_ratio(t["push"], t["raw_import"])
    sync = paired_ratio(t["sync"], t["export"])
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"push {args.tasks} tasks: ours {fmt(t['push'])}; raw import_tasks {fmt(t['raw_import'])}; "
          f"ratio {push.median:.2f} ({push.low:.2f}-{push.high:.2f})")
    print(f"sync {args.tasks} annotations: ours {fmt(t['sync'])}; raw export {fmt(t['export'])}; "
          f"ratio {sync.median:.2f} ({sync.low:.2f}-{sync.high:.2f})")
    print(f"inside the sync: export {fmt(t['sync_export'])}, the rest {fmt(t['sync_rest'])}")
    if args.no_write:
        return
    from bench.report import write_section

    n = f"{args.tasks:,}"
    labels = {
        "push": f"ours: `push_labelstudio`, {n} tasks with judge predictions (assisted, batches of "
                f"{settings.LABEL_STUDIO_IMPORT_BATCH})",
        "raw_import": f"alternative: one raw SDK `import_tasks` of the same {n} task payloads into a new project",
        "sync": f"ours: `sync_labelstudio`, {n} annotations into human labels (empty label table)",
        "export": "alternative: Label Studio's raw JSON export of the same project, read and parsed",
        "sync_export": "inside our sync: its export request",
        "sync_rest": "inside our sync: everything else (users, mirror rows, label sets, run row)",
    }
    rows = "\n".join(f"| {label} | {fmt(t[key])} | {med[key]:.2f} |" for key, label in labels.items())
    body = f"""
Against a real Label Studio 1.23.2 (its own venv, SQLite, started on loopback by the benchmark) and the
platform on SQLite. {args.pairs} pairs of runs, each pair on a new work set and new projects, the order of
ours and the alternative switching each pair. The ratio is the median of the per-pair ratios, with a
bootstrap 95 % interval of that median. A small untimed push, sync and export warm Label Studio up first.

| operation | runs (s) | median s |
|---|---|---:|
{rows}

| ratio | per pair | median of pairs |
|---|---|---|
| sync / raw export | {fmt(sync.ratios)} | {sync.summary(1.1)} |
| push / raw import_tasks | {fmt(push.ratios)} | {push.summary(1.1)} |

Push = create the project, import in batches with predictions (the next batch's tasks are built and the
previous batch's recorded while Label Studio imports), record the task ids, set the model version; its
task payloads are built from the database inside the timing (the raw import gets them ready-made).
Sync = one JSON export of the project (the users are listed while it is made), mirror rows and label sets
written in bulk as plain tuples.

What stands between the push and the raw import (step timings inside the push on this machine, load
6-8): opening the project, 0.2-0.26 s against the raw side's 0.16-0.21 s for creating it: the push first
lists projects by its title (~0.1 s), which is how it adopts a project a stopped push made (or one laid out
by another database); its token is no longer checked up front (0.12 s saved: opening the project is the
first authenticated request and fails with the same clear error). Then the stage-run row, the verdict
categories and the work set's ids (~0.1 s), and the first batch's payloads built from the database before
anything is sent (a quarter batch; each later batch is built while Label Studio imports the one before).
Each import request costs Label Studio a fixed ~0.2 s besides its tasks (40 tasks: ~0.3 s; 400 in one:
1.1-1.7 s), so the default batch is now 2,000 and 2,000 tasks go in 2 requests (500 + 1,500; were 3). The
payloads' own building (~0.1 s of CPU per 1,000 tasks) runs beside Label Studio's import and competes for
the 2 cores when the machine is busy. Creating the project is on both sides.

Load average of the machine (1, 5, 15 min) at the start: {load_before}; at the end: {load_after} (2 cores
shared with other work: wall times of single runs swing, hence the pairs).

Reproduce: `.venv/bin/python bench/labelstudio_bench.py --tasks {args.tasks} --pairs {args.pairs}`
"""
    write_section("labelstudio", "Label Studio push and sync", body)
    print("wrote the labelstudio section of docs/benchmarks.md")


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def make_work_set(name: str, size: int):
    from annotation.models import (
        Annotator,
        Label,
        PromptVersion,
    )
    from taxonomy.models import Category
    from taxonomy.services.versions import CategorySpec, create_version

    version = create_version(
        taxonomy_name=f"{name}-tax",
        categories=[
            CategorySpec("Accuracy / Mistranslation", "meaning changed"),
            CategorySpec("Accuracy / Omission", "content missing"),
            CategorySpec("Fluency / Grammar", "ungrammatical"),
            CategorySpec("Reasoning / Wrong step", "a step of the reasoning is wrong"),
        ],
    )
    categories = list(Category.objects.filter(version=version, depth=2))
    from tests.factories import make_work_set as make_failing_work_set

    _, predictions = make_failing_work_set(
        name, size, model="bench-model", input_text="Source sentence {i} " * 8,
        output_text="Model output {i} " * 8, reference="Reference translation {i} " * 8)
    judge, _ = Annotator.objects.get_or_create(
        name="judge:bench", defaults={"kind": Annotator.Kind.JUDGE}
    )
    prompt, _ = PromptVersion.objects.get_or_create(
        sha256="cd" * 32, defaults={"stage": "classify", "name": "bench", "template": "t"}
    )
    Label.objects.bulk_create(
        [
            Label(
                prediction=p,
                taxonomy_version=version,
                category=categories[i % len(categories)],
                source=Label.Source.JUDGE,
                annotator=judge,
                confidence=0.5 + (i % 50) / 100,
                prompt_version=prompt,
                error_title=f"error {i}",
                error_summary="why it failed " * 5,
            )
            for i, p in enumerate(predictions)
        ]
    )
    return version, predictions, categories


def run(size: int, pairs: int) -> dict[str, list[float]]:
    from django.conf import settings
    from label_studio_sdk import LabelStudio

    from annotation.models import Label, LabelStudioAnnotation
    from annotation.services.labelstudio import sync as sync_module
    from annotation.services.labelstudio.config import build_label_config
    from annotation.services.labelstudio.push import label_tasks, push_labelstudio
    from annotation.services.labelstudio.sync import sync_labelstudio

    admin = LabelStudio(
        base_url=settings.LABEL_STUDIO_URL, api_key=settings.LABEL_STUDIO_API_KEY, timeout=600
    )
    users = []
    for name in ("bench-alice", "bench-bob"):
        found = [u for u in admin.users.list() if u.email == f"{name}@example.org"]
        users.append(
            found[0].id
            if found
            else admin.users.create(email=f"{name}@example.org", username=name).id
        )
    # The export inside our sync, timed on its own (the rest of the sync is our overhead).
    export_inside: list[float] = []
    export_annotations = sync_module.export_annotations

    def timed_export(*args, **kwargs):
        started = time.perf_counter()
        try:
            return export_annotations(*args, **kwargs)
        finally:
            export_inside.append(time.perf_counter() - started)

    sync_module.export_annotations = timed_export
    # Warm-up, not timed: a fresh Label Studio answers its first project, import and export slowly.
    warm_name = f"bench-warm-{int(time.time())}"
    warm_version, _, _ = make_work_set(warm_name, 20)
    warm = push_labelstudio(work_set=warm_name, taxonomy=str(warm_version), mode="assisted")
    sync_labelstudio(project_id=warm.labelstudio_project_id)
    b"".join(admin.projects.exports.download_sync(warm.labelstudio_project_id, export_type="JSON",
                                                  download_all_tasks=True))
    t: dict[str, list[float]] = {k: [] for k in ("push", "raw_import", "sync", "export", "sync_export", "sync_rest")}
    for pair in range(pairs):
        name = f"bench-{pair}-{int(time.time())}"
        version, predictions, categories = make_work_set(name, size)
        payload = label_tasks(predictions, version=version, mode="assisted")

        def ours_push(name: str = name, version=version) -> None:
            started = time.perf_counter()
            report = push_labelstudio(work_set=name, taxonomy=str(version), mode="assisted")
            t["push"].append(time.perf_counter() - started)
            assert report.tasks_imported == size and report.predictions_imported == size, report

        def raw_import(name: str = name, version=version, payload: list = payload) -> None:
            started = time.perf_counter()
            project = admin.projects.create(
                title=f"{name}-raw", label_config=build_label_config(version, mode="assisted"))
            admin.projects.import_tasks(id=project.id, request=payload)
            t["raw_import"].append(time.perf_counter() - started)

        # Both sides switch order each pair, so neither always meets a warmer (or busier) server.
        for side in (ours_push, raw_import) if pair % 2 == 0 else (raw_import, ours_push):
            side()

        # N annotations by two users: a blind project of the same work set whose tasks were imported
        # with annotations (not timed); push adopts it and records its tasks, then the sync is timed.
        sync_project = _annotated_project(admin, name, version, predictions, categories, users)
        adopted = push_labelstudio(work_set=name, taxonomy=str(version), mode="blind")
        assert adopted.labelstudio_project_id == sync_project and adopted.tasks_recovered == size, adopted
        assert adopted.tasks_refreshed == 0, adopted  # laid out as a push makes it: nothing to write
        Label.objects.filter(source=Label.Source.HUMAN).delete()
        LabelStudioAnnotation.objects.all().delete()

        def raw_export(sync_project: int = sync_project) -> None:
            # The alternative: Label Studio's own JSON export of the same project, read and parsed.
            started = time.perf_counter()
            body = b"".join(admin.projects.exports.download_sync(
                sync_project, export_type="JSON", download_all_tasks=True))
            assert len(json.loads(body)) == size
            t["export"].append(time.perf_counter() - started)

        def ours_sync(sync_project: int = sync_project) -> None:
            started = time.perf_counter()
            report = sync_labelstudio(project_id=sync_project)
            t["sync"].append(time.perf_counter() - started)
            assert report.annotations_seen == size and report.labels_created == size, report
            t["sync_export"].append(export_inside[-1])
            t["sync_rest"].append(t["sync"][-1] - export_inside[-1])

        for side in (raw_export, ours_sync) if pair % 2 == 0 else (ours_sync, raw_export):
            side()
        print(
            f"pair {pair + 1}: push {t['push'][-1]:.2f} s vs raw import {t['raw_import'][-1]:.2f} s; sync "
            f"{t['sync'][-1]:.2f} s (export {t['sync_export'][-1]:.2f} s inside) vs raw export "
            f"{t['export'][-1]:.2f} s; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    sync_module.export_annotations = export_annotations
    return t


def _annotated_project(admin, name, version, predictions, categories, users) -> int:
    """A Label Studio project laid out as push_labelstudio would make it, with one annotation per task."""
    from annotation.models import WorkSet
    from annotation.services.labelstudio.config import build_label_config
    from annotation.services.labelstudio.push import label_tasks, project_title

    title = project_title(WorkSet.objects.get(name=name), version, "blind")
    project = admin.projects.create(
        title=title, label_config=build_label_config(version, mode="blind")
    )
    # The same task data as a push makes, so that the push adopting the project has nothing to refresh.
    payloads = label_tasks(predictions, version=version, mode="blind")
    tasks = []
    for i, payload in enumerate(payloads):
        path = categories[(i + 1) % len(categories)].path.split(" / ")
        tasks.append(
            {
                "data": payload["data"],
                "annotations": [
                    {
                        "completed_by": users[i % 2],
                        "result": [
                            {
                                "from_name": "category",
                                "to_name": "output",
                                "type": "taxonomy",
                                "value": {"taxonomy": [path]},
                            }
                        ],
                    }
                ],
            }
        )
    for start in range(0, len(tasks), 1000):
        admin.projects.import_tasks(id=project.id, request=tasks[start : start + 1000])
    return project.id


if __name__ == "__main__":
    main()

"""Demo data for the browser tests, built with the real commands: the bundled BIG-Bench-Mistake and
WMT23 MQM results, the MQM ratings as human labels, deterministic judge / human / gold labels in
the default taxonomy, and a hostile probe whose texts and model name are HTML and <script>."""
from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MQM = ROOT / "data" / "wmt23-mqm-ende" / "sxs_mqm_generalMT2023_ende.3ratingsPerSegment.tsv.tar.gz"
PROBE_DATASET = "xss-probe"
PROBE_MODEL = "evil<img src=x onerror=\"window.__xss='model'\">model"
PROBE_OUTPUT = (
    "<script>window.__xss = 'output'</script><b id=\"xss-bold\">bold?</b>"
    "<img src=\"x\" onerror=\"window.__xss = 'img'\"> & done"
)
PROBE_INPUT = "<script>window.__xss = 'input'</script>Translate: hello"
PROBE_REFERENCE = "</pre><script>window.__xss = 'reference'</script>hallo"
PROBE_CATEGORY = "Requirement Violation / Unsafe markup"
PROBE_TITLE = "<script>window.__xss = 'title'</script>Emits markup"
JUDGE = "offline-judge"
USER, PASSWORD = "e2e", "e2e-password-123"

BBM_CATEGORIES = {
    "bbm_dyck_languages": ["Reasoning Error / Bracket tracking", "Reasoning Error / State tracking"],
    "bbm_logical_deduction": ["Reasoning Error / Invalid inference", "Question Misinterpretation"],
    "bbm_multistep_arithmetic": ["Computational Error / Arithmetic slip", "Computational Error / Order of operations"],
    "bbm_tracking_shuffled_objects": ["Reasoning Error / State tracking", "Question Misinterpretation"],
    "bbm_word_sorting": ["Requirement Violation / Incomplete output", "Reasoning Error / Ordering"],
}
WMT_CATEGORIES = ["Translation Error / Mistranslation", "Translation Error / Omission", "Fluency Error / Grammar"]


def _h(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def env_for(var_dir: Path) -> dict[str, str]:
    # The demo has its own SQLite database and cache in var_dir, whichever database the suite runs on.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(ERRORMAP_VAR_DIR=str(var_dir), DEBUG="true", ALLOWED_HOSTS="127.0.0.1,localhost",
               LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return env


def manage(var_dir: Path, *args: str) -> str:
    """Run a manage.py command against the demo database; its stdout."""
    result = subprocess.run([sys.executable, "manage.py", *args], check=False, cwd=ROOT, env=env_for(var_dir),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def write_label_files(folder: str) -> None:
    """Judge labels on every failure, two humans and gold on some (run inside Django: manage.py shell)."""
    from annotation.models import Prediction

    out = Path(folder)
    failures = list(
        Prediction.objects.filter(is_failure=True)
        .values_list("example__dataset__name", "example__example_id", "model__name")
        .order_by("example__dataset__name", "example__example_id", "model__name")
    )
    judge_rows, human_rows, gold_rows = [], [], []
    bbm_seen = 0
    for dataset, example_id, model in failures:
        key = (dataset, example_id, model)
        if dataset == PROBE_DATASET:
            judge_rows.append([*key, JUDGE, PROBE_CATEGORY, PROBE_TITLE, "<i>summary</i>", "0.9"])
            continue
        options = BBM_CATEGORIES.get(dataset, WMT_CATEGORIES)
        h = _h(*key)
        category = options[h % len(options)]
        judge_rows.append([*key, JUDGE, category, f"title {h % 97}", "summary", f"{0.5 + (h % 50) / 100:.2f}"])
        if dataset.startswith("bbm_") and bbm_seen < 80:
            bbm_seen += 1
            alt = options[(h + 1) % len(options)]
            alice = category if h % 10 < 8 else alt
            bob = category if (h // 10) % 10 < 7 else alt
            human_rows += [[*key, "ann-alice", alice], [*key, "ann-bob", bob]]
            if bbm_seen <= 40:
                gold_rows.append([*key, "adjudicator", alice if alice == bob else category])
    header = ["dataset", "example_id", "model", "annotator", "category"]
    for name, rows, extra in (("judge.csv", judge_rows, ["title", "summary", "confidence"]),
                              ("human.csv", human_rows, []), ("gold.csv", gold_rows, [])):
        with (out / name).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header + extra)
            writer.writerows(rows)


def build(var_dir: Path) -> None:
    """The demo database in var_dir, built only with the project's commands."""
    var_dir.mkdir(parents=True, exist_ok=True)
    probe = var_dir / "probe.csv"
    with probe.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "input_text", "output_text", "score", "correct_answer"])
        writer.writerow([PROBE_DATASET, "p1", PROBE_MODEL, PROBE_INPUT, PROBE_OUTPUT, "0", PROBE_REFERENCE])
        writer.writerow([PROBE_DATASET, "p2", PROBE_MODEL, "fine", "fine", "1", "fine"])
        writer.writerow([PROBE_DATASET, "p3", PROBE_MODEL, "fine", "fine", "1", "fine"])
    manage(var_dir, "migrate", "-v0")
    manage(var_dir, "ingest_results", str(ROOT / "data" / "big-bench-mistake"), str(ROOT / "data" / "wmt23-mqm-ende"),
           str(probe))
    manage(var_dir, "import_labels", str(MQM))
    manage(var_dir, "shell", "-c",
           f"from tests.e2e.demo_site import write_label_files; write_label_files({str(var_dir)!r})")
    for source in ("judge", "human", "gold"):
        manage(var_dir, "import_labels", str(var_dir / f"{source}.csv"), "--source", source, "--taxonomy", "default")
    manage(var_dir, "create_demo_user", "--username", USER, "--password", PASSWORD)

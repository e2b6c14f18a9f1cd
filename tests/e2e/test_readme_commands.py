"""Every command of the README, once, on the bundled data, then every page: each web page, API
endpoint and admin page of the URLconf (sample ids filled in) must answer 200 (or the status named
below for the few that are not GET pages), after every command and at the end.

The commands are read from the README's ```bash blocks, so a command added there runs here without
editing this file; lines that are not `manage.py` commands must say what covers them
(NOT_MANAGE_PY). Placeholders of the README (a results file, a labels file, an item id) are filled
from the bundled data. Label Studio commands talk to the real test Label Studio; the OpenAI judge
line talks to the local chat-completions server through the real `openai` client."""
from __future__ import annotations

import csv
import re
import shlex
import time
from io import StringIO
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import AdjudicationItem, IngestUpload, Label, Prediction
from taxonomy.models import Category, TaxonomyProposal, TaxonomyVersion
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.labelstudio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# README lines that are not manage.py commands, and what in this test covers each.
NOT_MANAGE_PY = {
    "./scripts/demo": "runs run_demo (below) after setting up; run_demo runs here",
    "./scripts/demo stop": "stops the demo's services; this test's services are its fixtures",
    "./scripts/test": "runs this suite",
    "scripts/labelstudio install": "the labelstudio fixture starts the installed Label Studio",
    "scripts/labelstudio start": "the labelstudio fixture",
    "scripts/web start": "every page is rendered below",
    "curl": "every API endpoint is requested below with a token",
    "scripts/fake-judge": "the OpenAI judge line talks to the same local chat-completions server",
    ".venv/bin/python": "benchmarks and simulations (bench/) print figures; they are not pages' inputs",
}

# The model whose id a URL takes, for URLs whose view does not say (not a DRF view set).
MODEL_OF = {"api-adjudication-resolve": AdjudicationItem, "api-adjudication-decisions": AdjudicationItem,
            "adjudication-resolve": AdjudicationItem, "item": Prediction, "api-ingest-status": IngestUpload}

# Endpoints that need a query to answer at all (the comparison's two groups are read from the
# signatures endpoint at the end).
QUERY = {"adjudication-item-detail": "?status=all", "api-proposals": "?taxonomy=wmt23-mqm"}

# Commands of the README that refuse, with a clear message, at the point of the README where they
# stand (say why; the message must be the one given, never a traceback).
REFUSALS: dict[str, tuple[str, str]] = {}  # command -> (part of its message, why it refuses there)

# URL names that are not GET pages (or redirect by design), with the status a GET must give.
NOT_GET_PAGES = {
    "logout": 405, "admin:logout": 405,  # POST only
    "admin:login": 302,  # a logged-in user is sent to the admin index
    "admin:view_on_site": 404,  # no model has a public URL
    "api-ingest": 405, "api-adjudication-resolve": 405, "labelstudio-webhook": 405,  # POST only
    "adjudication-resolve": 405, "api-proposals-accept": 405,
    "admin:autocomplete": 403,  # answers only the admin's own widgets (app, model and field named)
}


def readme_commands() -> list[str]:
    """Each command line of the ```bash blocks of the README's opening and its "Commands" section,
    comments and [optional parts] removed. (The production block under "Configuration" starts
    PostgreSQL, Redis, Celery and docker: CI's second pass runs the suite on those.)"""
    lines, inside = [], False
    text = README.read_text()
    text = text[:text.index("\n## Configuration")]
    for raw in text.splitlines():
        if raw.startswith("```"):
            inside = raw.strip() == "```bash" if not inside else False
            continue
        if not inside:
            continue
        line = re.sub(r"\s+#\s.*$", "", raw).strip()
        line = re.sub(r"\s*\[[^\]]*\]", "", line).strip()
        for part in line.split("&&"):
            if part.strip():
                lines.append(part.strip())
    return lines


def test_the_readme_parser_finds_the_pipeline():
    commands = readme_commands()
    names = [shlex.split(c)[1] for c in commands if c.startswith("manage.py ")]
    # the first and the last stage of the main job, in the README's order
    assert names.index("ingest_results") < names.index("analyze") < names.index("export_gold") < names.index("report")
    assert "manage.py summary" in commands  # "[--json]" dropped
    for line in commands:
        if not line.startswith("manage.py "):
            assert _covered_by(line), f"README line {line!r}: say in NOT_MANAGE_PY what covers it"


def _covered_by(line: str) -> str | None:
    return NOT_MANAGE_PY.get(line) or NOT_MANAGE_PY.get(line.split()[0])


def _write_results_csv(path: Path) -> None:
    """A small results table of the README's `results.csv --dataset gsm8k` (model gpt-4o, as its
    `sample_failures --model gpt-4o` line expects): 12 examples, every third one wrong."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["example_id", "model", "input_text", "output_text", "score", "correct_answer"])
        for i in range(12):
            answer = str(3 * i + 1)
            wrong = i % 3 == 0
            writer.writerow([f"q{i}", "gpt-4o", f"What is {i} * 3 + 1?", "7" if wrong else answer, 0 if wrong else 1,
                             answer])


def _write_labels_csv(path: Path, taxonomy: str) -> None:
    """Two annotators' labels on the judged failures of the work set, in the taxonomy's categories
    (the README's `import_labels labels.csv --source human --taxonomy my-taxonomy`)."""
    version = TaxonomyVersion.objects.filter(taxonomy__name=taxonomy).order_by("-number").first()
    assert version is not None, f"no taxonomy {taxonomy} when labels.csv is needed"
    leaves = sorted(Category.objects.filter(version=version).values_list("path", flat=True))
    judged = (Label.objects.filter(taxonomy_version=version, source="judge")
              .values_list("prediction__example__dataset__name", "prediction__example__example_id",
                           "prediction__model__name", "category__path").order_by("prediction_id")[:60])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "example_id", "model", "annotator", "category"])
        for i, (dataset, example_id, model, category) in enumerate(judged):
            writer.writerow([dataset, example_id, model, "ann-a", category])
            writer.writerow([dataset, example_id, model, "ann-b", category if i % 4 else leaves[i % len(leaves)]])


def _annotate_one_task(labelstudio) -> None:
    """One annotation in Label Studio on the work set's project (as its admin), for the README's
    `sync_labelstudio` to bring in: a human label, and a row behind the annotation pages."""
    from label_studio_sdk import LabelStudio

    from annotation.models import LabelStudioTask

    task = LabelStudioTask.objects.filter(project__work_set__name="first-pass").select_related(
        "project__taxonomy_version").order_by("pk").first()
    assert task is not None, "push_labelstudio made no task"
    category = Category.objects.filter(version=task.project.taxonomy_version, depth=1).order_by("path").first()
    LabelStudio(base_url=labelstudio.url, api_key=labelstudio.api_key).annotations.create(
        id=task.labelstudio_id, result=[{"from_name": "category", "to_name": "output", "type": "taxonomy",
                                         "value": {"taxonomy": [[category.name]]}}])


# Done before a README command, to give it something to work on.
BEFORE = {"sync_labelstudio": _annotate_one_task}


def _open_item(category: str) -> str:
    """An open adjudication item (DATASET|EXAMPLE_ID|MODEL) whose taxonomy version has this category."""
    for item in AdjudicationItem.objects.filter(status="open").select_related(
            "prediction__example__dataset", "prediction__model").order_by("pk"):
        if Category.objects.filter(version_id=item.taxonomy_version_id, path=category).exists():
            p = item.prediction
            return f"{p.example.dataset.name}|{p.example.example_id}|{p.model.name}"
    raise AssertionError(f"no open adjudication item in a version with {category!r}")


def _arguments(line: str, workdir: Path) -> list[str]:
    """The README line's arguments with its placeholders filled from the bundled data."""
    args = shlex.split(line)[1:]
    out = []
    for i, arg in enumerate(args):
        if arg.startswith("data/"):
            arg = str(ROOT / arg)
        elif arg == "results.csv":
            _write_results_csv(workdir / arg)
        elif arg == "labels.csv":
            _write_labels_csv(workdir / arg, args[args.index("--taxonomy") + 1])
        elif arg == "DATASET|EXAMPLE_ID|MODEL":
            arg = _open_item(args[args.index("--category") + 1])
        elif args[0] == "accept_proposals" and arg.isdigit():
            # The README's ids are those of a fresh database (the n-th proposal); PostgreSQL's sequences
            # keep counting across the suite's tests, so take the n-th stored proposal's id.
            arg = str(TaxonomyProposal.objects.order_by("pk").values_list("pk", flat=True)[int(arg) - 1])
        out.append(arg)
    assert not [a for a in out if a.isupper() and len(a) > 1 and "|" not in a], (
        f"README line {line!r} has a placeholder this test does not fill")
    return out


# ---- pages -------------------------------------------------------------------------------------

def _patterns(resolver: URLResolver | None = None, namespace: str = ""):
    """(qualified name, keyword names, callback) of every named pattern of the URLconf."""
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, namespace + (f"{pattern.namespace}:" if pattern.namespace else ""))
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name, tuple(sorted(pattern.pattern.regex.groupindex)), pattern.callback


def _model_of(name: str, callback):
    """The model whose ids a pattern's `pk` / `object_id` takes."""
    if name.startswith("admin:") and name.count("_") >= 2:
        app_label, model_name = name.removeprefix("admin:").split("_")[:2]
        return apps.get_model(app_label, model_name)
    if name in MODEL_OF:
        return MODEL_OF[name]
    view = getattr(callback, "cls", None)
    assert view is not None, f"URL {name!r} takes an id: name its model in MODEL_OF"
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.model
    return view.serializer_class.Meta.model


def every_url(user, query: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """URL name -> a URL of it with sample ids, for every named pattern; and the names without a
    sample (no row of that model yet)."""
    urls: dict[str, str] = {}
    missing: list[str] = []
    for name, keywords, callback in _patterns():
        if set(keywords) - {"format"} == set():
            kwargs = {"format": "json"} if keywords else {}
        elif keywords == ("app_label",):
            for app_label in sorted({m._meta.app_label for m in admin.site._registry}):
                urls[f"{name}[{app_label}]"] = reverse(name, kwargs={"app_label": app_label})
            continue
        elif keywords == ("content_type_id", "object_id"):
            from django.contrib.contenttypes.models import ContentType
            kwargs = {"content_type_id": ContentType.objects.get_for_model(Prediction).pk,
                      "object_id": Prediction.objects.order_by("pk").first().pk}
        elif keywords == ("id",):
            kwargs = {"id": user.pk}
        else:
            row = _model_of(name, callback).objects.order_by("pk").first()
            if row is None:
                missing.append(name)
                continue
            key = "object_id" if "object_id" in keywords else "pk"
            kwargs = {key: row.pk, **({"format": "json"} if "format" in keywords else {})}
        key = name + (".json" if "format" in kwargs else "")
        urls[key] = reverse(name, kwargs=kwargs) + {**QUERY, **(query or {})}.get(name, "")
    return urls, missing


def _query_pages() -> list[str]:
    """Pages whose content depends on their query: each taxonomy version and source, a category's
    examples, two versions side by side, each queue status."""
    pages = []
    versions = list(TaxonomyVersion.objects.select_related("taxonomy").order_by("pk"))
    for version in versions:
        pages += [f"/agreement/?{urlencode({'taxonomy': version})}", f"/judge/?{urlencode({'taxonomy': version})}"]
        sources = set(Label.objects.filter(taxonomy_version=version).values_list("source", flat=True).distinct())
        # The API answers 400 ("no labels match") where a version lacks the labels it reads.
        if "human" in sources:
            pages.append(f"/api/agreement/?{urlencode({'taxonomy': version})}")
        if "judge" in sources and sources & {"human", "gold"}:
            pages.append(f"/api/judge-audit/?{urlencode({'taxonomy': version})}")
        for source in ("judge", "human", "gold"):
            query = urlencode({"taxonomy": version, "source": source})
            pages += [f"/signatures/?{query}&by=dataset&depth=2", f"/atlas/?{query}"]
            label = Label.objects.filter(taxonomy_version=version, source=source).select_related("category").first()
            if label is not None:
                pages += [f"/api/signatures/?{query}", f"/api/atlas/?{query}",
                          f"/atlas/examples/?{query}&{urlencode({'category': label.category.path})}"]
    if len(versions) >= 2:
        pages.append(f"/atlas/versions/?{urlencode({'left': versions[0], 'right': versions[-1]})}")
    for status in ("open", "resolved", "auto_gold", "all"):
        pages.append(f"/adjudication/?status={status}")
    return pages


SLOWEST: list[tuple[float, str]] = []


def _expected(name: str) -> int:
    return NOT_GET_PAGES.get(name.split("[")[0].removesuffix(".json"), 200)


def _render(client: Client, urls: dict[str, str], *, final: bool) -> list[str]:
    """'NAME URL: status' for every URL that did not answer what it should: never a 5xx; at the
    end (`final`) exactly the expected status. Before the data an API endpoint reads exists, it
    answers 400 with what is missing (no labels yet), and that is right."""
    wrong = []
    for name, url in urls.items():
        started = time.monotonic()
        status = client.get(url).status_code
        SLOWEST.append((time.monotonic() - started, url))
        if status >= 500 or (final and status != _expected(name)):
            wrong.append(f"{name} {url}: {status}")
    return wrong


def _quick_pages(urls: dict[str, str]) -> dict[str, str]:
    """The pages checked after every command: the web pages and API lists without an id."""
    return {name: url for name, url in urls.items()
            if not name.startswith("admin:") and name not in ("schema", "api-docs")
            and not re.search(r"/\d+/", url) and _expected(name) == 200}


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_superuser("e2e-staff", "staff@example.org", "pw-123456789")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    client.user = user
    return client


def test_every_readme_command_then_every_page(labelstudio, staff_client, settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Group.objects.create(name="annotators")  # a row behind the admin's group pages
    before = dict(BEFORE)
    timings: list[tuple[str, float]] = []
    problems: list[str] = []
    with FakeOpenAIServer() as judge_server:
        settings.OPENAI_BASE_URL = judge_server.base_url
        settings.OPENAI_API_KEY = "test-key"
        for line in readme_commands():
            if not line.startswith("manage.py "):
                assert _covered_by(line), f"README line {line!r}: say in NOT_MANAGE_PY what covers it"
                continue
            started = time.monotonic()
            refusal = REFUSALS.get(shlex.split(line)[1])
            if shlex.split(line)[1] in before:
                before.pop(shlex.split(line)[1])(labelstudio)  # once: the first time the command comes
            try:
                call_command(*_arguments(line, tmp_path), stdout=StringIO(), stderr=StringIO())
            except CommandError as exc:
                if refusal is None or refusal[0] not in str(exc):
                    problems.append(f"`{line}` failed: {exc}")
                    continue
            except Exception as exc:  # noqa: BLE001 - every failing command is reported together
                problems.append(f"`{line}` failed: {type(exc).__name__}: {exc}")
                continue
            else:
                if refusal is not None:
                    problems.append(f"`{line}` no longer refuses ({refusal[1]}): take it out of REFUSALS")
            finally:
                timings.append((line, time.monotonic() - started))
            urls, _ = every_url(staff_client.user)
            problems += [f"after `{line}`: {w}" for w in _render(staff_client, _quick_pages(urls), final=False)]
            timings.append((f"  pages after {line.split()[1]}", time.monotonic() - started - timings[-1][1]))
    # The README's upload with curl, as the API takes it: its status page then has a row to show.
    upload = staff_client.post("/api/ingest/", {"file": SimpleUploadedFile(
        "readme.csv", b"example_id,model,input_text,output_text,score\nr1,m,in,out,1\n"), "dataset": "readme"})
    if upload.status_code != 202 or upload.json()["status"] != "done":
        problems.append(f"POST /api/ingest/: {upload.status_code} {upload.content[:300]!r}")
    groups = [s["group"] for s in staff_client.get("/api/signatures/").json()["signatures"]]
    compare = {"api-signatures-compare": "?" + urlencode({"a": groups[0], "b": groups[-1]})}
    urls, missing = every_url(staff_client.user, compare)
    problems += [f"at the end: {w}" for w in _render(staff_client, urls, final=True)]
    problems += [f"at the end: {url}: {status}" for url in _query_pages()
                 if (status := staff_client.get(url).status_code) != 200]
    print("\n".join(f"{seconds:6.1f} s  {line}" for line, seconds in timings))
    print("slowest pages:", *(f"{s:5.2f} s {u}" for s, u in sorted(SLOWEST, reverse=True)[:15]), sep="\n")
    assert not problems, "\n".join(problems)
    # Every model behind a page with an id had a row to show by the end.
    assert missing == [], f"no sample row for {missing}"
    assert len(urls) > 150 and any(n.startswith("admin:") for n in urls)

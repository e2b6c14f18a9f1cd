"""Human verification in Label Studio: labeling configs from a taxonomy version, pushing a work set as
tasks (with judge pre-labels in assisted mode), and pulling annotations back as human labels, by webhook
and by a reconciling sync. Talks to Label Studio only through label-studio-sdk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

import httpx
from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotation.errors import ErrorMapError
from annotation.models import (
    Analysis,
    Annotator,
    Label,
    LabelStudioAnnotation,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    WorkSet,
)
from annotation.services.labels import LabelEntry, LabelSet, replace_label_sets
from annotation.services.runs import progress, stage_run
from taxonomy.models import PATH_SEPARATOR, Category, CategoryMapping, TaxonomyVersion
from taxonomy.services.versions import ensure_category, resolve_version

logger = logging.getLogger(__name__)

# Control and data names in the labeling config. Label Studio refuses to rename a used control,
# so these never change between taxonomy versions.
CATEGORY_CONTROL = "category"
PROPOSAL_CONTROL = "proposed_category"
NOTE_CONTROL = "note"
PREDICTION_KEY = "errormap_prediction_id"
OTHER = "Other"
OTHER_DESCRIPTION = "None of the categories fits: propose one in the text field below."
WEBHOOK_PATH = "/api/labelstudio/webhook/"
WEBHOOK_SECRET_HEADER = "X-ErrorMap-Webhook-Secret"
WEBHOOK_ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
]
EXTERNAL_PREFIX = "ls:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LabelStudioError(ErrorMapError):
    """Label Studio is unreachable, refused the token, or answered with an error."""


@dataclass(frozen=True)
class PushReport:
    project_id: int
    labelstudio_project_id: int
    url: str
    created_project: bool
    config_updated: bool
    tasks_total: int
    tasks_imported: int
    tasks_recovered: int
    predictions_imported: int
    # Tasks already in the project whose data or judge predictions were brought up to date (a new
    # taxonomy version, judge labels made after the first push), and predictions written for them.
    tasks_refreshed: int = 0
    predictions_refreshed: int = 0


@dataclass(frozen=True)
class SyncReport:
    projects: int
    annotations_seen: int
    annotations_changed: int
    annotations_deleted: int
    labels_created: int
    labels_updated: int
    labels_deleted: int
    # Adjudication projects: annotations become decisions, not labels.
    decisions_made: int = 0
    decisions_withdrawn: int = 0
    decisions_refused: int = 0


@dataclass(frozen=True)
class WebhookReport:
    action: str
    handled: bool
    annotations: int
    detail: str = ""


# --- connection ----------------------------------------------------------------------------------


def labelstudio_client(*, url: str | None = None, api_key: str | None = None) -> LabelStudio:
    """An SDK client for the configured Label Studio, checked: clear errors when unreachable or refused."""
    url = (url or settings.LABEL_STUDIO_URL).rstrip("/")
    api_key = api_key if api_key is not None else settings.LABEL_STUDIO_API_KEY
    if not api_key:
        raise LabelStudioError(
            "no Label Studio API token: set LABEL_STUDIO_API_KEY or run `scripts/labelstudio start`,"
            " which writes var/labelstudio.env"
        )
    client = LabelStudio(base_url=url, api_key=api_key, timeout=120, max_retries=1)
    client.errormap_url = url  # type: ignore[attr-defined]
    with labelstudio_errors(url):
        client.users.whoami()
    return client


@contextlib.contextmanager
def labelstudio_errors(url: str) -> Iterator[None]:
    """Turn transport and API failures into LabelStudioError with a message a user can act on."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise LabelStudioError(
            f"Label Studio is not reachable at {url} ({exc}); start it with `scripts/labelstudio start`"
            " or set LABEL_STUDIO_URL"
        ) from exc
    except httpx.HTTPError as exc:
        raise LabelStudioError(f"Label Studio at {url} did not answer properly: {exc}") from exc
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {url} refused the API token (HTTP {exc.status_code}): check"
                " LABEL_STUDIO_API_KEY (or var/labelstudio.env)"
            ) from exc
        raise LabelStudioError(
            f"Label Studio at {url} answered HTTP {exc.status_code}: {str(exc.body)[:500]}"
        ) from exc


def _url(client: LabelStudio) -> str:
    return getattr(client, "errormap_url", settings.LABEL_STUDIO_URL)


# --- labeling config -----------------------------------------------------------------------------


# The failure as the annotator sees it; every value is task data shown by <Text>, never put into the XML.
ITEM_VIEW = (
    '  <Text name="meta" value="$meta"/>\n'
    '  <Header value="Input" size="5"/>\n'
    '  <Text name="input" value="$input"/>\n'
    '  <Header value="Reference" size="5"/>\n'
    '  <Text name="reference" value="$reference"/>\n'
    '  <Header value="Model output" size="5"/>\n'
    '  <Text name="output" value="$output"/>\n'
)


def build_label_config(version: TaxonomyVersion, *, mode: str) -> str:
    """The labeling config for one taxonomy version: the category tree with descriptions as hints, an
    'Other / propose a category' field, a note, the item's texts and, in assisted mode only, the judge's
    analysis."""
    tree = category_choices(version, with_other=True)
    judge = ""
    if mode == LabelStudioProject.Mode.ASSISTED:
        judge = (
            '  <View style="background:#fff8e1;padding:8px">\n'
            '    <Header value="Judge analysis (a suggestion: check it)"/>\n'
            '    <Text name="judge_analysis" value="$judge_analysis"/>\n'
            "  </View>\n"
        )
    return (
        "<View>\n"
        f'  <Header value="{_attr_text(str(version))}: why did this output fail?" size="4"/>\n'
        + ITEM_VIEW
        + f"{judge}"
        '  <Header value="Error category (pick the most specific that fits; several if needed)" size="5"/>\n'
        f'  <Taxonomy name="{CATEGORY_CONTROL}" toName="output" showFullPath="true">\n'
        + "\n".join(tree)
        + "\n  </Taxonomy>\n"
        '  <Header value="Other / propose a category" size="5"/>\n'
        f'  <TextArea name="{PROPOSAL_CONTROL}" toName="output" maxSubmissions="1" editable="true"'
        ' rows="1" placeholder="a new category name, if none fits"/>\n'
        '  <Header value="Note" size="5"/>\n'
        f'  <TextArea name="{NOTE_CONTROL}" toName="output" maxSubmissions="1" editable="true"'
        ' rows="2" placeholder="what went wrong, in your words"/>\n'
        "</View>\n"
    )


def category_choices(version: TaxonomyVersion, *, with_other: bool, indent: str = "      ") -> list[str]:
    """The version's category tree as nested <Choice> lines (names and descriptions as quoted attributes),
    plus an 'Other' choice when asked and the version has none."""
    categories = list(version.categories.all().order_by("depth", "path"))
    children: dict[int | None, list[Category]] = {}
    for category in categories:
        children.setdefault(category.parent_id, []).append(category)

    def choices(parent_id: int | None, indent: str) -> list[str]:
        lines = []
        for category in sorted(children.get(parent_id, []), key=lambda c: c.name.lower()):
            attrs = f"value={quoteattr(category.name)}"
            if category.description:
                attrs += f" hint={quoteattr(category.description)}"
            nested = choices(category.pk, indent + "  ")
            if nested:
                lines.append(f"{indent}<Choice {attrs}>")
                lines.extend(nested)
                lines.append(f"{indent}</Choice>")
            else:
                lines.append(f"{indent}<Choice {attrs}/>")
        return lines

    tree = choices(None, indent)
    if with_other and not any(c.parent_id is None and c.name.lower() == OTHER.lower() for c in categories):
        tree.append(f"{indent}<Choice value={quoteattr(OTHER)} hint={quoteattr(OTHER_DESCRIPTION)}/>")
    return tree


def _attr_text(text: str) -> str:
    # Header values are attributes; '$' would make Label Studio read them as task data references.
    return quoteattr(text.replace("$", ""))[1:-1]


# --- push ----------------------------------------------------------------------------------------


def project_title(work_set: WorkSet, version: TaxonomyVersion, mode: str) -> str:
    """Deterministic (a push that stopped finds its project by it) and within Label Studio's 50 chars."""
    title = f"{work_set.name} / {version.taxonomy.name} / {mode}"
    if len(title) <= 50:
        return title
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"{title[:40].rstrip()} #{digest}"


def _judge_labels(version: TaxonomyVersion, prediction_ids: list[int]) -> dict[int, list[Label]]:
    rows: dict[int, list[Label]] = {}
    labels = (
        Label.objects.filter(
            taxonomy_version=version, source=Label.Source.JUDGE, prediction_id__in=prediction_ids
        )
        .select_related("category", "annotator", "prompt_version", "analysis")
        .order_by("prediction_id", "annotator_id", "category__path")
    )
    for label in labels:
        rows.setdefault(label.prediction_id, []).append(label)
    return rows


def _analyses(predictions: list[Prediction]) -> dict[str, Analysis]:
    keys = {p.content_key for p in predictions}
    found: dict[str, Analysis] = {}
    for analysis in Analysis.objects.filter(
        content_key__in=keys, status=Analysis.Status.OK
    ).order_by("created_at"):
        found[analysis.content_key] = analysis  # the latest wins
    return found


def _model_version(label: Label) -> str:
    prompt = label.prompt_version
    return (
        f"{label.annotator.name}+{prompt.name}@{prompt.sha256[:8]}"
        if prompt
        else label.annotator.name
    )


def _task_payload(
    prediction: Prediction,
    *,
    mode: str,
    judge_labels: list[Label],
    analysis: Analysis | None,
) -> dict:
    example = prediction.example
    data = {
        PREDICTION_KEY: prediction.pk,
        "meta": f"dataset {example.dataset.name} · example {example.example_id}"
        f" · model {prediction.model.name} · score {prediction.score:g}",
        "input": example.input_text,
        "reference": example.reference or "(no reference)",
        "output": prediction.output_text,
    }
    task: dict = {"data": data}
    if mode != LabelStudioProject.Mode.ASSISTED:
        return task  # blind: annotators see nothing of the judge
    title = (judge_labels[0].error_title if judge_labels else "") or (
        analysis.error_title if analysis else ""
    )
    summary = (judge_labels[0].error_summary if judge_labels else "") or (
        analysis.error_summary if analysis else ""
    )
    data["judge_analysis"] = f"{title}\n\n{summary}".strip() or "(no judge analysis)"
    by_model_version: dict[str, list[Label]] = {}
    for label in judge_labels:
        by_model_version.setdefault(_model_version(label), []).append(label)
    predictions = []
    for model_version, labels in by_model_version.items():
        confidences = [label.confidence for label in labels if label.confidence is not None]
        prediction_json = {
            "model_version": model_version,
            "result": [
                {
                    "from_name": CATEGORY_CONTROL,
                    "to_name": "output",
                    "type": "taxonomy",
                    "value": {
                        "taxonomy": [label.category.path.split(PATH_SEPARATOR) for label in labels]
                    },
                }
            ],
        }
        if confidences:
            prediction_json["score"] = max(confidences)
        predictions.append(prediction_json)
    if predictions:
        task["predictions"] = predictions
    return task


def _payloads(predictions: list[Prediction], *, version: TaxonomyVersion, mode: str) -> list[dict]:
    """The tasks (data; the judge's predictions in assisted mode) of these predictions, in order."""
    assisted = mode == LabelStudioProject.Mode.ASSISTED
    judge = _judge_labels(version, [p.pk for p in predictions]) if assisted else {}
    analyses = _analyses(predictions) if assisted else {}
    return [
        _task_payload(
            p, mode=mode, judge_labels=judge.get(p.pk, []), analysis=analyses.get(p.content_key)
        )
        for p in predictions
    ]


def _list_task_data(client: LabelStudio, project_id: int) -> dict[int, dict]:
    """Label Studio task id -> task data, for every task in the project."""
    with labelstudio_errors(_url(client)):
        return {
            task.id: task.data or {}
            for task in client.tasks.list(project=project_id, fields="task_only", page_size=1000)
        }


def _task_ids(task_data: dict[int, dict]) -> dict[int, int]:
    """prediction id -> Label Studio task id (the first if there are several), from task data."""
    found: dict[int, int] = {}
    for task_id, data in sorted(task_data.items()):
        prediction_id = data.get(PREDICTION_KEY)
        if prediction_id is not None:
            found.setdefault(int(prediction_id), task_id)
    return found


def _list_task_ids(client: LabelStudio, project_id: int) -> dict[int, int]:
    """prediction id -> Label Studio task id, for every task already in the project."""
    return _task_ids(_list_task_data(client, project_id))


def refresh_task_data(
    client: LabelStudio, *, wanted: dict[int, dict], remote: dict[int, dict]
) -> set[int]:
    """Give tasks (Label Studio task id -> data) the data they should show where Label Studio holds
    something else; annotations and predictions are not touched. -> the task ids updated."""
    stale = {t for t, data in wanted.items() if t in remote and remote[t] != data}
    with labelstudio_errors(_url(client)):
        for task_id in sorted(stale):
            client.tasks.update(id=str(task_id), data=wanted[task_id])
    return stale


def _is_judge_prediction(model_version: str, judges: list[str]) -> bool:
    # model_version is "<judge>" or "<judge>+<prompt>@<sha>" (see _model_version)
    return any(model_version == name or model_version.startswith(f"{name}+") for name in judges)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def _prediction_state(result: list, score: float | None) -> tuple:
    regions = [
        (r.get("from_name"), r.get("to_name"), r.get("type"), _json(r.get("value")))
        for r in result or []
    ]
    return regions, None if score is None else round(float(score), 6)


def refresh_judge_predictions(
    client: LabelStudio, project: LabelStudioProject, wanted: dict[int, list[dict]]
) -> tuple[set[int], int]:
    """Make the judge's predictions on these tasks (Label Studio task id -> prediction dicts)
    exactly `wanted`: one prediction per model version, updated in place when its result or score
    differs, created when missing, deleted when the judge has no labels for it any more (e.g. an
    older taxonomy version's). Predictions from anything but the platform's judges (an ML backend)
    are left alone; annotations are never touched. -> (task ids changed, predictions written)."""
    if not wanted:
        return set(), 0
    judges = list(
        Annotator.objects.filter(kind=Annotator.Kind.JUDGE).values_list("name", flat=True)
    )
    changed: set[int] = set()
    written = 0
    with labelstudio_errors(_url(client)):
        held: dict[int, list] = {}
        for prediction in client.predictions.list(task_project=project.labelstudio_id):
            ours = _is_judge_prediction(prediction.model_version or "", judges)
            if ours and prediction.task in wanted:
                held.setdefault(prediction.task, []).append(prediction)
        for task_id in sorted(wanted):
            current = sorted(held.get(task_id, []), key=lambda p: p.id)
            for want in wanted[task_id]:
                match = next((p for p in current if p.model_version == want["model_version"]), None)
                if match is None:
                    client.predictions.create(task=task_id, **want)
                else:
                    current.remove(match)
                    if _prediction_state(match.result, match.score) == _prediction_state(
                        want["result"], want.get("score")
                    ):
                        continue
                    client.predictions.update(
                        id=match.id, result=want["result"], score=want.get("score")
                    )
                changed.add(task_id)
                written += 1
            for stale in current:  # a duplicate, or a judge model version with no labels now
                client.predictions.delete(id=stale.id)
                changed.add(task_id)
                written += 1
    return changed, written


def _ensure_model_version(
    client: LabelStudio, project: LabelStudioProject, wanted: Counter
) -> bool:
    """Label Studio pre-fills the labeling view only with predictions of the project's model_version
    (set on the first import): when the judge's predictions now carry another one, point it at the
    most common of them. A model version chosen among the current ones is kept. -> changed?"""
    if not wanted:
        return False
    with labelstudio_errors(_url(client)):
        current = client.projects.get(id=project.labelstudio_id).model_version or ""
        if current in wanted:
            return False
        client.projects.update(id=project.labelstudio_id, model_version=wanted.most_common(1)[0][0])
    return True


def _find_or_create_project(
    client: LabelStudio, *, work_set: WorkSet, version: TaxonomyVersion, mode: str, overlap: int
) -> tuple[LabelStudioProject, bool]:
    local = LabelStudioProject.objects.filter(
        work_set=work_set, taxonomy_version__taxonomy=version.taxonomy, mode=mode
    ).first()
    return find_or_create_project(
        client,
        local=local,
        title=project_title(work_set, version, mode),
        create=dict(
            description=f"Work set {work_set.name}, taxonomy {version}, {mode} mode (ErrorMap Studio)",
            label_config=build_label_config(version, mode=mode),
            maximum_annotations=overlap,
            overlap_cohort_percentage=100,
            show_collab_predictions=mode == LabelStudioProject.Mode.ASSISTED,
        ),
        record=dict(work_set=work_set, taxonomy_version=version, mode=mode, overlap=overlap),
    )


def find_or_create_project(
    client: LabelStudio, *, local: LabelStudioProject | None, title: str, create: dict, record: dict
) -> tuple[LabelStudioProject, bool]:
    """The platform's project if Label Studio still has it; else one adopted by `title` (a push interrupted
    right after creating it), else a new one made with `create`; the local row gets `record`."""
    url = _url(client)
    if local is not None:
        try:
            with labelstudio_errors(url):
                client.projects.get(id=local.labelstudio_id)
            return local, False
        except LabelStudioError as exc:
            if "HTTP 404" not in str(exc):
                raise
            logger.warning("Label Studio project %s is gone; creating it again", local.labelstudio_id)
            local.delete()
    with labelstudio_errors(url):
        existing = [p for p in client.projects.list(title=title, page_size=100) if p.title == title]
        if existing:
            remote_id, created = existing[0].id, False
        else:
            remote_id, created = client.projects.create(title=title, **create).id, True
    local = LabelStudioProject.objects.create(labelstudio_id=remote_id, title=title, **record)
    return local, created


def ensure_webhook(
    client: LabelStudio, project: LabelStudioProject, *, secret: str | None = None
) -> None:
    """One webhook per project to this platform's endpoint, carrying the shared secret."""
    secret = secret if secret is not None else settings.LABEL_STUDIO_WEBHOOK_SECRET
    if not secret:
        logger.warning(
            "LABEL_STUDIO_WEBHOOK_SECRET is empty: no webhook; run sync_labelstudio instead"
        )
        return
    url = settings.ERRORMAP_PUBLIC_URL.rstrip("/") + WEBHOOK_PATH
    wanted = {
        "url": url,
        "headers": {WEBHOOK_SECRET_HEADER: secret},
        "send_payload": True,
        "send_for_all_actions": False,  # otherwise the actions list is ignored
        "actions": WEBHOOK_ACTIONS,
        "is_active": True,
    }
    with labelstudio_errors(_url(client)):
        hooks = [h for h in client.webhooks.list(project=str(project.labelstudio_id)) if h.project]
        ours = [h for h in hooks if h.project == project.labelstudio_id and WEBHOOK_PATH in h.url]
        if ours:
            hook = ours[0]
            if (
                hook.url != url
                or (hook.headers or {}) != wanted["headers"]
                or set(hook.actions or []) != set(WEBHOOK_ACTIONS)
            ):
                client.webhooks.update(id=hook.id, **wanted)
            for extra in ours[1:]:
                client.webhooks.delete(id=extra.id)
        else:
            client.webhooks.create(project=project.labelstudio_id, **wanted)


def push_labelstudio(
    *,
    work_set: str,
    taxonomy: str,
    mode: str = LabelStudioProject.Mode.BLIND,
    overlap: int = 1,
    batch_size: int | None = None,
    client: LabelStudio | None = None,
    webhook_secret: str | None = None,
) -> PushReport:
    """Create or update the Label Studio project for a work set and import its missing tasks in batches.

    Resumable: tasks carry the prediction id, and tasks already in the project are listed first, so a
    push that stopped halfway (or ran twice) imports only what is missing. Tasks already there are
    brought up to date with the version pushed (in assisted mode: the judge's predictions and
    analysis under it), where Label Studio holds something else."""
    if mode not in (LabelStudioProject.Mode.BLIND, LabelStudioProject.Mode.ASSISTED):
        raise ErrorMapError(f"mode must be blind or assisted, not {mode!r}")
    if overlap < 1:
        raise ErrorMapError("overlap must be at least 1")
    ws = WorkSet.objects.filter(name=work_set).first()
    if ws is None:
        raise ErrorMapError(f"unknown work set {work_set!r}")
    version = resolve_version(taxonomy)
    batch_size = batch_size or settings.LABEL_STUDIO_IMPORT_BATCH
    client = client or labelstudio_client()
    url = _url(client)
    config = {"work_set": work_set, "taxonomy": str(version), "mode": mode, "overlap": overlap}
    with stage_run("push_labelstudio", config) as run:
        project, created = _find_or_create_project(
            client, work_set=ws, version=version, mode=mode, overlap=overlap
        )
        config_updated = False
        if not created:
            config_updated = _update_project(client, project, version=version, overlap=overlap)
        ensure_webhook(client, project, secret=webhook_secret)

        remote_data = _list_task_data(client, project.labelstudio_id)
        remote = _task_ids(remote_data)
        known = set(project.tasks.values_list("prediction_id", flat=True))
        recovered = [
            LabelStudioTask(project=project, prediction_id=pid, labelstudio_id=tid)
            for pid, tid in remote.items()
            if pid not in known
        ]
        # Rows for tasks that exist remotely but not here (the push stopped between import and record).
        LabelStudioTask.objects.filter(
            labelstudio_id__in=[t.labelstudio_id for t in recovered]
        ).delete()
        LabelStudioTask.objects.bulk_create(recovered, batch_size=1000)
        refreshed, predictions_refreshed, model_versions = _refresh_tasks(
            client, project, remote_data, version=version, batch_size=batch_size
        )
        done = known | set(remote)
        todo = list(
            Prediction.objects.filter(work_sets=ws)
            .exclude(pk__in=done)
            .select_related("example__dataset", "model")
            .order_by("pk")
        )
        total = Prediction.objects.filter(work_sets=ws).count()
        imported = predictions_imported = 0
        batches = range(0, len(todo), batch_size)
        for start in progress(batches, total=len(batches), desc="push", unit="batch"):
            batch = todo[start : start + batch_size]
            payload = _payloads(batch, version=version, mode=mode)
            with labelstudio_errors(url):
                response = client.projects.import_tasks(
                    id=project.labelstudio_id, request=payload, return_task_ids=True
                )
            task_ids = getattr(response, "task_ids", None) or (response.model_extra or {}).get(
                "task_ids"
            )
            if not task_ids or len(task_ids) != len(batch):
                # Older servers do not return ids: list them (still keyed by the prediction id in data).
                listed = _list_task_ids(client, project.labelstudio_id)
                task_ids = [listed[p.pk] for p in batch]
            LabelStudioTask.objects.bulk_create(
                [
                    LabelStudioTask(project=project, prediction_id=p.pk, labelstudio_id=tid)
                    for p, tid in zip(batch, task_ids)
                ]
            )
            imported += len(batch)
            predictions_imported += sum(len(task.get("predictions", [])) for task in payload)
            model_versions.update(
                p["model_version"] for task in payload for p in task.get("predictions", [])
            )
        _ensure_model_version(client, project, model_versions)
        run.counts = {
            "tasks_total": total,
            "tasks_imported": imported,
            "tasks_recovered": len(recovered),
            "predictions_imported": predictions_imported,
            "tasks_refreshed": len(refreshed),
            "predictions_refreshed": predictions_refreshed,
        }
    if config_updated:
        # Annotations made under the previous version are re-read under the new one.
        sync_labelstudio(project_id=project.labelstudio_id, client=client)
    return PushReport(
        project_id=project.pk,
        labelstudio_project_id=project.labelstudio_id,
        url=f"{url}/projects/{project.labelstudio_id}/data",
        created_project=created,
        config_updated=config_updated,
        tasks_total=total,
        tasks_imported=imported,
        tasks_recovered=len(recovered),
        predictions_imported=predictions_imported,
        tasks_refreshed=len(refreshed),
        predictions_refreshed=predictions_refreshed,
    )


def _refresh_tasks(
    client: LabelStudio,
    project: LabelStudioProject,
    remote_data: dict[int, dict],
    *,
    version: TaxonomyVersion,
    batch_size: int,
) -> tuple[set[int], int, Counter]:
    """Bring the tasks already in the project up to date with its taxonomy version: their data (the
    judge's analysis in assisted mode) and the judge's predictions. Nothing is written where Label
    Studio already holds the same. -> (task ids changed, predictions written, model versions)."""
    tasks = [
        t
        for t in project.tasks.select_related("prediction__example__dataset", "prediction__model")
        .order_by("pk")
        .iterator(chunk_size=2000)
        if t.labelstudio_id in remote_data  # a task deleted in Label Studio stays deleted
    ]
    data: dict[int, dict] = {}
    predictions: dict[int, list[dict]] = {}
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start : start + batch_size]
        payloads = _payloads([t.prediction for t in batch], version=version, mode=project.mode)
        for task, payload in zip(batch, payloads):
            data[task.labelstudio_id] = payload["data"]
            predictions[task.labelstudio_id] = payload.get("predictions", [])
    changed = refresh_task_data(client, wanted=data, remote=remote_data)
    with_predictions, written = refresh_judge_predictions(client, project, predictions)
    model_versions = Counter(p["model_version"] for wanted in predictions.values() for p in wanted)
    return changed | with_predictions, written, model_versions


def _update_project(
    client: LabelStudio, project: LabelStudioProject, *, version: TaxonomyVersion, overlap: int
) -> bool:
    """Bring the remote config in step with the taxonomy version and overlap; True if the version changed."""
    changed_version = project.taxonomy_version_id != version.pk
    with labelstudio_errors(_url(client)):
        remote = client.projects.get(id=project.labelstudio_id)
        wanted = build_label_config(version, mode=project.mode)
        updates = {}
        if (remote.label_config or "").strip() != wanted.strip():
            updates["label_config"] = wanted
        if remote.maximum_annotations != overlap:
            updates["maximum_annotations"] = overlap
        if updates:
            client.projects.update(id=project.labelstudio_id, **updates)
    if changed_version or project.overlap != overlap:
        project.taxonomy_version = version
        project.overlap = overlap
        project.save(update_fields=["taxonomy_version", "overlap"])
    return changed_version


# --- pull: annotations -> labels -----------------------------------------------------------------


class CategoryResolver:
    """Maps the category paths stored in annotations to categories of the project's current version,
    following CategoryMapping from older versions (renamed, merged, kept). Split or retired categories
    stay under the older version (nothing is guessed); unknown paths become 'Other' with the path kept
    as the proposal."""

    def __init__(self, version: TaxonomyVersion):
        self.version = version
        self._cache: dict[str, tuple[Category, str]] = {}
        self._current = {c.path.lower(): c for c in version.categories.all()}
        self._older: list[TaxonomyVersion] = []
        previous = version.previous
        while previous is not None and previous.pk not in {v.pk for v in self._older}:
            self._older.append(previous)
            previous = previous.previous

    def resolve(self, parts: list[str]) -> tuple[Category, str]:
        """(category, proposal text when the path was not a category)."""
        path = PATH_SEPARATOR.join(p.strip() for p in parts)
        key = path.lower()
        if key not in self._cache:
            self._cache[key] = self._resolve(path, key)
        return self._cache[key]

    def _resolve(self, path: str, key: str) -> tuple[Category, str]:
        if key in self._current:
            return self._current[key], ""
        if key == OTHER.lower():
            return self.other(), ""
        for older in self._older:
            category = older.categories.filter(path__iexact=path).first()
            if category is not None:
                return self._follow(category), ""
        return self.other(), path

    def _follow(self, category: Category) -> Category:
        seen = set()
        while category.version_id != self.version.pk and category.pk not in seen:
            seen.add(category.pk)
            targets = list(
                CategoryMapping.objects.filter(
                    source=category, target__isnull=False
                ).select_related("target")
            )
            if len(targets) != 1:
                return category  # split, retired or unmapped: keep the older version's category
            category = targets[0].target
        return category

    def other(self) -> Category:
        if OTHER.lower() not in self._current:
            self._current[OTHER.lower()] = ensure_category(self.version, OTHER, OTHER_DESCRIPTION)
        return self._current[OTHER.lower()]


def _parse_result(result: list, resolver: CategoryResolver) -> tuple[list[Category], str, str]:
    """(categories, proposal, note) from an annotation's result list."""
    categories: list[Category] = []
    proposals: list[str] = []
    notes: list[str] = []
    for region in result or []:
        name = region.get("from_name")
        value = region.get("value") or {}
        if name == CATEGORY_CONTROL:
            for parts in value.get("taxonomy") or []:
                if parts:
                    category, proposal = resolver.resolve([str(p) for p in parts])
                    if category not in categories:
                        categories.append(category)
                    if proposal:
                        proposals.append(proposal)
        elif name == PROPOSAL_CONTROL:
            proposals.extend(t.strip() for t in value.get("text") or [] if t and t.strip())
        elif name == NOTE_CONTROL:
            notes.extend(t.strip() for t in value.get("text") or [] if t and t.strip())
    proposal = "; ".join(dict.fromkeys(proposals))
    if proposal and not categories:
        categories.append(resolver.other())
    return categories, proposal, "\n".join(notes)


def _annotator_for(user_id: int, users: dict[int, dict] | None = None) -> Annotator:
    """The platform annotator for a Label Studio user, created on first sight."""
    annotator = Annotator.objects.filter(labelstudio_user_id=user_id).first()
    info = (users or {}).get(user_id) or {}
    email = info.get("email") or ""
    name = email or info.get("username") or f"labelstudio-user-{user_id}"
    if annotator is None:
        if Annotator.objects.filter(name=name).exists():
            name = f"{name} (labelstudio {user_id})"
        return Annotator.objects.create(
            name=name, kind=Annotator.Kind.HUMAN, email=email, labelstudio_user_id=user_id
        )
    if email and (annotator.email != email or annotator.name.startswith("labelstudio-user-")):
        annotator.email = email
        if (
            annotator.name.startswith("labelstudio-user-")
            and not Annotator.objects.filter(name=email).exists()
        ):
            annotator.name = email
        annotator.save(update_fields=["email", "name"])
    return annotator


def _user_id(value) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return int(value) if value is not None else None


def _record_annotation(
    project: LabelStudioProject,
    task: LabelStudioTask,
    annotation: dict,
    users: dict[int, dict] | None,
    annotators: dict[int, Annotator],
    existing: dict[int, LabelStudioAnnotation] | None = None,
) -> tuple[LabelStudioAnnotation | None, bool]:
    """Upsert the mirror row unless what we hold is newer; (row, changed)."""
    user_id = _user_id(annotation.get("completed_by"))
    if user_id is None:
        return None, False
    if user_id not in annotators:
        annotators[user_id] = _annotator_for(user_id, users)
    updated_at = annotation.get("updated_at")
    updated = parse_datetime(updated_at) if isinstance(updated_at, str) else updated_at
    fields = {
        "project": project,
        "task": task,
        "annotator": annotators[user_id],
        "result": annotation.get("result") or [],
        "was_cancelled": bool(annotation.get("was_cancelled")),
        "labelstudio_updated_at": updated,
    }
    if existing is not None:
        row = existing.get(annotation["id"])
    else:
        row = LabelStudioAnnotation.objects.filter(labelstudio_id=annotation["id"]).first()
    if row is None:
        return LabelStudioAnnotation.objects.create(labelstudio_id=annotation["id"], **fields), True
    if row.deleted:
        return row, False  # a late delivery for an annotation already deleted
    if row.labelstudio_updated_at and updated and updated < row.labelstudio_updated_at:
        return row, False  # an older state arriving after a newer one
    changed = any(getattr(row, k) != v for k, v in fields.items())
    if changed:
        for k, v in fields.items():
            setattr(row, k, v)
        row.save()
    return row, changed


def _rebuild_labels(groups: Iterable[tuple[int, int]], project: LabelStudioProject):
    """Recompute the human label sets of (task, annotator) pairs from the mirror: an annotator's latest
    live annotation on a task is their set; every version they no longer have rows in is emptied."""
    groups = set(groups)
    if not groups:
        return replace_label_sets([])
    resolver = CategoryResolver(project.taxonomy_version)
    task_ids = {t for t, _ in groups}
    tasks = {t.pk: t for t in LabelStudioTask.objects.filter(pk__in=task_ids)}
    mirror: dict[tuple[int, int], list[LabelStudioAnnotation]] = {}
    for row in LabelStudioAnnotation.objects.filter(
        task_id__in=task_ids, deleted=False, was_cancelled=False
    ):
        mirror.setdefault((row.task_id, row.annotator_id), []).append(row)
    held_versions: dict[tuple[int, int], set[int]] = {}
    for prediction_id, annotator_id, version_id in Label.objects.filter(
        prediction_id__in={t.prediction_id for t in tasks.values()},
        annotator_id__in={a for _, a in groups},
        source=Label.Source.HUMAN,
        external_id__startswith=EXTERNAL_PREFIX,
    ).values_list("prediction_id", "annotator_id", "taxonomy_version_id"):
        held_versions.setdefault((prediction_id, annotator_id), set()).add(version_id)
    sets: list[LabelSet] = []
    for task_id, annotator_id in groups:
        prediction_id = tasks[task_id].prediction_id
        wanted: dict[int, list[LabelEntry]] = {}
        rows = sorted(
            mirror.get((task_id, annotator_id), []),
            key=lambda r: (r.labelstudio_updated_at or EPOCH, r.labelstudio_id),
        )
        if rows:
            latest = rows[-1]
            categories, proposal, note = _parse_result(latest.result, resolver)
            for category in categories:
                wanted.setdefault(category.version_id, []).append(
                    LabelEntry(
                        category_id=category.pk,
                        details={
                            "note": note,
                            "proposed_category": proposal,
                            "external_id": f"{EXTERNAL_PREFIX}{latest.labelstudio_id}",
                        },
                    )
                )
        held = held_versions.get((prediction_id, annotator_id), set())
        for version_id in held | set(wanted):
            sets.append(
                LabelSet(
                    prediction_id=prediction_id,
                    taxonomy_version_id=version_id,
                    source=Label.Source.HUMAN,
                    annotator_id=annotator_id,
                    entries=tuple(wanted.get(version_id, [])),
                )
            )
    return replace_label_sets(sets)


def _users(client: LabelStudio) -> dict[int, dict]:
    with labelstudio_errors(_url(client)):
        return {
            u.id: {"email": u.email or "", "username": u.username or ""}
            for u in client.users.list()
        }


def _export(client: LabelStudio, project_id: int) -> list[dict]:
    """Every task of the project with its annotations, in one request."""
    with labelstudio_errors(_url(client)):
        body = b"".join(
            client.projects.exports.download_sync(
                project_id, export_type="JSON", download_all_tasks=True
            )
        )
    return json.loads(body)


def sync_labelstudio(
    *, work_set: str | None = None, project_id: int | None = None, client: LabelStudio | None = None
) -> SyncReport:
    """Reconcile every annotation of the pushed projects (or one work set's, or one project's) with the
    label table: new and changed annotations are written, deleted ones removed, the rest left alone."""
    projects = LabelStudioProject.objects.select_related("taxonomy_version").order_by("pk")
    if work_set:
        projects = projects.filter(work_set__name=work_set)
        if not projects.exists():
            raise ErrorMapError(f"work set {work_set!r} has not been pushed to Label Studio")
    if project_id is not None:
        projects = projects.filter(labelstudio_id=project_id)
    client = client or labelstudio_client()
    seen = changed = deleted = 0
    created_labels = updated_labels = deleted_labels = 0
    with stage_run("sync_labelstudio", {"work_set": work_set, "project_id": project_id}) as run:
        users = _users(client)
        annotators: dict[int, Annotator] = {}
        decisions = {"made": 0, "withdrawn": 0, "refused": 0}
        for project in projects:
            if project.mode == LabelStudioProject.Mode.ADJUDICATION:
                from annotation.services.labelstudio_adjudication import sync_adjudication_project

                pulled = sync_adjudication_project(client, project, users)
                seen += pulled.annotations_seen
                changed += pulled.annotations_changed
                deleted += pulled.annotations_deleted
                decisions["made"] += pulled.decisions_made
                decisions["withdrawn"] += pulled.decisions_withdrawn
                decisions["refused"] += pulled.refused
                continue
            tasks = {t.labelstudio_id: t for t in project.tasks.all()}
            exported = _export(client, project.labelstudio_id)
            with transaction.atomic():
                existing = {
                    row.labelstudio_id: row
                    for row in LabelStudioAnnotation.objects.filter(project=project)
                }
                groups: set[tuple[int, int]] = set()
                live: set[int] = set()
                for item in exported:
                    task = tasks.get(item.get("id"))
                    if task is None:
                        continue  # not ours (added by hand in Label Studio)
                    for annotation in item.get("annotations") or []:
                        seen += 1
                        live.add(annotation["id"])
                        row, was_changed = _record_annotation(
                            project, task, annotation, users, annotators, existing
                        )
                        if row is not None and (was_changed or row.deleted):
                            if (
                                row.deleted
                            ):  # deleted here by a webhook that was wrong? LS is the truth
                                row.deleted = False
                                row.save(update_fields=["deleted", "synced_at"])
                            changed += 1
                            groups.add((row.task_id, row.annotator_id))
                gone = LabelStudioAnnotation.objects.filter(project=project, deleted=False).exclude(
                    labelstudio_id__in=live
                )
                for row in gone:
                    groups.add((row.task_id, row.annotator_id))
                    deleted += 1
                gone.update(deleted=True)
                # After a taxonomy version change every held set is re-read under the new version.
                stale = (
                    Label.objects.filter(
                        source=Label.Source.HUMAN,
                        external_id__startswith=EXTERNAL_PREFIX,
                        prediction_id__in=[t.prediction_id for t in tasks.values()],
                    )
                    .exclude(taxonomy_version=project.taxonomy_version)
                    .values_list("external_id", flat=True)
                )
                stale_ids = {int(e[len(EXTERNAL_PREFIX) :]) for e in stale}
                for row in LabelStudioAnnotation.objects.filter(
                    project=project, labelstudio_id__in=stale_ids
                ):
                    groups.add((row.task_id, row.annotator_id))
                written = _rebuild_labels(groups, project)
            created_labels += written.created
            updated_labels += written.updated
            deleted_labels += written.deleted
        report = SyncReport(
            projects=len(projects),
            annotations_seen=seen,
            annotations_changed=changed,
            annotations_deleted=deleted,
            labels_created=created_labels,
            labels_updated=updated_labels,
            labels_deleted=deleted_labels,
            decisions_made=decisions["made"],
            decisions_withdrawn=decisions["withdrawn"],
            decisions_refused=decisions["refused"],
        )
        run.counts = asdict(report)
    return report


def _mark_deleted(
    project: LabelStudioProject, payload: dict
) -> tuple[int, list[LabelStudioAnnotation]]:
    """An ANNOTATIONS_DELETED delivery: mark our mirror rows deleted; (ids delivered, rows marked)."""
    ids = [
        int(a["id"])
        for a in payload.get("annotations") or []
        if isinstance(a, dict) and "id" in a
    ]
    rows = list(LabelStudioAnnotation.objects.filter(project=project, labelstudio_id__in=ids))
    LabelStudioAnnotation.objects.filter(pk__in=[r.pk for r in rows]).update(deleted=True)
    return len(ids), rows


def _delivered_annotations(
    project: LabelStudioProject, payload: dict
) -> Iterator[tuple[LabelStudioTask, dict]]:
    """A created/updated delivery's annotations, each with its task, skipping tasks that are not ours."""
    annotations = payload.get("annotation") or []
    if isinstance(annotations, dict):
        annotations = [annotations]
    for annotation in annotations:
        task_id = annotation.get("task")
        task_id = task_id.get("id") if isinstance(task_id, dict) else task_id
        task = LabelStudioTask.objects.filter(project=project, labelstudio_id=task_id).first()
        if task is not None:
            yield task, annotation


def handle_webhook(payload: dict) -> WebhookReport:
    """Apply one Label Studio webhook delivery (created, updated or deleted annotations) at once."""
    action = str(payload.get("action") or "")
    if action not in WEBHOOK_ACTIONS:
        return WebhookReport(action=action, handled=False, annotations=0, detail="action ignored")
    project_info = payload.get("project") or {}
    remote_project_id = project_info.get("id") if isinstance(project_info, dict) else project_info
    project = (
        LabelStudioProject.objects.select_related("taxonomy_version")
        .filter(labelstudio_id=remote_project_id)
        .first()
    )
    if project is None:
        return WebhookReport(action=action, handled=False, annotations=0, detail="unknown project")
    if project.mode == LabelStudioProject.Mode.ADJUDICATION:
        from annotation.services.labelstudio_adjudication import handle_adjudication_webhook

        return handle_adjudication_webhook(project, payload)  # annotations there are decisions
    groups: set[tuple[int, int]] = set()
    with transaction.atomic():
        if action == "ANNOTATIONS_DELETED":
            count, rows = _mark_deleted(project, payload)
            for row in rows:
                groups.add((row.task_id, row.annotator_id))
        else:
            annotators: dict[int, Annotator] = {}
            count = 0
            for task, annotation in _delivered_annotations(project, payload):
                row, was_changed = _record_annotation(project, task, annotation, None, annotators)
                count += 1
                if row is not None and was_changed:
                    groups.add((row.task_id, row.annotator_id))
        _rebuild_labels(groups, project)
    return WebhookReport(action=action, handled=True, annotations=count)


# --- demo ----------------------------------------------------------------------------------------


def start_labelstudio_for_demo(
    *,
    work_set: str,
    taxonomy: str,
    mode: str = LabelStudioProject.Mode.ASSISTED,
    overlap: int = 1,
    install: bool = True,
) -> dict:
    """Start the local Label Studio (scripts/labelstudio start), push the work set, print where and as
    whom to start annotating. Returns url, username, password and the push report."""
    import subprocess

    from django.conf import settings as django_settings

    script = django_settings.BASE_DIR / "scripts" / "labelstudio"
    if install:
        subprocess.run([str(script), "install"], check=True)  # quick when already installed
    subprocess.run([str(script), "start"], check=True)
    env_file = django_settings.VAR_DIR / "labelstudio.env"
    values = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    client = labelstudio_client(
        url=values["LABEL_STUDIO_URL"], api_key=values["LABEL_STUDIO_API_KEY"]
    )
    report = push_labelstudio(
        work_set=work_set,
        taxonomy=taxonomy,
        mode=mode,
        overlap=overlap,
        client=client,
        webhook_secret=values["LABEL_STUDIO_WEBHOOK_SECRET"],
    )
    print(f"Label Studio: {report.url}")
    print(f"  log in as {values['LABEL_STUDIO_USERNAME']} / {values['LABEL_STUDIO_PASSWORD']}")
    print(
        f"  {report.tasks_total} tasks ({mode} mode); labels come back by webhook while"
        " `manage.py runserver` runs, or with `manage.py sync_labelstudio`"
    )
    return {
        "url": report.url,
        "username": values["LABEL_STUDIO_USERNAME"],
        "password": values["LABEL_STUDIO_PASSWORD"],
        "report": report,
    }

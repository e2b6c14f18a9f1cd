"""The connection to Label Studio: the checked SDK client, transport and API errors turned into clear
messages, the listings the platform reads (tasks, users, the annotation export), the project lookup,
the webhook registration, and `open_project`: the one way a push finds or makes its project."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
from django.conf import settings
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.request_options import RequestOptions
from label_studio_sdk.types import AllRolesProjectList, RoleBasedTask

from annotation.errors import ErrorMapError
from annotation.models import LabelStudioProject, LabelStudioTask
from annotation.services.labelstudio.config import PREDICTION_KEY

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/labelstudio/webhook/"
WEBHOOK_SECRET_HEADER = "X-ErrorMap-Webhook-Secret"
WEBHOOK_ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
]


class LabelStudioError(ErrorMapError):
    """Label Studio is unreachable, refused the token, or answered with an error."""


def labelstudio_client(
    *, url: str | None = None, api_key: str | None = None, check: bool = True
) -> LabelStudio:
    """An SDK client for the configured Label Studio, checked (unless `check` is false: one request
    less, for webhook reads): clear errors when unreachable or refused."""
    url = (url or settings.LABEL_STUDIO_URL).rstrip("/")
    api_key = api_key if api_key is not None else settings.LABEL_STUDIO_API_KEY
    if not api_key:
        raise LabelStudioError(
            "no Label Studio API token: set LABEL_STUDIO_API_KEY or run `scripts/labelstudio start`,"
            " which writes var/labelstudio.env"
        )
    client = LabelStudio(  # type: ignore[no-untyped-call]  # the SDK's LabelStudio.__init__ is unannotated
        base_url=url, api_key=api_key, timeout=120, max_retries=1
    )
    client.errormap_url = url  # type: ignore[attr-defined]
    if check:
        with labelstudio_errors(url):
            client.users.whoami()
    return client


def client_url(client: LabelStudio) -> str:
    """The base URL a client talks to (for messages and links)."""
    return cast(str, getattr(client, "errormap_url", settings.LABEL_STUDIO_URL))


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


# --- listings ------------------------------------------------------------------------------------


def list_task_data(client: LabelStudio, project_id: int) -> dict[int, dict[str, Any]]:
    """Label Studio task id -> task data, for every task in the project."""
    # The SDK's extended list() returns SyncPagerExt[T] with T unbound: the base client's item type.
    tasks = cast(
        "Iterable[RoleBasedTask]",
        client.tasks.list(project=project_id, fields="task_only", page_size=1000),
    )
    with labelstudio_errors(client_url(client)):
        # The SDK types `id` Optional (for requests); a listed task always has one.
        return {task.id: task.data or {} for task in tasks}  # type: ignore[misc]


def task_ids_by_prediction(task_data: dict[int, dict[str, Any]]) -> dict[int, int]:
    """prediction id -> Label Studio task id (the first if there are several), from task data."""
    found: dict[int, int] = {}
    for task_id, data in sorted(task_data.items()):
        prediction_id = data.get(PREDICTION_KEY)
        if prediction_id is not None:
            found.setdefault(int(prediction_id), task_id)
    return found


def list_users(client: LabelStudio) -> dict[int, dict[str, Any]]:
    """Label Studio user id -> {"email", "username"}, for every user the token can see."""
    with labelstudio_errors(client_url(client)):
        return {
            u.id: {"email": u.email or "", "username": u.username or ""}
            for u in client.users.list()
        }


def export_annotations(
    client: LabelStudio, project_id: int, *, task_ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Every task of the project (or only these Label Studio task ids) with its annotations, as Label
    Studio holds them now, in one request."""
    options: RequestOptions | None = None
    if task_ids is not None:
        # Label Studio reads the subset from `ids[]`; the SDK's own `ids` argument is sent as `ids`.
        options = {"additional_query_parameters": {"ids[]": [str(t) for t in sorted(task_ids)]}}
    with labelstudio_errors(client_url(client)):
        body = b"".join(
            client.projects.exports.download_sync(
                project_id, export_type="JSON", download_all_tasks=True, request_options=options
            )
        )
    return cast("list[dict[str, Any]]", json.loads(body))


def refresh_task_data(
    client: LabelStudio, *, wanted: dict[int, dict[str, Any]], remote: dict[int, dict[str, Any]]
) -> set[int]:
    """Give tasks (Label Studio task id -> data) the data they should show where Label Studio holds
    something else; annotations and predictions are not touched. -> the task ids updated."""
    stale = {t for t, data in wanted.items() if t in remote and remote[t] != data}
    with labelstudio_errors(client_url(client)):
        for task_id in sorted(stale):
            client.tasks.update(id=str(task_id), data=wanted[task_id])
    return stale


# --- projects and webhooks -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSpec:
    """The project a push wants: the platform's row for it (None before the first push), the title it is
    adopted by, the settings it is made with (`create`) and those of them kept in step on a project that
    already exists (`keep`), and the fields of a new local row (`record`)."""

    local: LabelStudioProject | None
    title: str
    create: dict[str, Any]
    record: dict[str, Any]
    keep: tuple[str, ...] = ()


def find_or_create_project(client: LabelStudio, spec: ProjectSpec) -> tuple[LabelStudioProject, bool]:
    """The platform's project if Label Studio still has it; else one adopted by `spec.title` (a push
    interrupted right after creating it), else a new one made with `spec.create`; a new local row gets
    `spec.record`. -> (the local row, made in Label Studio now)."""
    local, title, url = spec.local, spec.title, client_url(client)
    if local is not None:
        try:
            with labelstudio_errors(url):
                client.projects.get(id=local.labelstudio_id)
            return local, False
        except LabelStudioError as exc:
            if "HTTP 404" not in str(exc):
                raise
            logger.warning(
                "Label Studio project %s is gone; creating it again", local.labelstudio_id
            )
            local.delete()
    with labelstudio_errors(url):
        # As in list_task_data: the extended list() loses the item type.
        listed = cast("Iterable[AllRolesProjectList]", client.projects.list(title=title, page_size=100))
        existing = [p for p in listed if p.title == title]
        if existing:
            remote_id, created = existing[0].id, False
        else:
            remote_id, created = client.projects.create(title=title, **spec.create).id, True
    # A listed or created project always has an id (the SDK types it Optional, for requests).
    local = LabelStudioProject.objects.create(
        labelstudio_id=remote_id, title=title, **spec.record  # type: ignore[misc]
    )
    return local, created


def public_url() -> tuple[str, str]:
    """Where Label Studio reaches this platform, and why there: ERRORMAP_PUBLIC_URL when set; else the
    URL scripts/web serves at while it runs; else 127.0.0.1 on ERRORMAP_WEB_PORT."""
    if settings.ERRORMAP_PUBLIC_URL:
        return settings.ERRORMAP_PUBLIC_URL.rstrip("/"), "ERRORMAP_PUBLIC_URL"
    url_file, pid_file = settings.VAR_DIR / "web.url", settings.VAR_DIR / "web.pid"
    try:
        served = url_file.read_text().strip()
        os.kill(int(pid_file.read_text().strip()), 0)  # the server that wrote it still runs
    except (OSError, ValueError):
        served = ""
    if served:
        return served.rstrip("/"), f"scripts/web ({url_file.name})"
    return f"http://127.0.0.1:{settings.ERRORMAP_WEB_PORT}", "ERRORMAP_WEB_PORT"


@dataclass(frozen=True)
class WebhookState:
    """The project's webhook after ensure_webhook: where it points, and a warning when that is not
    where the platform would have put it."""

    url: str
    warning: str = ""


def update_remote_settings(
    client: LabelStudio, project: LabelStudioProject, wanted: Mapping[str, Any]
) -> frozenset[str]:
    """Bring the remote project's settings (`label_config`, `maximum_annotations`, ...) in step with
    `wanted` where Label Studio holds something else (a config compared without its outer white
    space). -> the names of the settings updated."""
    with labelstudio_errors(client_url(client)):
        remote = client.projects.get(id=project.labelstudio_id)
        updates: dict[str, Any] = {}
        for name, value in wanted.items():
            held = getattr(remote, name)
            same = (held or "").strip() == value.strip() if name == "label_config" else held == value
            if not same:
                updates[name] = value
        if updates:
            client.projects.update(id=project.labelstudio_id, **updates)
    return frozenset(updates)


def adopt_remote_tasks(
    project: LabelStudioProject,
    remote_data: dict[int, dict[str, Any]],
    *,
    expected: set[int],
    assisted: Mapping[int, bool] | None = None,
) -> tuple[set[int], int]:
    """Record tasks that Label Studio holds but the platform does not (a push stopped between import and
    record), with their mixed-mode draw. Only tasks of `expected` predictions (what this push may hold)
    are adopted: a project adopted by title can hold tasks of another database's predictions, whose ids
    mean nothing here. -> (prediction ids with a task, tasks adopted)."""
    remote = task_ids_by_prediction(remote_data)
    known = set(project.tasks.values_list("prediction_id", flat=True))
    assisted = assisted or {}
    recovered = [
        LabelStudioTask(
            project=project, prediction_id=pid, labelstudio_id=tid, assisted=assisted.get(pid)
        )
        for pid, tid in remote.items()
        if pid not in known and pid in expected
    ]
    LabelStudioTask.objects.filter(
        labelstudio_id__in=[t.labelstudio_id for t in recovered]
    ).delete()
    LabelStudioTask.objects.bulk_create(recovered, batch_size=1000)
    return known | {t.prediction_id for t in recovered}, len(recovered)


@dataclass(frozen=True)
class OpenProject:
    """A push's project, ready for its tasks: found, adopted by title or made; its settings and webhook
    in step; the tasks Label Studio already holds recorded."""

    project: LabelStudioProject
    created: bool  # made by this push (so it holds no tasks yet)
    settings_updated: frozenset[str]  # remote settings brought in step (none on a project just made)
    webhook: WebhookState
    remote_tasks: dict[int, dict[str, Any]]  # Label Studio task id -> data, as listed before the push
    done: frozenset[int]  # prediction ids that have a task in the project
    recovered: int  # tasks Label Studio held that the platform had not recorded (now recorded)


def open_project(
    client: LabelStudio,
    spec: ProjectSpec,
    *,
    expected: set[int],
    assisted: Mapping[int, bool] | None = None,
    webhook_secret: str | None = None,
    webhook_url: str | None = None,
) -> OpenProject:
    """The one way a push opens its project: find or create it (find_or_create_project); on one that
    already existed, bring the `spec.keep` settings in step; make sure of its webhook (ensure_webhook);
    list its tasks and record those of `expected` predictions that a stopped push left unrecorded, with
    their mixed-mode draw from `assisted` (adopt_remote_tasks)."""
    project, created = find_or_create_project(client, spec)
    settings_updated = (
        frozenset() if created else update_remote_settings(client, project, {k: spec.create[k] for k in spec.keep})
    )
    webhook = ensure_webhook(client, project, secret=webhook_secret, url=webhook_url)
    # A project made by this push holds no tasks yet: one listing request less.
    remote_tasks = {} if created else list_task_data(client, project.labelstudio_id)
    done, recovered = adopt_remote_tasks(project, remote_tasks, expected=expected, assisted=assisted)
    return OpenProject(project, created, settings_updated, webhook, remote_tasks, frozenset(done), recovered)


@dataclass(frozen=True, kw_only=True)
class ProjectPush:
    """What every push says about its Label Studio project (the push reports add their own counts)."""

    project_id: int
    labelstudio_project_id: int
    url: str  # the project's data page in Label Studio
    created_project: bool
    config_updated: bool
    # Where the project's webhook points, and why it is not where the platform would put it (if so).
    webhook_url: str = ""
    webhook_warning: str = ""


def project_push_fields(opened: OpenProject, *, base_url: str, config_updated: bool) -> dict[str, Any]:
    """The ProjectPush fields of a push report on an opened project (spread into its constructor)."""
    project = opened.project
    return {
        "project_id": project.pk,
        "labelstudio_project_id": project.labelstudio_id,
        "url": f"{base_url}/projects/{project.labelstudio_id}/data",
        "created_project": opened.created,
        "config_updated": config_updated,
        "webhook_url": opened.webhook.url,
        "webhook_warning": opened.webhook.warning,
    }


def ensure_webhook(
    client: LabelStudio,
    project: LabelStudioProject,
    *,
    secret: str | None = None,
    url: str | None = None,
) -> WebhookState:
    """One webhook per project to this platform's endpoint, carrying the shared secret. The endpoint is
    `url`, else public_url(). A webhook that already points elsewhere is moved only when the URL was
    given (`url` or ERRORMAP_PUBLIC_URL); a derived default never overwrites it: it is kept, with a
    warning saying how to move it."""
    secret = secret if secret is not None else settings.LABEL_STUDIO_WEBHOOK_SECRET
    if not secret:
        logger.warning(
            "LABEL_STUDIO_WEBHOOK_SECRET is empty: no webhook; run sync_labelstudio instead"
        )
        return WebhookState(
            url="",
            warning="no webhook (LABEL_STUDIO_WEBHOOK_SECRET is empty): labels come by sync_labelstudio only",
        )
    if url is not None:
        base, explicit = url.rstrip("/"), True
    else:
        base, source = public_url()
        explicit = source == "ERRORMAP_PUBLIC_URL"
    target = base + WEBHOOK_PATH
    warning = ""
    with labelstudio_errors(client_url(client)):
        hooks = [h for h in client.webhooks.list(project=str(project.labelstudio_id)) if h.project]
        ours = [h for h in hooks if h.project == project.labelstudio_id and WEBHOOK_PATH in h.url]
        if ours and ours[0].url != target and not explicit:
            warning = (
                f"project {project.labelstudio_id}'s webhook goes to {ours[0].url}, not {target} (derived"
                f" from {source}); kept. To move it, push with --webhook-url or set ERRORMAP_PUBLIC_URL."
            )
            logger.warning(warning)
            target = ours[0].url
        wanted = {
            "url": target,
            "headers": {WEBHOOK_SECRET_HEADER: secret},
            "send_payload": True,
            "send_for_all_actions": False,  # otherwise the actions list is ignored
            "actions": WEBHOOK_ACTIONS,
            "is_active": True,
        }
        if ours:
            hook = ours[0]
            if (
                hook.url != target
                or (hook.headers or {}) != wanted["headers"]
                or set(hook.actions or []) != set(WEBHOOK_ACTIONS)
                or not hook.is_active
            ):
                client.webhooks.update(id=hook.id, **wanted)
            for extra in ours[1:]:
                client.webhooks.delete(id=extra.id)
        else:
            client.webhooks.create(project=project.labelstudio_id, **wanted)
    if project.webhook_url != target:
        project.webhook_url = target
        project.save(update_fields=["webhook_url"])
    return WebhookState(url=target, warning=warning)

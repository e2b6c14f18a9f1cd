"""Celery tasks of the annotation stages: thin wrappers that call the same services as the commands.

A task is acknowledged when it ends (server/settings.py): a worker that dies mid-task leaves it to
another worker, and the services are keyed and resumable, so the rerun duplicates nothing."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from celery import shared_task
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from annotation.services.ingest_uploads import ingest_upload
from annotation.services.judging import analyze_failures
from annotation.services.labelstudio.adjudication import push_adjudication
from annotation.services.labelstudio.push import push_labelstudio
from annotation.services.labelstudio.sync import (
    COALESCED_ACTION,
    WebhookDelivery,
    handle_webhook,
    sync_labelstudio,
)


def report_fields(report: Any) -> dict[str, Any]:
    """A stage report as plain data (what a task returns when its result is kept)."""
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return {"report": report}


# How long a queued read-back keeps later deliveries of its project out of the queue, at most (its
# task clears the mark when it starts), and how long unread ids are kept in Redis.
PENDING_SECONDS = 600
PENDING_IDS_SECONDS = 86_400


# One Redis command each (a script runs atomically): a pipeline object costs the view more CPU to
# build in redis-py than the round trip it saves.
_ADD_IDS = """
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('SADD', KEYS[1], unpack(ARGV, 4, 3 + n)); redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if #ARGV > 3 + n then
  redis.call('SADD', KEYS[2], unpack(ARGV, 4 + n, #ARGV)); redis.call('EXPIRE', KEYS[2], ARGV[1])
end
if redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""
_TAKE_IDS = """
redis.call('DEL', KEYS[3])
local annotations = redis.call('SMEMBERS', KEYS[1])
local tasks = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {annotations, tasks}
"""


class _PendingWebhookIds:
    """Ids named by deliveries that no worker has read back yet, per Label Studio project, in Redis,
    and a mark while a read-back of the project waits in the queue: a burst of deliveries becomes one
    task that reads all their tasks from Label Studio at once."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _keys(project_id: int | None) -> tuple[str, str, str]:
        prefix = f"errormap:webhook-pending:{project_id}"
        return f"{prefix}:annotations", f"{prefix}:tasks", f"{prefix}:queued"

    def add(self, project_id: int | None, annotation_ids: Iterable[int], task_ids: Iterable[int]) -> bool:
        """Add the ids; True when no read-back was waiting (the caller queues one, now marked)."""
        annotation_ids, task_ids = list(annotation_ids), list(task_ids)
        args = [PENDING_IDS_SECONDS, PENDING_SECONDS, len(annotation_ids), *annotation_ids, *task_ids]
        return bool(_script(self.client, _ADD_IDS)(keys=self._keys(project_id), args=args, client=self.client))

    def unmark(self, project_id: int | None) -> None:
        self.client.delete(self._keys(project_id)[2])

    def take(self, project_id: int | None) -> tuple[set[int], set[int]]:
        """Clear the mark and take every pending id of the project in one step: each id is taken
        once, and ids added from now on queue a new read-back."""
        annotations, tasks = _script(self.client, _TAKE_IDS)(keys=self._keys(project_id), args=[], client=self.client)
        return {int(i) for i in annotations}, {int(i) for i in tasks}


_scripts: dict[str, Any] = {}


def _script(client: Any, source: str) -> Any:
    """A Lua script run by EVALSHA (loaded on first use), made once per process; each call names
    the client (the cache hands out a new client object per use, over one connection pool)."""
    if source not in _scripts:
        _scripts[source] = client.register_script(source)
    return _scripts[source]


def _pending_webhook_ids() -> _PendingWebhookIds | None:
    """The shared store of pending ids: Redis when the cache is Redis (REDIS_URL), which the web
    processes and the workers share. Without it each delivery's ids travel in its own message."""
    backend = caches["default"]  # the backend itself (`cache` is a proxy to it)
    if isinstance(backend, RedisCache):
        return _PendingWebhookIds(backend._cache.get_client(write=True))  # the cache's own connection pool
    return None


def queue_webhook_delivery(delivery: WebhookDelivery) -> bool:
    """Hand a delivery's ids to a worker; True when this queued a task, False when a task already
    waiting for the project will read them.

    The ids join the project's pending set and, in the same round trip, the project is marked unless
    a read-back waits already; only the delivery that set the mark queues one. The task clears the
    mark as it takes the set, so ids added once it has started queue a new task and nothing is
    missed; a delivery is only a hint, so reading a task once for many is enough."""
    pending = _pending_webhook_ids()
    if pending is None:
        handle_labelstudio_webhook_task.delay(project_id=delivery.project_id,
                                              annotation_ids=list(delivery.annotation_ids),
                                              task_ids=list(delivery.task_ids))
        return True
    if not pending.add(delivery.project_id, delivery.annotation_ids, delivery.task_ids):
        return False
    try:
        handle_labelstudio_webhook_task.delay(project_id=delivery.project_id)
    except BaseException:
        pending.unmark(delivery.project_id)
        raise
    return True


# A delivery is a hint (the periodic sync is the safety net), so a failed read-back is tried a few
# times, then left to the sync.
@shared_task(autoretry_for=(Exception,), max_retries=3, retry_backoff=2, retry_jitter=True)
def handle_labelstudio_webhook_task(
    *, project_id: int | None, annotation_ids: list[int] | None = None, task_ids: list[int] | None = None
) -> dict[str, Any]:
    """Read back from Label Studio, in one request, the tasks of every annotation that deliveries for
    this project named since the last such task (the view answered at once)."""
    annotations, tasks = set(annotation_ids or ()), set(task_ids or ())
    pending = _pending_webhook_ids()
    if pending is not None:
        taken = pending.take(project_id)
        annotations, tasks = annotations | taken[0], tasks | taken[1]
    if not annotations and not tasks:
        return {"detail": "nothing pending (read by an earlier task)"}
    delivery = WebhookDelivery(action=COALESCED_ACTION, project_id=project_id,
                               annotation_ids=tuple(sorted(annotations)), task_ids=tuple(sorted(tasks)))
    try:
        return report_fields(handle_webhook(delivery))
    except Exception:
        if pending is not None:  # back to the set for the retry (or a later task) to read
            pending.add(project_id, annotations, tasks)
        raise


@shared_task
def ingest_upload_task(*, upload_id: int) -> dict[str, Any]:
    """An upload of `POST /api/ingest/`: ingest its stored file (a repeat of a finished one does nothing)."""
    upload = ingest_upload(upload_id=upload_id)
    return {"upload": upload.pk, "status": upload.status}


@shared_task
def analyze_task(**options: Any) -> dict[str, Any]:
    """`analyze`: the judge analyses each unique failure of a work set (options as the service's)."""
    return report_fields(analyze_failures(**options))


@shared_task
def push_labelstudio_task(**options: Any) -> dict[str, Any]:
    """`push_labelstudio`: create or update a work set's Label Studio project."""
    return report_fields(push_labelstudio(**options))


@shared_task
def push_adjudication_task(**options: Any) -> dict[str, Any]:
    """`push_adjudication`: the adjudication queue as a Label Studio project."""
    return report_fields(push_adjudication(**options))


@shared_task
def sync_labelstudio_task(**options: Any) -> dict[str, Any]:
    """`sync_labelstudio`: reconcile the label table with Label Studio (also run by beat)."""
    return report_fields(sync_labelstudio(**options))

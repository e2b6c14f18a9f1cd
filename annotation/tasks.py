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

from annotation.changes import prune_change_log
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


# How long a project's mark (a read-back queued or reading) keeps later deliveries out of the queue
# without being renewed: the reader renews it at each read, so only a reader that died lets it lapse.
PENDING_SECONDS = 300
PENDING_IDS_SECONDS = 86_400  # how long unread ids are kept in Redis
READS_PER_TASK = 20  # then the project is handed to a fresh task, so no task runs without end


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
local annotations = redis.call('SMEMBERS', KEYS[1])
local tasks = redis.call('SMEMBERS', KEYS[2])
if #annotations == 0 and #tasks == 0 then
  redis.call('DEL', KEYS[3])
  return {{}, {}}
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], 1, 'EX', ARGV[1])
return {annotations, tasks}
"""


class _PendingWebhookIds:
    """Ids named by deliveries that no worker has read back yet, per Label Studio project, in Redis,
    and a mark while a read-back of the project is queued or reading: deliveries meanwhile only add
    their ids, and the one reader of the project reads them all in its next Label Studio export."""

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
        """Take every pending id of the project in one step (each id is taken once), renewing the
        mark; with none left, clear the mark instead, so the next delivery queues a new read-back."""
        annotations, tasks = _script(self.client, _TAKE_IDS)(
            keys=self._keys(project_id), args=[PENDING_SECONDS], client=self.client)
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
    """Hand a delivery's ids to a worker; True when this queued a task, False when the project's
    read-back (queued or reading) will read them.

    The ids join the project's pending set and, in the same step, the project is marked unless a
    read-back holds it already; only the delivery that set the mark queues one. The reader takes
    the set again after each read and clears the mark only when the set is empty (atomically), so
    nothing added meanwhile is missed; a delivery is only a hint, so one read serves many."""
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


def _read_back(project_id: int | None, annotations: set[int], tasks: set[int]) -> dict[str, Any]:
    delivery = WebhookDelivery(action=COALESCED_ACTION, project_id=project_id,
                               annotation_ids=tuple(sorted(annotations)), task_ids=tuple(sorted(tasks)))
    return report_fields(handle_webhook(delivery))


# A delivery is a hint (the periodic sync is the safety net), so a failed read-back is tried a few
# times, then left to the sync.
@shared_task(autoretry_for=(Exception,), max_retries=3, retry_backoff=2, retry_jitter=True)
def handle_labelstudio_webhook_task(
    *, project_id: int | None, annotation_ids: list[int] | None = None, task_ids: list[int] | None = None
) -> dict[str, Any]:
    """The project's reader: read back from Label Studio, one export per round, the tasks of every
    annotation that deliveries named, until none is pending (the view answered each at once).
    Without Redis, read back the ids this message carries."""
    pending = _pending_webhook_ids()
    if pending is None:
        return {"reads": 1, "last": _read_back(project_id, set(annotation_ids or ()), set(task_ids or ()))}
    if annotation_ids or task_ids:  # a message that carried ids: they join the set this reader reads
        pending.add(project_id, annotation_ids or (), task_ids or ())
    reports: list[dict[str, Any]] = []
    for _ in range(READS_PER_TASK):
        annotations, tasks = pending.take(project_id)
        if not annotations and not tasks:
            break
        try:
            reports.append(_read_back(project_id, annotations, tasks))
        except Exception:  # back to the set; the retry is the project's reader (the mark stays)
            pending.add(project_id, annotations, tasks)
            raise
    else:  # still reading after READS_PER_TASK rounds: a fresh task goes on (the mark stays set)
        handle_labelstudio_webhook_task.delay(project_id=project_id)
    return {"reads": len(reports), "last": reports[-1] if reports else None}


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


@shared_task
def prune_change_log_task() -> int:
    """The periodic trim of the change log (beat), which otherwise gains a row per write."""
    return prune_change_log()

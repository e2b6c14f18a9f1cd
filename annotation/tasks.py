"""Celery tasks of the annotation stages: thin wrappers that call the same services as the commands.

A task is acknowledged when it ends (server/settings.py): a worker that dies mid-task leaves it to
another worker, and the services are keyed and resumable, so the rerun duplicates nothing."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from celery import shared_task
from django.core.cache import cache

from annotation.services.ingest_uploads import ingest_upload
from annotation.services.judging import analyze_failures
from annotation.services.labelstudio.adjudication import push_adjudication
from annotation.services.labelstudio.push import push_labelstudio
from annotation.services.labelstudio.sync import WebhookDelivery, handle_webhook, sync_labelstudio


def report_fields(report: Any) -> dict[str, Any]:
    """A stage report as plain data (what a task returns when its result is kept)."""
    return dataclasses.asdict(report) if dataclasses.is_dataclass(report) else {"report": report}


# How long a queued delivery keeps later identical ones out of the queue, at most (its task clears it).
PENDING_SECONDS = 600


def _pending_key(fields: dict[str, Any]) -> str:
    return "webhook-pending:" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def queue_webhook_delivery(delivery: WebhookDelivery) -> bool:
    """Queue a delivery for a worker, unless the same one is already waiting; True when queued.

    A waiting delivery covers a repeat: its task re-reads the annotations from Label Studio when it
    starts, after the change the repeat announced. The task clears its mark before that read, so a
    delivery arriving once it has started is queued again and nothing is missed."""
    fields = {"action": delivery.action, "project_id": delivery.project_id,
              "annotation_ids": list(delivery.annotation_ids), "task_ids": list(delivery.task_ids)}
    key = _pending_key(fields)
    if not cache.add(key, 1, PENDING_SECONDS):
        return False
    try:
        handle_labelstudio_webhook_task.delay(**fields)
    except BaseException:
        cache.delete(key)
        raise
    return True


# A delivery is a hint (the periodic sync is the safety net), so a failed one is tried a few times,
# then left to the sync.
@shared_task(autoretry_for=(Exception,), max_retries=3, retry_backoff=2, retry_jitter=True)
def handle_labelstudio_webhook_task(
    *, action: str, project_id: int | None, annotation_ids: list[int], task_ids: list[int]
) -> dict[str, Any]:
    """Act on one Label Studio webhook delivery (the view answered at once): re-read what it names."""
    cache.delete(_pending_key({"action": action, "project_id": project_id, "annotation_ids": annotation_ids,
                               "task_ids": task_ids}))
    delivery = WebhookDelivery(action=action, project_id=project_id, annotation_ids=tuple(annotation_ids),
                               task_ids=tuple(task_ids))
    return report_fields(handle_webhook(delivery))


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

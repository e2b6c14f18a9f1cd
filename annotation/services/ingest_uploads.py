"""Results files uploaded through the API: kept privately under var/, ingested by a task, polled by id."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.errors import InputError
from annotation.models import IngestUpload
from annotation.services.ingest import ingest_results

logger = logging.getLogger(__name__)


def uploads_folder() -> Path:
    """var/uploads (0700): uploaded files wait here, readable by this account only, until ingested."""
    folder = Path(settings.VAR_DIR) / "uploads"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


# An upload streams within one request; a file this old in incoming/ is left by a request that died
# mid-way (its process killed), which no `finally` could remove.
STALE_INCOMING_SECONDS = 6 * 3600


def incoming_folder() -> Path:
    """Where a request streams its upload before the upload is accepted (same filesystem: a rename).

    Files left there by requests that died are removed on the way."""
    folder = uploads_folder() / "incoming"
    folder.mkdir(mode=0o700, exist_ok=True)
    cutoff = time.time() - STALE_INCOMING_SECONDS
    for left in folder.iterdir():
        try:
            if left.stat().st_mtime < cutoff:
                left.unlink()
        except FileNotFoundError:  # accepted or removed by its own request meanwhile
            pass
    return folder


def upload_key(*, sha256: str, dataset: str, fmt: str) -> str:
    """The identity of an upload: the same bytes for the same dataset and format are one upload."""
    return hashlib.sha256(json.dumps([sha256, dataset, fmt]).encode()).hexdigest()


def stored_path(upload: IngestUpload) -> Path:
    """The upload's file while it waits: its own folder, under the (sanitised) name it came with,
    whose suffix tells the format."""
    return uploads_folder() / upload.key / upload.name


def accept_ingest_upload(
    *, received: Path, sha256: str, size: int, name: str, dataset: str, fmt: str, uploaded_by: str = ""
) -> tuple[IngestUpload, bool]:
    """Record an upload streamed to `received`; True when it needs an ingest task.

    The same upload again is the existing row, and `received` is dropped: only a retryable failure
    (not the file's fault) is queued again."""
    key = upload_key(sha256=sha256, dataset=dataset, fmt=fmt)
    try:
        with transaction.atomic():
            upload, created = IngestUpload.objects.select_for_update().get_or_create(
                key=key, defaults={"sha256": sha256, "name": name, "size": size, "dataset": dataset,
                                   "format": fmt, "uploaded_by": uploaded_by})
            if not created and not (upload.status == IngestUpload.Status.FAILED and upload.retryable):
                return upload, False
            target = stored_path(upload)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(received, target)
            if not created:
                upload.status, upload.error, upload.retryable, upload.report = IngestUpload.Status.QUEUED, "", False, {}
                upload.started_at = upload.finished_at = None
                upload.save()
            return upload, True
    finally:
        received.unlink(missing_ok=True)


def ingest_upload(*, upload_id: int) -> IngestUpload:
    """Ingest a queued upload (the task's work); its row ends done with the report, or failed with
    the `FILE:LINE` error. Done or failed uploads are left as they are, so a repeated task is a no-op.

    A 'running' upload is taken again: its task was handed out anew because its worker died, and
    the ingest of the one file is all-or-nothing and idempotent."""
    claimed = IngestUpload.objects.filter(
        pk=upload_id, status__in=(IngestUpload.Status.QUEUED, IngestUpload.Status.RUNNING)
    ).update(status=IngestUpload.Status.RUNNING, started_at=timezone.now())
    upload = IngestUpload.objects.get(pk=upload_id)
    if not claimed:
        return upload
    path = stored_path(upload)
    try:
        report = ingest_results(paths=[path], dataset=upload.dataset or None, fmt=upload.format)
    except InputError as exc:
        # The stored path is ours; the client knows the file by the name it sent.
        where = upload.name if exc.path == str(path) else str(exc.path).replace(str(path.parent) + os.sep, "")
        line = f":{exc.line}" if exc.line is not None else ""
        _finish(upload, IngestUpload.Status.FAILED, error=f"{where}{line}: {exc.message}")
    except Exception as exc:  # not the file's fault: recorded, and the same upload sent again retries it
        logger.exception("ingest of upload %s failed", upload_id)
        _finish(upload, IngestUpload.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:10_000], retryable=True)
    else:
        files = [{"path": upload.name, "format": f.format, "rows": f.rows, "created": f.created,
                  "updated": f.updated, "unchanged": f.unchanged} for f in report.files]
        _finish(upload, IngestUpload.Status.DONE, report={"rows": report.rows, "datasets": report.datasets,
                                                          "files": files})
    shutil.rmtree(path.parent, ignore_errors=True)
    return upload


def forget_ingest_upload(upload: IngestUpload) -> None:
    """Undo an accepted upload whose task could not be queued: its row and file go, so the same
    upload sent again is accepted afresh."""
    shutil.rmtree(stored_path(upload).parent, ignore_errors=True)
    upload.delete()


def _finish(upload: IngestUpload, status: str, *, error: str = "", retryable: bool = False,
            report: dict[str, object] | None = None) -> None:
    upload.status, upload.error, upload.retryable, upload.report = status, error, retryable, report or {}
    upload.finished_at = timezone.now()
    upload.save(update_fields=["status", "error", "retryable", "report", "finished_at"])

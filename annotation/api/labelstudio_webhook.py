"""The endpoint Label Studio calls when annotations are created, updated or deleted.

A delivery is a hint: after the shared-secret check, the view takes the project and annotation ids from it
and `handle_webhook` reads their state back from Label Studio. Label Studio delivers inside the annotator's
request with a 1 s timeout and no retry; sync_labelstudio reconciles whatever a delivery missed."""

from __future__ import annotations

import hmac
import json
import logging
import time

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from annotation.services.labelstudio.client import WEBHOOK_SECRET_HEADER
from annotation.services.labelstudio.sync import (
    WebhookDelivery,
    WebhookReport,
    handle_webhook,
    parse_webhook_delivery,
)

logger = logging.getLogger(__name__)


def _apply(delivery: WebhookDelivery) -> WebhookReport:
    """Apply a delivery, retrying briefly when SQLite reports a lock (deliveries can arrive together)."""
    for attempt in range(6):
        try:
            return handle_webhook(delivery)
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@csrf_exempt
@require_POST
def labelstudio_webhook(request: HttpRequest) -> JsonResponse:
    """POST from Label Studio: 403 without the shared secret, 400 on a body that is not a JSON object."""
    expected = settings.LABEL_STUDIO_WEBHOOK_SECRET
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if not expected:
        return JsonResponse({"detail": "webhook secret not configured"}, status=503)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return JsonResponse({"detail": "bad or missing webhook secret"}, status=403)
    try:
        payload = json.loads(request.body or b"{}")
    except (ValueError, RecursionError) as exc:
        return JsonResponse({"detail": f"invalid JSON: {str(exc)[:200]}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"detail": "the payload must be a JSON object"}, status=400)
    delivery = parse_webhook_delivery(payload)
    try:
        report = _apply(delivery)
    except Exception:  # never fail Label Studio's request; the next sync reconciles
        logger.exception("webhook delivery %s could not be applied", delivery.action)
        return JsonResponse({"status": "deferred to sync"}, status=202)
    return JsonResponse(
        {
            "status": "ok",
            "action": report.action,
            "handled": report.handled,
            "annotations": report.annotations,
        }
    )

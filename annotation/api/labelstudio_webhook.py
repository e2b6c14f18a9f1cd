"""The endpoint Label Studio calls when annotations are created, updated or deleted.

A delivery is a hint: after the shared-secret check, the view takes the project and annotation ids
from it, hands them to a task (joining the project's waiting read-back, if any) and answers at once
(Label Studio delivers once, inside the annotator's request, with a short timeout and no retry). A
worker reads their state back from Label Studio (in process when no broker is configured);
sync_labelstudio reconciles whatever a delivery missed."""
from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from annotation.services.labelstudio.client import WEBHOOK_ACTIONS, WEBHOOK_SECRET_HEADER
from annotation.services.labelstudio.sync import parse_webhook_delivery
from annotation.tasks import queue_webhook_delivery

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def labelstudio_webhook(request: HttpRequest) -> JsonResponse:
    """POST from Label Studio: 403 without the shared secret, 400 on a body that is not a JSON object,
    else 200 as soon as the delivery's ids are queued."""
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
    action = delivery.action[:100]
    if delivery.action not in WEBHOOK_ACTIONS:
        return JsonResponse({"status": "ignored", "action": action})
    try:
        queued = queue_webhook_delivery(delivery)  # only the ids travel: nothing else of the payload
    except Exception:  # never fail Label Studio's request (broker down, or in process: a failed apply)
        logger.exception("webhook delivery %s could not be queued or applied", action)
        return JsonResponse({"status": "deferred to sync", "action": action}, status=202)
    return JsonResponse({"status": "queued" if queued else "already queued", "action": action})

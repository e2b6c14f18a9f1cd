"""The API's one mapping of domain errors to responses (DRF's EXCEPTION_HANDLER, for both apps):
ErrorMapError -> 400, missing objects -> 404."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from annotation.errors import ErrorMapError


def errormap_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus ErrorMapError as 400 and Model.DoesNotExist as 404, both as {"detail": ...}."""
    if isinstance(exc, ErrorMapError):
        return Response({"detail": str(exc)}, status=getattr(exc, "status_code", status.HTTP_400_BAD_REQUEST))
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"detail": str(exc) or "not found"}, status=status.HTTP_404_NOT_FOUND)
    return exception_handler(exc, context)

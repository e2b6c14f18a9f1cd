"""The API's one mapping of domain errors to responses: ErrorMapError -> 400, missing objects -> 404."""
from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from annotation.errors import ErrorMapError


def errormap_exception_handler(exc, context):
    """DRF's handler, plus ErrorMapError as 400 and Model.DoesNotExist as 404, both as {"detail": ...}."""
    if isinstance(exc, ErrorMapError):
        return Response({"detail": str(exc)}, status=getattr(exc, "status_code", status.HTTP_400_BAD_REQUEST))
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"detail": str(exc) or "not found"}, status=status.HTTP_404_NOT_FOUND)
    return exception_handler(exc, context)


class ErrorMapAPIMixin:
    """Mixed into every ErrorMap API view so the mapping holds without a settings change."""

    def get_exception_handler(self):
        return errormap_exception_handler

"""Request checks that hold for every view, whatever the database behind it."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class RefuseNulBytes:
    """A NUL byte in the path or the query string is answered with 400, never passed to a filter:
    PostgreSQL refuses NUL in text (a DataError, so a 500) where SQLite would just find nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any("\x00" in key or any("\x00" in value for value in values)
                                         for key, values in request.GET.lists()):
            return JsonResponse({"detail": "NUL bytes are not allowed in the URL"}, status=400)
        return self.get_response(request)

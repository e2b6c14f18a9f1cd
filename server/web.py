"""Plumbing shared by both apps' web pages: a page that renders a template from a page context of its query."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def query_page(template: str, context: Callable[[Mapping[str, Any]], Mapping[str, Any]],
               doc: str = "") -> Callable[[HttpRequest], HttpResponse]:
    """A login-only view rendering `template` with `context(request.GET)`: the page context (from
    `*/pages.py`, shared with the static report) does the work; the view only parses and renders."""

    @login_required
    def view(request: HttpRequest) -> HttpResponse:
        return render(request, template, context(request.GET))

    view.__doc__ = doc or None
    return view

"""Web pages for the dashboard, agreement, the judge, adjudication and annotation progress: each
parses its query, takes its context from annotation.pages (shared with the static report) and renders."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation import pages, selectors


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "errormap/dashboard.html", pages.dashboard_context())


@login_required
def agreement_page(request: HttpRequest) -> HttpResponse:
    return render(request, "errormap/agreement.html", pages.agreement_context(request.GET))


@login_required
def judge_page(request: HttpRequest) -> HttpResponse:
    """Judge reliability: the judge audit (vs human majority and gold) and judge-with-humans agreement."""
    return render(request, "errormap/judge.html", pages.judge_context(request.GET))


@login_required
def adjudication_page(request: HttpRequest) -> HttpResponse:
    context = pages.adjudication_context(request.GET.get("status") or "open")
    page = Paginator(context.pop("items"), 25).get_page(request.GET.get("page"))
    return render(request, "errormap/adjudication.html", {**context, "page": page})


@login_required
def labelstudio_page(request: HttpRequest) -> HttpResponse:
    return render(request, "errormap/labelstudio.html", {"progress": selectors.labelstudio_progress()})

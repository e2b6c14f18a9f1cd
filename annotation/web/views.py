"""Web pages for the dashboard, agreement, the judge, adjudication and annotation progress: each
parses its query, takes its context from annotation.pages (shared with the static report) and renders."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotation import pages, selectors
from annotation.errors import ErrorMapError
from annotation.services.adjudication import resolve_item
from server.web import query_page


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "errormap/dashboard.html", pages.dashboard_context())


agreement_page = query_page("errormap/agreement.html", pages.agreement_context)
judge_page = query_page(
    "errormap/judge.html", pages.judge_context,
    "Judge reliability: the judge audit (vs human majority and gold) and judge-with-humans agreement.")


@login_required
def adjudication_page(request: HttpRequest) -> HttpResponse:
    context = pages.adjudication_context(request.GET.get("status") or "open")
    page = Paginator(context.pop("items"), 25).get_page(request.GET.get("page"))
    return render(request, "errormap/adjudication.html",
                  {**context, "page": page, "rows": pages.adjudication_rows(page.object_list)})


@login_required
def item_page(request: HttpRequest, pk: str) -> HttpResponse:
    """One item: its texts, every label on it, and its adjudication (staff decide it here)."""
    context = pages.item_context(int(pk))
    if context is None:
        raise Http404("no such item")
    return render(request, "errormap/item.html", context)


@require_POST
@login_required
def resolve_page(request: HttpRequest, pk: str) -> HttpResponse:
    """A staff member's decision on a queue item, through the same `resolve_item` as the command and
    the API; who decided is the signed-in user. Others get 403."""
    if not request.user.is_staff:
        raise PermissionDenied("only staff adjudicate")
    categories = [c for c in request.POST.getlist("category") if c.strip()]
    try:
        decision = resolve_item(item=str(pk), categories=categories, by=request.user.get_username(),
                                reason=request.POST.get("reason", ""), external_id=f"web:{request.user.pk}")
    except ErrorMapError as exc:
        messages.error(request, f"Queue item {pk} not resolved: {exc}")
    else:
        messages.success(request, f"Queue item {pk} resolved as {'; '.join(decision.categories)}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("adjudication")
    return HttpResponseRedirect(target)


@login_required
def labelstudio_page(request: HttpRequest) -> HttpResponse:
    return render(request, "errormap/labelstudio.html", {"progress": selectors.labelstudio_progress()})

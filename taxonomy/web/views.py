"""Web pages for failure signatures and the ErrorAtlas: each takes its context from taxonomy.pages
(shared with the static report) and renders."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render

from annotation.errors import ErrorMapError
from server.web import query_page
from taxonomy import pages
from taxonomy.services.proposals import accept_proposals

signatures_page = query_page("errormap/signatures.html", pages.signatures_context)
atlas_page = query_page("errormap/atlas.html", pages.atlas_context)
atlas_examples_page = query_page(
    "errormap/atlas_examples.html", pages.atlas_examples_context,
    "Failures labelled with one category (or its subtree): input, output, reference, judge analysis, labels.")
atlas_versions_page = query_page("errormap/atlas_versions.html", pages.atlas_versions_context,
                                 "Two taxonomy versions side by side, with the mapping between them.")


@login_required
def proposals_page(request: HttpRequest) -> HttpResponse:
    """A version's change proposals with their evidence; staff may accept some (a new version)."""
    spec = request.GET.get("taxonomy") or request.POST.get("taxonomy") or ""
    accepted, error = None, ""
    if request.method == "POST":
        if not request.user.is_staff:
            return HttpResponseForbidden("only staff may accept taxonomy proposals")
        try:
            ids = [int(i) for i in request.POST.getlist("ids")]
            accepted = accept_proposals(taxonomy=spec.partition("@")[0], ids=ids, by=request.user.get_username(),
                                        reason=request.POST.get("reason", ""))
        except (ValueError, ErrorMapError) as exc:
            error = str(exc)
    return render(request, "errormap/proposals.html",
                  pages.proposals_context(spec, accepted=accepted, error=error))


@login_required
def learning_curve_page(request: HttpRequest) -> HttpResponse:
    """The latest stored learning curve of the judge (as `judge_learning_curve` measured it): a read."""
    return render(request, "errormap/learning_curve.html",
                  pages.learning_curve_context(request.GET.get("taxonomy") or None))

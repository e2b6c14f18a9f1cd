"""A self-contained static HTML report (inline SVG, inline CSS, no scripts, no network) of the
failure signatures, the ErrorAtlas and agreement, rendered with the web UI's own templates."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils import timezone

from annotation.core.output_files import ensure_directory, write_file
from annotation.errors import ErrorMapError
from annotation.models import Label
from annotation.pages import agreement_context, judge_context
from taxonomy.pages import atlas_context, signatures_context
from taxonomy.services.signatures import SOURCES, failure_signatures


@dataclass(frozen=True)
class ReportFiles:
    out_dir: str
    pages: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _params(**values: Any) -> QueryDict:
    query = QueryDict(mutable=True)
    for key, value in values.items():
        if value not in (None, ""):
            query[key] = str(value)
    return query


def write_report(*, out_dir: Path, taxonomy: str | None = None, depth: int = 1) -> ReportFiles:
    """Write index.html and one page per view into out_dir; returns the files written."""
    ensure_directory(out_dir)
    sources = [s for s in SOURCES if Label.objects.filter(source=s).exists()]
    if not sources:
        raise ErrorMapError("no labels yet: nothing to report (import labels or run the judge first)")
    pages: list[tuple[str, str, str]] = []  # file, title, the taxonomy version it uses
    skipped: list[str] = []
    data: dict[str, Any] = {"generated_at": timezone.now().isoformat(), "signatures": {}}

    def page(name: str, title: str, template: str, context: dict[str, Any], version: str) -> None:
        html = render_to_string(template, {**context, "report_mode": True})
        write_file(out_dir / name, html)
        pages.append((name, title, version))

    for source in sources:
        for by in ("model", "dataset"):
            context = signatures_context(_params(taxonomy=taxonomy, source=source, by=by, depth=depth))
            if "error" in context:
                skipped.append(f"signatures {source} by {by}: {context['error']}")
                continue
            page(f"signatures-{source}-by-{by}.html", f"Failure signatures · {source} labels · by {by}",
                 "errormap/signatures.html", context, context["report"].taxonomy_version)
            data["signatures"][f"{source}/{by}"] = failure_signatures(
                taxonomy=taxonomy, source=source, by=by, depth=depth).to_dict()
        context = atlas_context(_params(taxonomy=taxonomy, source=source))
        if "error" in context:
            skipped.append(f"atlas {source}: {context['error']}")
        else:
            page(f"atlas-{source}.html", f"ErrorAtlas · {source} labels", "errormap/atlas.html", context,
                 context["report"].taxonomy_version)
    if Label.Source.HUMAN in sources:
        context = agreement_context(_params(taxonomy=taxonomy))
        if "error" in context:
            skipped.append(f"agreement: {context['error']}")
        else:
            page("agreement.html", "Agreement among human annotators", "errormap/agreement.html", context,
                 context["report"].taxonomy_version)
    if Label.Source.JUDGE in sources and {Label.Source.HUMAN, Label.Source.GOLD} & set(sources):
        context = judge_context(_params(taxonomy=taxonomy))
        if "audit" not in context:
            skipped.append(f"judge audit: {context.get('audit_error') or context.get('error')}")
        else:
            page("judge.html", "Judge audit: the judge against the human majority and gold", "errormap/judge.html",
                 context, context["audit"].taxonomy_version)
            data["judge_audit"] = context["audit"].to_dict()
    write_file(out_dir / "data.json", json.dumps(data, indent=1))
    index = render_to_string("errormap/report_index.html", {
        "report_mode": True, "pages": pages, "skipped": skipped, "generated_at": data["generated_at"],
    })
    write_file(out_dir / "index.html", index)
    return ReportFiles(out_dir=str(out_dir), pages=["index.html", *[p for p, _, _ in pages], "data.json"],
                       skipped=skipped)

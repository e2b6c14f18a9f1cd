"""Judge services: build a judge backend from settings, cache its answers, run stage 1 (`analyze`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.core.judge import JudgeBackend, JudgeError, Usage
from annotation.core.prompts import PromptTemplate, load_prompt
from annotation.errors import ErrorMapError
from annotation.models import Annotator, PromptVersion, ResponseCache

JUDGES = ("offline", "openai")


class DatabaseStore:
    """ResponseStore on the ResponseCache table: a re-run or resumed run pays nothing twice."""

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of query parameters
            chunk = keys[start : start + 500]
            found.update(ResponseCache.objects.filter(key__in=chunk).values_list("key", "response"))
        return found

    def put_many(self, entries: dict[str, tuple[dict[str, Any], Usage]]) -> None:
        rows = [
            ResponseCache(
                key=key,
                response=response,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
            for key, (response, usage) in entries.items()
        ]
        with transaction.atomic():
            ResponseCache.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def get_judge_backend(
    judge: str | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    response_format: str | None = None,
    prompt_dir: str | None = None,
    gold: list | None = None,
) -> JudgeBackend:
    """The judge named `judge` ("offline" or "openai"; default ERRORMAP_JUDGE), configured from settings.

    The openai backend caches every valid answer in ResponseCache. `gold` (offline only) is a list of
    `annotation.core.offline_judge.GoldExample`; when None they are loaded from gold labels.
    """
    judge = judge or settings.ERRORMAP_JUDGE
    if judge == "offline":
        from annotation.core.offline_judge import OfflineJudge

        if gold is None:
            gold = load_gold_examples()
        return OfflineJudge(gold=gold)
    if judge == "openai":
        from annotation.core.openai_judge import OpenAIJudge

        try:
            return OpenAIJudge(
                model=model or settings.ERRORMAP_JUDGE_MODEL,
                base_url=base_url or settings.OPENAI_BASE_URL or None,
                api_key=api_key or settings.OPENAI_API_KEY or os.environ.get("OPENAI_API_KEY") or None,
                prompt=load_prompt("analyze", prompt_dir or _setting("ERRORMAP_PROMPT_DIR", None)),
                store=DatabaseStore(),
                concurrency=concurrency or settings.ERRORMAP_JUDGE_CONCURRENCY,
                timeout=timeout or settings.ERRORMAP_JUDGE_TIMEOUT,
                max_retries=settings.ERRORMAP_JUDGE_MAX_RETRIES if max_retries is None else max_retries,
                response_format=response_format or _setting("ERRORMAP_JUDGE_RESPONSE_FORMAT", "auto"),
            )
        except JudgeError as exc:
            raise ErrorMapError(str(exc)) from exc
    raise ErrorMapError(f"unknown judge {judge!r}: choose one of {', '.join(JUDGES)}")


def load_gold_examples() -> list:
    """Gold-labelled failures as the offline judge's retrieval memory (empty until gold exists)."""
    from annotation.core.offline_judge import GoldExample
    from annotation.models import Label

    rows = (
        Label.objects.filter(source=Label.Source.GOLD)
        .select_related("prediction__example", "category")
        .order_by("id")
    )
    return [
        GoldExample(
            input_text=label.prediction.example.input_text,
            output_text=label.prediction.output_text,
            reference=label.prediction.example.reference,
            category=label.category.name,
            error_title=label.error_title or label.category.name,
            error_summary=label.error_summary or label.rationale,
        )
        for label in rows.iterator(chunk_size=2000)
    ]


def record_prompt_version(template: PromptTemplate) -> PromptVersion:
    """The PromptVersion row of this exact template text (created on first use)."""
    try:
        version, _ = PromptVersion.objects.get_or_create(
            sha256=template.sha256,
            defaults={"stage": template.stage, "name": template.name, "template": template.text},
        )
    except IntegrityError:  # a concurrent run created it first
        version = PromptVersion.objects.get(sha256=template.sha256)
    return version


def judge_annotator(backend: JudgeBackend) -> Annotator:
    """The Annotator ("annotator zero") for this backend: judge:offline or judge:openai:<model>."""
    name = "judge:offline" if backend.name == "offline" else f"judge:{backend.name}:{backend.model_name}"
    annotator, _ = Annotator.objects.get_or_create(name=name, defaults={"kind": Annotator.Kind.JUDGE})
    return annotator


def run_cost_usd(usage: Usage) -> float | None:
    """Cost of `usage` at ERRORMAP_JUDGE_PRICE_INPUT / _OUTPUT (USD per million tokens), None if unset."""
    price_in = _setting("ERRORMAP_JUDGE_PRICE_INPUT", None)
    price_out = _setting("ERRORMAP_JUDGE_PRICE_OUTPUT", None)
    if price_in is None and price_out is None:
        return None
    return round(
        (usage.prompt_tokens * float(price_in or 0) + usage.completion_tokens * float(price_out or 0)) / 1e6, 6
    )


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, None) or os.environ.get(name) or default


@dataclass(frozen=True)
class AnalyzeReport:
    """What one `analyze` run did."""

    run_id: int
    judge: str
    model: str
    prompt_version: str
    failures: int  # failures in scope
    unique: int  # unique (input, output, reference) among them
    already_done: int  # unique contents that had an analysis before this run
    analysed: int  # new ok analyses
    failed: int  # new failed analyses (reason recorded)
    usage: dict[str, int]
    cost_usd: float | None

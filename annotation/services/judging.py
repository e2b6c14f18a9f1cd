"""Judge services: build a judge backend from settings, cache its answers, run stage 1 (`analyze`)."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.core.crossfit import text_key
from annotation.core.judge import (
    AnalysisRequest,
    AnalysisResult,
    JudgeBackend,
    JudgeError,
    PipelinedBackend,
    Usage,
    stable_hash,
)
from annotation.core.prompts import PromptTemplate, load_prompt
from annotation.errors import ErrorMapError
from annotation.models import (
    Analysis,
    Annotator,
    Label,
    Prediction,
    PromptVersion,
    ResponseCache,
    StageRun,
    WorkSet,
    WorkSetFailure,
)
from annotation.services.bulk_sql import bulk_cursor, insert_rows
from annotation.services.runs import progress, stage_run
from taxonomy.models import Category

JUDGES = ("offline", "openai")


_CACHE_TABLE = ResponseCache._meta.db_table
_CACHE_COLUMNS = ("key", "response", "prompt_tokens", "completion_tokens", "created_at")


class DatabaseStore:
    """ResponseStore on the ResponseCache table: a re-run or resumed run pays nothing twice."""

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of query parameters
            chunk = keys[start : start + 500]
            found.update(ResponseCache.objects.filter(key__in=chunk).values_list("key", "response"))
        return found

    def put_many(self, entries: dict[str, tuple[dict[str, Any], Usage]]) -> None:
        # Plain tuples in one bulk INSERT (the ORM's per-object preparation was most of this write).
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = [
            (key, connection.ops.adapt_json_value(response, None), usage.prompt_tokens, usage.completion_tokens, now)
            for key, (response, usage) in entries.items()
        ]
        with transaction.atomic(savepoint=False), bulk_cursor() as cursor:
            insert_rows(cursor, _CACHE_TABLE, _CACHE_COLUMNS, rows, ignore_conflicts=True)


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
    gold: list[Any] | None = None,
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


def json_completion(backend: JudgeBackend) -> Callable[[str, list[dict[str, str]], dict[str, Any]], Any]:
    """(stage, messages, schema) -> JSON answer, on the backend's complete_json (retries, cache)."""

    def complete(stage: str, messages: list[dict[str, str]], schema: dict[str, Any]) -> Any:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        user = next(m["content"] for m in messages if m["role"] == "user")
        return backend.complete_json(stage, user, schema, system=system)

    return complete


def load_gold_examples() -> list[Any]:
    """Gold-labelled failures as the offline judge's retrieval memory (empty until gold exists)."""
    from annotation.core.offline_judge import GoldExample

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


def gold_text(label: Label, category: Category) -> str:
    """What a gold label says in words, for retrieval: its (or its analysis') title and summary,
    the category's name when it has no title of its own (imported and auto-gold labels)."""
    analysis = label.analysis
    return gold_words(label.error_title, label.error_summary, label.rationale, category.name,
                      analysis.error_title if analysis else "", analysis.error_summary if analysis else "")


def gold_words(title: str, summary: str, rationale: str, category_name: str, analysis_title: str = "",
               analysis_summary: str = "") -> str:
    """gold_text from plain values: title twice (else the analysis' title, else the category name), then
    the summary (else the analysis' summary, else the rationale)."""
    title = title or analysis_title or category_name
    summary = summary or analysis_summary or rationale
    return f"{title} {title} {summary}".strip()


def text_keys(prediction_ids: list[int]) -> dict[int, str]:
    """prediction id -> text key of its (input, output)."""
    keys: dict[int, str] = {}
    for start in range(0, len(prediction_ids), 500):
        rows = Prediction.objects.filter(pk__in=prediction_ids[start:start + 500]).values_list(
            "pk", "example__input_text", "output_text")
        keys.update({pk: text_key(i, o) for pk, i, o in rows})
    return keys


def prediction_text_key(prediction: Prediction) -> str:
    """The text key of one prediction (its example's input and its output)."""
    return text_key(prediction.example.input_text, prediction.output_text)


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
    value = getattr(settings, name, None)
    return default if value is None else value


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


# --- stage 1: analyze ----------------------------------------------------------------------------


def analysis_key(content_key: str, judge_config: dict[str, Any]) -> str:
    """Analysis.key: the content and everything in the judge's configuration that shapes the answer
    (`backend.config()`, read once per run: the offline judge's hashes all of its gold)."""
    return stable_hash("analysis", content_key, judge_config)


def resolve_work_set(work_set: WorkSet | str | None) -> WorkSet | None:
    """The named work set, or the most recent one when None (None if there is none)."""
    if isinstance(work_set, WorkSet):
        return work_set
    if work_set:
        try:
            return WorkSet.objects.get(name=work_set)
        except WorkSet.DoesNotExist:
            names = ", ".join(WorkSet.objects.order_by("-created_at").values_list("name", flat=True)[:10])
            raise ErrorMapError(f"no work set named {work_set!r} (known: {names or 'none'})") from None
    return WorkSet.objects.order_by("-created_at", "-id").first()


def failures_in_scope(work_set: WorkSet | None) -> QuerySet[Prediction]:
    """The failures a stage works on: the work set's, or every failure when there is no work set."""
    if work_set is None:
        return Prediction.objects.filter(is_failure=True)
    return Prediction.objects.filter(
        id__in=WorkSetFailure.objects.filter(work_set=work_set).values("prediction_id")
    )


def analyze_failures(
    *,
    work_set: WorkSet | str | None = None,
    judge: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    k_correct: int = 1,
    backend: JudgeBackend | None = None,
    batch_size: int | None = None,
    retry_failed: bool = False,
) -> AnalyzeReport:
    """Stage 1 of ErrorMap: one analysis per unique failing (input, output, reference) in scope.

    Resumable: results are committed batch by batch and contents that already have an analysis
    under this judge configuration are skipped, so a killed run continues where it stopped;
    answers the backend paid for sit in ResponseCache and are never asked for again. Failed
    analyses are kept with their reason; those that failed in transport (or all, with
    `retry_failed`) are tried again.
    """
    if k_correct < 0:
        raise ErrorMapError("--k-correct must be 0 or more")
    if limit is not None and limit < 0:
        raise ErrorMapError("--limit must be 0 or more")
    owns_backend = backend is None
    backend = backend or get_judge_backend(judge, model=model)
    ws = resolve_work_set(work_set)
    scope = failures_in_scope(ws)

    # One representative prediction per content key (the first ingested), in a stable order.
    representative: dict[str, int] = {}
    n_failures = 0
    for pid, ckey in scope.order_by("id").values_list("id", "content_key").iterator(chunk_size=5000):
        n_failures += 1
        representative.setdefault(ckey, pid)
    judge_config = backend.config()
    keys = {ckey: analysis_key(ckey, judge_config) for ckey in representative}
    existing: dict[str, tuple[int, str, str]] = {}
    key_list = list(keys.values())
    for start in range(0, len(key_list), 500):
        for akey, aid, status, reason in Analysis.objects.filter(key__in=key_list[start : start + 500]).values_list(
            "key", "id", "status", "failure_reason"
        ):
            existing[akey] = (aid, status, reason)

    def needs_work(ckey: str) -> bool:
        found = existing.get(keys[ckey])
        if found is None:
            return True
        _, status, reason = found
        return status == Analysis.Status.FAILED and (retry_failed or reason.startswith(TRANSPORT_PREFIX))

    todo = [ckey for ckey in representative if needs_work(ckey)]
    already_done = len(representative) - len(todo)
    if limit is not None:
        todo = todo[:limit]

    prompt_version = record_prompt_version(backend.prompt)
    config = {
        "work_set": ws.name if ws else None,
        "judge": backend.config(),
        "k_correct": k_correct,
        "limit": limit,
        "prompt_version": prompt_version.sha256,
    }
    concurrency = getattr(backend, "concurrency", 1)
    # Small enough that a killed run loses little in flight, large enough to keep every slot busy.
    size = batch_size or (max(64, 4 * concurrency) if backend.name != "offline" else 500)
    usage = Usage()
    analysed = failed = 0
    with stage_run("analyze", config) as run:
        run.counts = {"failures": n_failures, "unique": len(representative), "already_done": already_done,
                      "to_do": len(todo)}
        run.save(update_fields=["counts"])
        bar = progress(None, total=len(todo), desc=f"analyze ({backend.name})", unit="failure")
        def store(chunk: list[str], results: list[AnalysisResult]) -> None:
            nonlocal analysed, failed, usage
            for result in results:
                usage = usage + result.usage
            ok = sum(1 for r in results if r.ok)
            analysed += ok
            failed += len(results) - ok
            run.counts.update(analysed=analysed, failed=failed, **usage.as_dict(), cost_usd=run_cost_usd(usage))
            # The batch's analyses and the run's progress commit together (one transaction).
            with transaction.atomic():
                _store_results(results, keys, existing, backend, prompt_version, run)
                run.save(update_fields=["counts"])
            bar.update(len(chunk))

        # A backend that can ask in the background gets the next batch started before this one is
        # stored, so its requests never wait for the database (at most two batches in flight).
        pipeline = backend if isinstance(backend, PipelinedBackend) else None
        waiting = None
        try:
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                requests = build_requests(chunk, representative, k_correct)
                if pipeline is None:
                    store(chunk, backend.analyze(requests))
                    continue
                started = (chunk, pipeline.start_analysis(requests))
                if waiting is not None:
                    store(waiting[0], pipeline.finish_analysis(waiting[1]))
                waiting = started
            if waiting is not None and pipeline is not None:
                store(waiting[0], pipeline.finish_analysis(waiting[1]))
        except JudgeError as exc:
            raise ErrorMapError(f"analyze stopped: {exc}") from exc
        finally:
            bar.close()
            if owns_backend and hasattr(backend, "close"):
                backend.close()

    return AnalyzeReport(
        run_id=run.id,
        judge=backend.name,
        model=backend.model_name,
        prompt_version=f"{prompt_version.name}@{prompt_version.sha256[:12]}",
        failures=n_failures,
        unique=len(representative),
        already_done=already_done,
        analysed=analysed,
        failed=failed,
        usage=usage.as_dict(),
        cost_usd=run_cost_usd(usage),
    )


TRANSPORT_PREFIX = "transport:"


def build_requests(chunk: list[str], representative: dict[str, int], k_correct: int) -> list[AnalysisRequest]:
    """What the judge sees for each content key: the failure, its reference and up to K correct outputs."""
    fields = ("id", "example_id", "model_id", "output_text", "example__input_text", "example__reference",
              "example__dataset__name", "model__name")
    preds = {
        row[0]: row
        for row in Prediction.objects.filter(id__in=[representative[c] for c in chunk]).values_list(*fields)
    }
    correct: dict[int, list[tuple[int, str]]] = {}
    if k_correct:
        example_ids = {row[1] for row in preds.values()}
        rows = (
            Prediction.objects.filter(example_id__in=example_ids, is_failure=False)
            .order_by("example_id", "-score", "model__name")
            .values_list("example_id", "model_id", "output_text")
        )
        for example_id, model_id, text in rows:
            correct.setdefault(example_id, []).append((model_id, text))
    requests = []
    for ckey in chunk:
        _, example_id, model_id, output_text, input_text, reference, dataset, model = preds[representative[ckey]]
        others: list[str] = []
        for other_model, text in correct.get(example_id, []):
            if len(others) >= k_correct:
                break
            if other_model != model_id and text.strip() and text not in others:
                others.append(text)
        requests.append(
            AnalysisRequest(
                content_key=ckey,
                input_text=input_text,
                output_text=output_text,
                reference=reference,
                correct_outputs=tuple(others),
                dataset=dataset,
                model=model,
            )
        )
    return requests


_ANALYSIS_TABLE = Analysis._meta.db_table
_ANALYSIS_COLUMNS = ("key", "content_key", "backend", "model_name", "prompt_version_id", "status", "required_criteria",
                     "error_title", "error_summary", "confidence", "failure_reason", "run_id", "created_at")


def _store_results(
    results: list[AnalysisResult],
    keys: dict[str, str],
    existing: dict[str, tuple[int, str, str]],
    backend: JudgeBackend,
    prompt_version: PromptVersion,
    run: StageRun,
) -> None:
    """Write one batch of analyses: new ones as plain tuples in one bulk INSERT, failed ones replaced
    in place (a key already taken by a concurrent run is left to it)."""
    new_rows, replaced = [], []
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    adapt_json = connection.ops.adapt_json_value
    for r in results:
        key = keys[r.content_key]
        status = Analysis.Status.OK if r.ok else Analysis.Status.FAILED
        reason = (
            TRANSPORT_PREFIX + " " + r.failure_reason.removeprefix(TRANSPORT_PREFIX).strip()
            if (r.retryable and not r.ok)
            else r.failure_reason
        )
        found = existing.get(key)
        if found is None:
            new_rows.append((key, r.content_key, backend.name, backend.model_name, prompt_version.pk, str(status),
                             adapt_json(r.required_criteria, None), r.error_title, r.error_summary, r.confidence,
                             reason, run.pk, now))
        else:
            replaced.append(Analysis(
                id=found[0], key=key, content_key=r.content_key, backend=backend.name, model_name=backend.model_name,
                prompt_version=prompt_version, status=status, required_criteria=r.required_criteria,
                error_title=r.error_title, error_summary=r.error_summary, confidence=r.confidence,
                failure_reason=reason, run=run,
            ))
    with transaction.atomic(savepoint=False):
        if new_rows:
            with bulk_cursor() as cursor:
                insert_rows(cursor, _ANALYSIS_TABLE, _ANALYSIS_COLUMNS, new_rows, ignore_conflicts=True)
        if replaced:
            Analysis.objects.bulk_update(
                replaced,
                ["status", "required_criteria", "error_title", "error_summary", "confidence", "failure_reason",
                 "run", "prompt_version"],
                batch_size=500,
            )


def analyses_for_predictions(
    predictions: QuerySet[Prediction], *, judge: str = "offline", model: str = "", status: str = "ok"
) -> dict[int, Analysis]:
    """prediction id -> its latest analysis by this judge (backend name and model), for later stages."""
    pairs = list(predictions.values_list("id", "content_key"))
    by_content: dict[str, Analysis] = {}
    ckeys = sorted({c for _, c in pairs})
    for start in range(0, len(ckeys), 500):
        rows = Analysis.objects.filter(
            content_key__in=ckeys[start : start + 500], backend=judge, model_name=model or "", status=status
        ).order_by("id")
        for a in rows:
            by_content[a.content_key] = a  # later rows win
    return {pid: by_content[c] for pid, c in pairs if c in by_content}

"""The judge on any OpenAI-compatible chat-completions server (vLLM, Ollama, LM Studio, hosted APIs).

No Django here: answers are cached through a `ResponseStore` the caller passes in. Concurrency is
bounded with asyncio; transport errors (timeouts, 429, 5xx) are retried with backoff; answers that
do not parse or validate are retried with the problem fed back, then returned as failed results.
"""
from __future__ import annotations

import asyncio
import json
import random
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Self

import httpx2
import openai
from openai import AsyncOpenAI

from annotation.core.judge import (
    ANALYSIS_SCHEMA,
    AnalysisRequest,
    AnalysisResult,
    JudgeError,
    MemoryStore,
    ResponseStore,
    Usage,
    analysis_from_json,
    failed_result,
    parse_json_answer,
    stable_hash_of_json,
    stable_json,
    strict_schema,
    validate,
)
from annotation.core.prompts import PromptTemplate, load_prompt, render_analysis_messages

# How the answer format is asked for, strongest first; "auto" starts at the top and steps down
# when the server rejects a response_format it does not support.
RESPONSE_FORMATS = ("json_schema", "json_object", "none")

_TRANSPORT_ERRORS = (openai.APITimeoutError, openai.APIConnectionError)

# What `chat.completions.create` sends besides the body: the bearer token. The judge posts through the
# client's generic `post` (same URL, headers, retries and error types) with the body built as `create`
# would send it: create's per-request walk of its parameter types (a no-op on these plain JSON bodies)
# and its answer model were a fifth of the event loop's time, and the judge reads four fields.
_CHAT_PATH = "/chat/completions"
_CHAT_OPTIONS: openai.RequestOptions = {"security": {"bearer_auth": True}}


class _NotACompletion(Exception):
    """A 200 whose body is not a chat completion (not JSON, or JSON without choices): a failed attempt."""


class _DeadlineExceeded(Exception):
    """No complete answer within the per-request deadline (a server dripping bytes never times out a read)."""
_FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


@dataclass
class _Call:
    """One logical JSON call (with its own validation retries)."""

    key: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    schema_name: str
    strict: dict[str, Any]  # the schema as strict structured output wants it


@dataclass
class _Outcome:
    data: dict[str, Any] | None
    content: str
    error: str
    retryable: bool
    usage: Usage


@dataclass
class PendingAnalysis:
    """Stage-1 calls on their way (see OpenAIJudge.start_analysis): collect with finish_analysis."""

    requests: list[AnalysisRequest]
    calls: list[_Call]
    outcomes: dict[int, _Outcome]  # answered from the store
    todo: list[tuple[int, _Call]]  # asked of the server
    first_of_key: dict[str, int]
    future: Future | None


class OpenAIJudge:
    """JudgeBackend on a chat-completions endpoint through the official `openai` client."""

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        prompt: PromptTemplate | None = None,
        store: ResponseStore | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_invalid_retries: int = 2,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        response_format: str = "auto",
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if not model:
            raise JudgeError("the openai judge needs a model name (--model or ERRORMAP_JUDGE_MODEL)")
        if response_format not in ("auto", *RESPONSE_FORMATS):
            raise JudgeError(f"response_format must be auto or one of {RESPONSE_FORMATS}")
        self.model_name = model
        self.base_url = base_url or None
        # The SDK insists on a key; local servers accept anything.
        self.api_key = api_key or "not-needed"
        self.prompt = prompt or load_prompt("analyze")
        self.store: ResponseStore = store if store is not None else MemoryStore()
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.max_invalid_retries = max(0, max_invalid_retries)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.requested_format = response_format
        self.mode = "json_schema" if response_format == "auto" else response_format
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._usage = Usage()
        # One event loop per backend, running in its own thread between calls, so the caller can
        # store one batch while the next is being asked (requests never wait for the database).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._client: AsyncOpenAI | None = None
        self._slots: asyncio.Semaphore | None = None  # `concurrency` requests in flight, across batches
        # What every call of this backend shares, encoded once: the cache key's fixed parts and the
        # strict form of each schema (both would otherwise be rebuilt for every request).
        self._key_head = [stable_json("openai-chat"), stable_json(self.base_url or "https://api.openai.com/v1"),
                          stable_json(self.model_name)]
        self._key_options = stable_json({"temperature": self.temperature, "max_tokens": self.max_tokens})
        self._encoded_schemas: dict[int, tuple[dict[str, Any], str, dict[str, Any]]] = {}

    # --- JudgeBackend ---------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "base_url": self.base_url or "https://api.openai.com/v1",
            "model": self.model_name,
            "prompt_sha256": self.prompt.sha256,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    @property
    def usage(self) -> Usage:
        return self._usage

    def analyze(self, requests: list[AnalysisRequest]) -> list[AnalysisResult]:
        return self.finish_analysis(self.start_analysis(requests))

    def start_analysis(self, requests: list[AnalysisRequest]) -> PendingAnalysis:
        """Start asking stage 1 for `requests` in the background and return at once; answers already
        in the store are taken from it here (on the calling thread)."""
        calls = [
            self._make_call(
                render_analysis_messages(
                    self.prompt,
                    input_text=r.input_text,
                    output_text=r.output_text,
                    reference=r.reference,
                    correct_outputs=r.correct_outputs,
                ),
                ANALYSIS_SCHEMA,
                "errormap_analysis",
            )
            for r in requests
        ]
        return self._start(calls, requests)

    def finish_analysis(self, pending: PendingAnalysis) -> list[AnalysisResult]:
        """Wait for a started batch, store its new valid answers, and return its results in order."""
        outcomes = self._finish(pending)
        requests = pending.requests
        results = []
        for request, outcome in zip(requests, outcomes):
            if outcome.data is None:
                results.append(
                    failed_result(request.content_key, outcome.error, retryable=outcome.retryable, usage=outcome.usage)
                )
                continue
            result = analysis_from_json(outcome.data, content_key=request.content_key)
            results.append(_with_usage(result, outcome.usage))
        return results

    def complete_json(
        self, stage: str, prompt: str, schema: dict[str, Any], *, system: str | None = None
    ) -> dict[str, Any]:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        (outcome,) = self._run([self._make_call(messages, schema, f"errormap_{stage}")])
        if outcome.data is None:
            raise JudgeError(f"{stage}: {outcome.error}")
        return outcome.data

    # --- machinery ------------------------------------------------------------------------

    def _make_call(self, messages: list[dict[str, str]], schema: dict[str, Any], schema_name: str) -> _Call:
        # The key holds what shapes the answer (inspect_ai's rule): never timeouts or concurrency. It is
        # stable_hash("openai-chat", base URL, model, messages, schema, options), with the fixed parts
        # encoded once per backend.
        encoded_schema, strict = self._schema_forms(schema)
        key = stable_hash_of_json([*self._key_head, stable_json(messages), encoded_schema, self._key_options])
        return _Call(key=key, messages=messages, schema=schema, schema_name=_safe_name(schema_name), strict=strict)

    def _schema_forms(self, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The schema's key encoding and its strict form, made once per schema object (the stage
        schemas are module constants; the entry keeps the object, so its id is not reused)."""
        found = self._encoded_schemas.get(id(schema))
        if found is None or found[0] is not schema:
            if len(self._encoded_schemas) >= 64:  # callers that build a schema per call: stay bounded
                self._encoded_schemas.clear()
            found = (schema, stable_json(schema), strict_schema(schema))
            self._encoded_schemas[id(schema)] = found
        return found[1], found[2]

    def _run(self, calls: list[_Call]) -> list[_Outcome]:
        """Answer calls from the store, the rest from the server; store the valid new answers."""
        return self._finish(self._start(calls, []))

    def _start(self, calls: list[_Call], requests: list[AnalysisRequest]) -> PendingAnalysis:
        cached = self.store.get_many(sorted({c.key for c in calls}))
        outcomes: dict[int, _Outcome] = {}
        todo: list[tuple[int, _Call]] = []
        first_of_key: dict[str, int] = {}
        for i, call in enumerate(calls):
            hit = cached.get(call.key)
            if hit is not None:
                # Stored answers were validated against this very schema (it is part of the key).
                data = hit.get("data")
                if not isinstance(data, dict):
                    data = _valid(hit.get("content", ""), call.schema)
                if isinstance(data, dict):
                    outcomes[i] = _Outcome(data, hit["content"], "", False, Usage(cache_hits=1))
                    continue
            if call.key in first_of_key:  # same prompt twice in one batch: ask once
                continue
            first_of_key[call.key] = i
            todo.append((i, call))
        future = self._submit(self._ask_all([c for _, c in todo])) if todo else None
        return PendingAnalysis(requests, calls, outcomes, todo, first_of_key, future)

    def _finish(self, pending: PendingAnalysis) -> list[_Outcome]:
        calls, outcomes, todo, first_of_key = pending.calls, pending.outcomes, pending.todo, pending.first_of_key
        if pending.future is not None:
            fresh = pending.future.result()
            new_entries = {}
            for (i, call), outcome in zip(todo, fresh):
                outcomes[i] = outcome
                if outcome.data is not None:
                    new_entries[call.key] = (
                        {"content": outcome.content, "data": outcome.data, "model": self.model_name},
                        outcome.usage,
                    )
            if new_entries:
                self.store.put_many(new_entries)
        result = []
        for i, call in enumerate(calls):
            if i not in outcomes:  # a duplicate of an earlier call in this batch
                first = outcomes[first_of_key[call.key]]
                outcomes[i] = _Outcome(first.data, first.content, first.error, first.retryable, Usage(cache_hits=1))
            result.append(outcomes[i])
        for outcome in result:
            self._usage = self._usage + outcome.usage
        return result

    def _submit(self, coro: Any) -> Future:
        """Schedule on this backend's own event loop (started on first use, kept between batches so
        connections are reused); the result arrives in the returned future."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._client, self._slots = None, None
            self._loop_thread = threading.Thread(target=self._loop.run_forever, name="openai-judge", daemon=True)
            self._loop_thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        """Cancel what is in flight, close the HTTP connections and the event loop (a later call opens
        new ones)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join()
            loop.close()
        self._loop, self._loop_thread, self._client, self._slots = None, None, None, None

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _ask_all(self, calls: list[_Call]) -> list[_Outcome]:
        if self._client is None:
            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
            )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        client, slots = self._client, self._slots

        async def one(call: _Call) -> _Outcome:
            async with slots:
                return await self._ask(client, call)

        return await asyncio.gather(*(one(c) for c in calls))

    async def _ask(self, client: AsyncOpenAI, call: _Call) -> _Outcome:
        """One call with its validation retries: a bad answer is shown back with what was wrong."""
        messages = list(call.messages)
        usage = Usage()
        problem = ""
        for attempt in range(self.max_invalid_retries + 1):
            try:
                content, call_usage = await self._chat(client, messages, call)
            except _TransportFailure as exc:
                return _Outcome(None, "", f"transport: {exc}", True, usage + exc.usage)
            usage = usage + call_usage
            data = _valid(content, call.schema)
            if isinstance(data, dict):
                return _Outcome(data, content, "", False, usage)
            problem = data
            if attempt < self.max_invalid_retries:
                usage = usage + Usage(invalid_retries=1)
                messages = [
                    *call.messages,
                    {"role": "assistant", "content": content[:4000]},
                    {
                        "role": "user",
                        "content": f"Your answer was not valid: {problem}. Answer again with only "
                        "the JSON object, following the required shape exactly.",
                    },
                ]
        attempts = self.max_invalid_retries + 1
        return _Outcome(None, "", f"invalid answer after {attempts} attempts: {problem}", False, usage)

    async def _chat(
        self, client: AsyncOpenAI, messages: list[dict[str, str]], call: _Call
    ) -> tuple[str, Usage]:
        """One chat completion with transport retries and response_format fallback."""
        usage = Usage()
        attempt = 0
        while True:
            mode = self.mode
            # Keys in the order `create` sends them, so the bytes on the wire are the same.
            body: dict[str, Any] = {"model": self.model_name, "messages": messages}
            if self.max_tokens:
                body["max_tokens"] = self.max_tokens
            if mode == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": call.schema_name, "schema": call.strict, "strict": True},
                }
            elif mode == "json_object":
                body["response_format"] = {"type": "json_object"}
            body["temperature"] = self.temperature
            usage = usage + Usage(requests=1)
            try:
                completion = await self._create(client, body)
            except _FATAL_ERRORS as exc:
                raise JudgeError(f"the judge endpoint refused the request: {_describe(exc)}") from exc
            except openai.BadRequestError as exc:
                if mode != "none" and self.requested_format == "auto" and _about_format(exc):
                    # The server does not support this response_format: step down and ask again.
                    if self.mode == mode:
                        self.mode = RESPONSE_FORMATS[RESPONSE_FORMATS.index(mode) + 1]
                    continue
                raise _TransportFailure(f"bad request: {_describe(exc)}", usage) from exc
            except (openai.RateLimitError, openai.InternalServerError, openai.APIStatusError, *_TRANSPORT_ERRORS,
                    _NotACompletion, _DeadlineExceeded) as exc:
                status = getattr(exc, "status_code", None)
                retryable = status is None or status in (408, 409, 429) or status >= 500
                if not retryable or attempt >= self.max_retries:
                    raise _TransportFailure(f"{_describe(exc)} (after {attempt + 1} attempts)", usage) from exc
                await asyncio.sleep(self._backoff(attempt, exc))
                attempt += 1
                usage = usage + Usage(http_retries=1)
                continue
            tokens = completion.get("usage")
            if isinstance(tokens, dict):
                usage = usage + Usage(
                    prompt_tokens=_count(tokens.get("prompt_tokens")),
                    completion_tokens=_count(tokens.get("completion_tokens")),
                )
            choice = completion["choices"][0]
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            return (content if isinstance(content, str) else ""), usage

    async def _create(self, client: AsyncOpenAI, body: dict[str, Any]) -> dict[str, Any]:
        """One request under a total deadline of `timeout` seconds (the client's own timeout is per read),
        whose answer must be a chat completion with choices (the decoded JSON)."""
        try:
            # asyncio.timeout, not wait_for: no extra task per request. The body is read inside post.
            async with asyncio.timeout(self.timeout):
                response = await client.post(_CHAT_PATH, body=body, cast_to=httpx2.Response, options=_CHAT_OPTIONS)
            completion = json.loads(response.content)
        except TimeoutError as exc:  # the deadline's, not the client's (that is APITimeoutError)
            raise _DeadlineExceeded(f"no complete answer within {self.timeout:g} s") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _NotACompletion(f"the server answered 200 with a body that is not JSON ({exc})") from exc
        if not isinstance(completion, dict):
            raise _NotACompletion(f"the server answered 200 with {type(completion).__name__} "
                                  f"{str(completion)[:80]!r}, not a chat completion")
        if not isinstance(completion.get("choices"), list) or not completion["choices"]:
            raise _NotACompletion("the server answered 200 with JSON that has no choices (not a chat completion)")
        return completion

    def _backoff(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            try:
                return min(self.backoff_max, max(0.0, float(header)))
            except ValueError:
                pass
        delay = float(min(self.backoff_max, self.backoff_base * 2**attempt))
        return delay * (0.5 + random.random() / 2)  # jitter, so concurrent retries spread out


class _TransportFailure(Exception):
    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


def _valid(content: str, schema: dict[str, Any]) -> dict[str, Any] | str:
    """The parsed answer when valid, else a string saying what is wrong."""
    try:
        data: dict[str, Any] = parse_json_answer(content)
    except ValueError as exc:
        return str(exc)
    problems = validate(data, schema)
    if problems:
        return "; ".join(problems[:10])
    return data


def _count(value: object) -> int:
    """A token count from the answer's usage (0 when missing or not a number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _with_usage(result: AnalysisResult, usage: Usage) -> AnalysisResult:
    from dataclasses import replace

    return replace(result, usage=usage)


def _about_format(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("response_format", "json_schema", "json_object", "structured", "schema"))


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{name}{f' {status}' if status else ''}: {message}"


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:64]

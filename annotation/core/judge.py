"""The judge interface (stage 1 of ErrorMap and JSON calls for the later stages), its schemas and parsing.

Plain Python, no Django: backends (offline rules, any OpenAI-compatible server) implement
`JudgeBackend`; the services in `annotation.services.judging` store what they return.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from annotation.core.prompts import PromptTemplate

QUALITIES = ("correct", "partially correct", "incorrect")


# --- requests and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisRequest:
    """One unique failure to analyse: what the judge sees (METHOD.md §2)."""

    content_key: str  # sha256 of (input, output, reference); identical failures share it
    input_text: str
    output_text: str
    reference: str = ""
    # Correct outputs of *other* models on the same example (already limited to K by the caller).
    correct_outputs: tuple[str, ...] = ()
    dataset: str = ""
    model: str = ""


@dataclass(frozen=True)
class Usage:
    """What a call (or a run) cost: HTTP requests actually sent, tokens, cache hits, retries."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    http_retries: int = 0
    invalid_retries: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class AnalysisResult:
    """The judge's answer for one request; `status` is "failed" with a reason instead of being dropped."""

    content_key: str
    status: str  # "ok" | "failed"
    required_criteria: list[dict[str, Any]] = field(default_factory=list)
    error_title: str = ""
    error_summary: str = ""
    confidence: float | None = None
    failure_reason: str = ""
    # True when the failure came from the transport (timeouts, 5xx after retries): worth retrying later.
    retryable: bool = False
    usage: Usage = Usage()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class JudgeBackend(Protocol):
    """What every judge backend offers. Both calls are synchronous; backends may run concurrently inside."""

    name: str  # "offline" | "openai"
    model_name: str  # "" for offline, else the served model name
    # The stage-1 prompt (for the offline judge: its rule catalogue), stored as a PromptVersion.
    prompt: PromptTemplate

    def config(self) -> dict[str, Any]:
        """Everything that changes the answers (model, prompt hash, temperature…), for result keys."""
        ...

    def analyze(self, requests: list[AnalysisRequest]) -> list[AnalysisResult]:
        """Stage 1 for each request, results in the same order; never raises for one bad answer."""
        ...

    def complete_json(
        self, stage: str, prompt: str, schema: dict[str, Any], *, system: str | None = None
    ) -> dict[str, Any]:
        """One JSON answer valid against `schema` (generate/update/review/classify); raises JudgeError."""
        ...

    @property
    def usage(self) -> Usage:
        """Running total over this backend's lifetime."""
        ...


@runtime_checkable
class PipelinedBackend(Protocol):
    """A backend that can start a batch's requests in the background and collect them later, so the
    next batch is in flight while the last one is stored."""

    def start_analysis(self, requests: list[AnalysisRequest]) -> Any: ...

    def finish_analysis(self, pending: Any) -> list[AnalysisResult]: ...


class ResponseStore(Protocol):
    """Where a backend keeps answers it paid for, keyed by a hash of everything that shapes them."""

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Stored responses for those keys that have one."""
        ...

    def put_many(self, entries: dict[str, tuple[dict[str, Any], Usage]]) -> None:
        """Store responses (with the usage they cost); existing keys are left as they are."""
        ...


class MemoryStore:
    """A ResponseStore in a dict (tests, one-off runs)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {k: self.data[k] for k in keys if k in self.data}

    def put_many(self, entries: dict[str, tuple[dict[str, Any], Usage]]) -> None:
        for key, (response, _usage) in entries.items():
            self.data.setdefault(key, response)


class JudgeError(Exception):
    """A judge call that could not produce a valid answer (after its retries)."""


class JudgeUnsupported(JudgeError):
    """The backend cannot do this kind of call (e.g. the offline judge asked for free JSON)."""


# --- stage-1 schema (METHOD.md §2) ------------------------------------------------------------

CRITERION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "criterion": {"type": "string"},
        "present_in_wrong": {"type": "boolean"},
        "quality": {"type": "string", "enum": list(QUALITIES)},
        "evidence": {"type": "string"},
        "comment": {"type": "string"},
    },
    "required": ["criterion", "present_in_wrong", "quality", "evidence", "comment"],
    "additionalProperties": False,
}

ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "required_criteria": {"type": "array", "items": CRITERION_SCHEMA},
        "final_answer": {
            "type": "object",
            "properties": {
                "error_title": {"type": "string"},
                "error_summary": {"type": "string"},
            },
            "required": ["error_title", "error_summary"],
            "additionalProperties": False,
        },
        # Ours, not the reference code's: lets the judge audit draw a calibration curve.
        "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
    "required": ["required_criteria", "final_answer"],
    "additionalProperties": False,
}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI strict structured output wants it: every property listed as required."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                props = node.get("properties", {})
                node["required"] = list(props)
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


# --- validation (the subset of JSON Schema our stage schemas use) -----------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Problems of `value` against `schema` as readable strings (empty when valid)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        ok = any(
            isinstance(value, _TYPES[n]) and not (n in ("integer", "number") and isinstance(value, bool))
            for n in names
        )
        if not ok:
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing required property {name!r}")
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in props:
                    errors.append(f"{path}: unexpected property {name!r}")
        for name, sub in props.items():
            if name in value:
                errors.extend(validate(value[name], sub, f"{path}.{name}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors.extend(validate(item, schema["items"], f"{path}[{i}]"))
    return errors


# --- tolerant JSON parsing --------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_json_answer(text: str) -> Any:
    """The JSON value in a model's answer: plain, in a ``` fence, or the outermost {...} in prose.

    Also forgives trailing commas. Raises ValueError with what was wrong.
    """
    if text is None or not text.strip():
        raise ValueError("empty answer")
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    last_error = "no JSON object found"
    for cand in candidates:
        for attempt in (cand, re.sub(r",\s*([}\]])", r"\1", cand)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError as exc:
                last_error = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    raise ValueError(last_error)


def parse_analysis(text: str, *, content_key: str) -> AnalysisResult:
    """A stage-1 answer turned into an ok AnalysisResult; raises ValueError naming every problem."""
    data = parse_json_answer(text)
    problems = validate(data, ANALYSIS_SCHEMA)
    if problems:
        raise ValueError("; ".join(problems[:10]))
    return analysis_from_json(data, content_key=content_key)


def analysis_from_json(data: dict[str, Any], *, content_key: str) -> AnalysisResult:
    final = data["final_answer"]
    confidence = data.get("confidence")
    return AnalysisResult(
        content_key=content_key,
        status="ok",
        required_criteria=[dict(c) for c in data["required_criteria"]],
        error_title=final["error_title"].strip(),
        error_summary=final["error_summary"].strip(),
        confidence=float(confidence) if confidence is not None else None,
    )


def failed_result(content_key: str, reason: str, *, retryable: bool = False, usage: Usage = Usage()) -> AnalysisResult:
    return AnalysisResult(
        content_key=content_key, status="failed", failure_reason=reason[:5000], retryable=retryable, usage=usage
    )


def stable_hash(*parts: Any) -> str:
    """sha256 of JSON-serialised parts (sorted keys), for cache and result keys."""
    return stable_hash_of_json([stable_json(part) for part in parts])


def stable_json(part: Any) -> str:
    """One part as stable_hash serialises it: a part that repeats across calls is encoded once this way."""
    return json.dumps(part, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def stable_hash_of_json(encoded_parts: list[str]) -> str:
    """stable_hash of parts given already encoded by `stable_json` (the same key, byte for byte: a JSON
    array is its items' encodings joined by commas)."""
    payload = "[" + ",".join(encoded_parts) + "]"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

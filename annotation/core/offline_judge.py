"""The offline judge: rule detectors plus retrieval from gold labels. Deterministic, no network.

It answers in the same shape as the LLM judge (required criteria, error title, error summary) with a
confidence, so every stage after it works the same whichever judge ran.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotation.core.crossfit import DEFAULT_FOLDS, DEFAULT_SEED, assign_folds, text_key
from annotation.core.judge import (
    AnalysisRequest,
    AnalysisResult,
    JudgeUnsupported,
    Usage,
    stable_hash,
)
from annotation.core.prompts import PromptTemplate

RULES_VERSION = "offline-rules-v1"
# Retrieval: a gold neighbour counts when its cosine similarity reaches this.
MIN_GOLD_SIMILARITY = 0.35


@dataclass(frozen=True)
class GoldExample:
    """A failure whose error category a human adjudicated: the offline judge's memory."""

    input_text: str
    output_text: str
    reference: str
    category: str
    error_title: str
    error_summary: str = ""


@dataclass(frozen=True)
class Finding:
    """What one detector saw."""

    detector: str
    title: str
    summary: str
    criterion: str
    confidence: float
    evidence: str = ""


# --- text helpers -----------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_STOPWORDS = {
    "en": {"the", "and", "is", "of", "to", "in", "that", "it", "for", "with", "as", "was", "on", "are", "this"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "zu", "den", "mit", "sich", "ein", "eine", "auf", "für"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "un", "du", "que", "pour", "dans", "pas", "sur"},
    "es": {"el", "la", "los", "las", "y", "es", "que", "de", "en", "un", "una", "por", "para", "con", "del"},
    "it": {"il", "che", "e", "di", "la", "per", "un", "una", "sono", "non", "della", "gli", "con", "del"},
    "pt": {"o", "que", "e", "do", "da", "em", "um", "uma", "para", "não", "com", "os", "as", "dos"},
    "nl": {"de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "zijn", "met", "voor"},
}
_CONTENT_STOP = set().union(*_STOPWORDS.values()) | {
    "a", "an", "be", "or", "by", "at", "from", "so", "we", "they", "which", "there", "their", "have", "has",
}
_REFUSAL = re.compile(
    r"\b(i\s*(?:am|'m)\s*(?:sorry|unable|not able)|i\s*(?:can(?:no|')t|cannot|won't|will not)\s+"
    r"(?:help|answer|assist|provide|comply|do that)|as an ai\b|i must decline|i'm not able to)",
    re.IGNORECASE,
)
_ANSWER_MARK = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*[:：]|answer\s*[:：]|therefore,?|thus,?|so,?)\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_OPTION = re.compile(r"^\(?([A-Ja-j])\)?[.)]?$")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def script_of(text: str) -> str | None:
    """The dominant writing system of the letters in `text` (Latin, Cyrillic, CJK, Arabic, …)."""
    counts: Counter[str] = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
            counts["CJK"] += 1
        elif name.startswith("HANGUL"):
            counts["HANGUL"] += 1
        else:
            counts[name.split(" ")[0] if name else "OTHER"] += 1
    if sum(counts.values()) < 3:
        return None
    return counts.most_common(1)[0][0]


def language_of(text: str) -> str | None:
    """A coarse language guess: the script, or for Latin text the language whose stopwords dominate."""
    script = script_of(text)
    if script != "LATIN":
        return script
    tokens = words(text)
    if len(tokens) < 6:
        return None
    scores = {lang: sum(t in stops for t in tokens) for lang, stops in _STOPWORDS.items()}
    best, best_score = max(scores.items(), key=lambda kv: (kv[1], kv[0] == "en"))
    ranked = sorted(scores.values(), reverse=True)
    if best_score < 2 or best_score < 1.5 * ranked[1]:
        return None  # not sure enough to accuse the output of being in the wrong language
    return best


def final_answer(output: str) -> str | None:
    """The answer the output commits to: after an "answer is" marker, else None."""
    matches = list(_ANSWER_MARK.finditer(output.strip()))
    if not matches:
        return None
    answer = matches[-1].group(1).strip()
    for _ in range(3):  # "So the answer is 20": peel the markers one by one
        inner = _ANSWER_MARK.match(answer)
        if not inner:
            break
        answer = inner.group(1).strip()
    answer = answer.strip().strip(".").strip()
    return answer.strip("\"'`*") or None


def last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def _as_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _is_number(text: str) -> bool:
    return re.fullmatch(r"\s*-?\d+(?:[.,]\d+)?\s*", text) is not None


# --- detectors --------------------------------------------------------------------------------


def detect_empty_output(r: AnalysisRequest) -> Finding | None:
    if r.output_text.strip():
        return None
    return Finding(
        "empty_output", "Empty output", "The model produced no answer at all.",
        "The answer is not empty", 0.95,
    )


def detect_refusal(r: AnalysisRequest) -> Finding | None:
    head = r.output_text.strip()[:400]
    match = _REFUSAL.search(head)
    if not match or len(r.output_text) > 1500:
        return None
    return Finding(
        "refusal", "Refused to answer",
        "The model declined the task instead of attempting it.",
        "The task is attempted", 0.85, match.group(0),
    )


def detect_repetition_loop(r: AnalysisRequest) -> Finding | None:
    lines = [ln.strip() for ln in r.output_text.splitlines() if len(ln.strip()) >= 8]
    if len(lines) >= 6:
        line, count = Counter(lines).most_common(1)[0]
        if count >= 4 and count / len(lines) >= 0.3:
            return Finding(
                "repetition_loop", "Degenerate repetition loop",
                f"The output repeats the same line {count} times instead of progressing.",
                "The answer progresses without looping", 0.85, line[:200],
            )
    tokens = words(r.output_text)
    n = 6
    if len(tokens) >= 40:
        # Only back-to-back repeats of a varied phrase count: structured traces ("stack: { [") repeat
        # their one word on every line without being a loop.
        best: tuple[str, ...] = ()
        best_run = 0
        for start in range(n):
            run, prev = 0, None
            for i in range(start, len(tokens) - n + 1, n):
                gram = tuple(tokens[i : i + n])
                run = run + 1 if gram == prev else 1
                prev = gram
                if run > best_run and len(set(gram)) >= 3:
                    best, best_run = gram, run
        gram, count = best, best_run
        if count >= 5 and count * n / len(tokens) >= 0.3:
            return Finding(
                "repetition_loop", "Degenerate repetition loop",
                f"A phrase recurs {count} times and fills most of the output.",
                "The answer progresses without looping", 0.8, " ".join(gram),
            )
    return None


def detect_truncation(r: AnalysisRequest) -> Finding | None:
    text = r.output_text.rstrip()
    if len(text) < 200:
        return None
    unclosed_fence = text.count("```") % 2 == 1
    last = text[-1]
    ends_open = last.isalnum() or last in ",;:-(["
    last_word = words(text[-30:])[-1:] if words(text[-30:]) else []
    dangling = bool(last_word) and last_word[0] in {"the", "a", "an", "and", "of", "to", "is", "with", "for"}
    if final_answer(text) is not None and not unclosed_fence:
        return None  # it reached a stated answer, so it was not cut off
    cut = ends_open and (dangling or last in ",;:-([" or bool(r.reference and len(r.reference) < 60))
    if not (unclosed_fence or cut):
        return None
    return Finding(
        "truncation", "Output cut off before the end",
        "The answer stops mid-sentence, so it never reaches a conclusion (length limit or early stop).",
        "The answer is complete", 0.7 if (unclosed_fence or dangling) else 0.5, text[-80:],
    )


def detect_language_mismatch(r: AnalysisRequest) -> Finding | None:
    expected_from = r.reference if r.reference and len(r.reference) >= 20 else ""
    if not expected_from:
        return None
    expected, got = language_of(expected_from), language_of(r.output_text)
    if expected is None or got is None or expected == got:
        return None
    return Finding(
        "language_mismatch", "Answer in the wrong language",
        f"The output is in {got} while the reference is in {expected}.",
        f"The answer is written in {expected}", 0.8, r.output_text[:120],
    )


def _short_reference(r: AnalysisRequest) -> bool:
    return bool(r.reference.strip()) and len(r.reference.strip()) <= 60


def detect_answer_missing_or_format(r: AnalysisRequest) -> Finding | None:
    if not _short_reference(r) or not r.output_text.strip():
        return None
    answer = final_answer(r.output_text)
    reference = r.reference.strip()
    if answer is None:
        # A short output may be the answer itself.
        if len(r.output_text.strip()) <= 60:
            answer = r.output_text.strip()
        else:
            return Finding(
                "answer_missing", "No final answer stated",
                "The output reasons but never commits to a final answer in the expected place.",
                "A final answer is stated", 0.6, r.output_text.strip()[-120:],
            )
    if _OPTION.match(reference) and not _OPTION.match(answer) and not re.match(r"^\(?[A-Ja-j]\)", answer):
        return Finding(
            "answer_format", "Answer not in the required option format",
            f"The task expects an option letter like {reference!r}; the output answers {answer[:60]!r}.",
            "The answer uses the required format", 0.6, answer[:120],
        )
    if _is_number(reference) and _as_float(last_number(answer)) is None:
        return Finding(
            "answer_format", "Non-numeric answer to a numeric question",
            f"The reference is the number {reference}; the final answer contains no number.",
            "The answer is a number", 0.6, answer[:120],
        )
    return None


def detect_final_number_differs(r: AnalysisRequest) -> Finding | None:
    if not _is_number(r.reference):
        return None
    lines = r.output_text.strip().splitlines()
    answer = final_answer(r.output_text) or lines[-1:] and lines[-1]
    got, want = _as_float(last_number(answer or "")), _as_float(r.reference.strip().replace(",", ""))
    if got is None or want is None or abs(got - want) < 1e-9:
        return None
    reasoning = len(re.findall(r"[=+\-*/×÷]|\n", r.output_text)) >= 3
    if not reasoning:
        return Finding(
            "final_number_differs", "Wrong number without shown work",
            f"The answer {got:g} differs from the reference {want:g} and no working is shown.",
            "The final number is correct", 0.45, (answer or "")[:120],
        )
    intermediate = {_as_float(n.replace(",", "")) for n in _NUMBER.findall(r.output_text)}
    if want in intermediate:
        return Finding(
            "final_number_differs", "Reached the right value then lost it",
            f"The reference value {want:g} appears in the working, but the final answer is {got:g}.",
            "The final answer follows from the working", 0.6, (answer or "")[:120],
        )
    return Finding(
        "final_number_differs", "Calculation error in multi-step arithmetic",
        f"The working is present but ends at {got:g} instead of {want:g}: an intermediate step is wrong.",
        "Each calculation step is correct", 0.55, (answer or "")[:120],
    )


def detect_sequence_mismatch(r: AnalysisRequest) -> Finding | None:
    """Short symbolic answers (sorted words, bracket closings): order vs missing vs extra items."""
    reference = r.reference.strip()
    if not reference or _is_number(reference) or _OPTION.match(reference):
        return None
    answer = final_answer(r.output_text) or (r.output_text.strip() if len(r.output_text.strip()) <= 60 else None)
    if answer is None:
        return None
    want, got = reference.split(), answer.split()
    if len(reference) > 60:
        # A long reference is a list (sorted words…) only if the answer is mostly the same tokens.
        overlap = len(set(want) & set(got)) / max(1, len(set(want)))
        if len(want) > 80 or overlap < 0.6 or re.search(r"[.!?]\s", reference):
            return None
    if [w.lower().strip(".") for w in want] == [g.lower().strip(".") for g in got]:
        return None
    if len(want) < 2:
        return Finding(
            "answer_differs", "Final answer differs from reference",
            f"The answer {answer[:60]!r} differs from the reference {r.reference.strip()!r}.",
            "The final answer is correct", 0.35, answer[:120],
        )
    if sorted(want) == sorted(got):
        return Finding(
            "sequence_order", "Items in the wrong order",
            "The answer has the right items but in the wrong order.",
            "Items are in the required order", 0.55, answer[:120],
        )
    missing = Counter(want) - Counter(got)
    extra = Counter(got) - Counter(want)
    if missing and not extra:
        return Finding(
            "sequence_missing", "Missing items in the answer sequence",
            f"The answer leaves out {sum(missing.values())} required item(s): {' '.join(missing)[:80]}.",
            "Every required item is present", 0.55, answer[:120],
        )
    if extra and not missing:
        return Finding(
            "sequence_extra", "Extra items in the answer sequence",
            f"The answer adds {sum(extra.values())} item(s) that should not be there.",
            "No extra items", 0.55, answer[:120],
        )
    return Finding(
        "answer_differs", "Wrong items in the answer sequence",
        "The answer sequence differs from the reference in both missing and extra items.",
        "The answer sequence is correct", 0.4, answer[:120],
    )


def detect_option_differs(r: AnalysisRequest) -> Finding | None:
    ref = _OPTION.match(r.reference.strip())
    if not ref:
        return None
    answer = final_answer(r.output_text) or r.output_text.strip()[-60:]
    letters = {m.upper() for m in re.findall(r"\(([A-Ja-j])\)", answer)}
    if len(letters) >= 2:
        return Finding(
            "option_hedged", "Did not commit to a single option",
            f"The answer names {len(letters)} options ({', '.join(sorted(letters))}) instead of one.",
            "Exactly one option is chosen", 0.65, answer[:120],
        )
    got = re.search(r"\(([A-Ja-j])\)|^([A-Ja-j])\b", answer.strip())
    if not got:
        return None
    letter = (got.group(1) or got.group(2)).upper()
    if letter == ref.group(1).upper():
        return None
    steps = len([ln for ln in r.output_text.splitlines() if ln.strip()])
    if steps >= 3:
        return Finding(
            "option_differs", "Flawed deduction leads to wrong option",
            f"The reasoning is shown but arrives at option ({letter}) instead of {r.reference.strip()}.",
            "The deduction steps are sound", 0.45, answer[:120],
        )
    return Finding(
        "option_differs", "Wrong option without reasoning",
        f"Option ({letter}) chosen instead of {r.reference.strip()} with no reasoning shown.",
        "The chosen option is correct", 0.4, answer[:120],
    )


def detect_missing_reference_details(r: AnalysisRequest) -> Finding | None:
    ref_words = [w for w in words(r.reference) if w not in _CONTENT_STOP and len(w) > 2]
    if len(set(ref_words)) < 6:
        return None
    out = set(words(r.output_text))
    missing = [w for w in dict.fromkeys(ref_words) if w not in out]
    share = len(missing) / len(set(ref_words))
    if share < 0.5:
        return None
    return Finding(
        "missing_reference_details", "Omitted required details",
        f"{share:.0%} of the reference's content words are absent from the output.",
        "The answer covers the reference's details", round(min(0.75, 0.3 + share / 2), 3),
        ", ".join(missing[:12]),
    )


# Order = priority when several fire: the most certain, most specific kinds first.
DETECTORS: tuple[Callable[[AnalysisRequest], Finding | None], ...] = (
    detect_empty_output,
    detect_refusal,
    detect_repetition_loop,
    detect_language_mismatch,
    detect_truncation,
    detect_answer_missing_or_format,
    detect_final_number_differs,
    detect_option_differs,
    detect_sequence_mismatch,
    detect_missing_reference_details,
)

_CATALOGUE = "\n".join(f"- {d.__name__}: {(d.__doc__ or '').strip()}" for d in DETECTORS)


class OfflineJudge:
    """JudgeBackend with no network: rule detectors, then retrieval of the nearest gold failures."""

    name = "offline"
    model_name = ""

    def __init__(self, *, gold: list[GoldExample] | None = None, min_similarity: float = MIN_GOLD_SIMILARITY,
                 folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED, fold_of: dict[str, int] | None = None
                 ) -> None:
        self.gold = list(gold or [])
        self.min_similarity = min_similarity
        # No item learns from itself: a failure whose text is among the gold is judged only by the
        # gold of the other folds (its own label and every duplicate of its text are in its fold).
        self.folds, self.seed = folds, seed
        self._gold_keys = [text_key(g.input_text, g.output_text) for g in self.gold]
        # `fold_of` (text key -> fold) when a caller cross-fits over a wider set than this gold.
        self._fold_of = fold_of if fold_of is not None else assign_folds(self._gold_keys, folds, seed=seed)
        self.prompt = PromptTemplate(
            stage="analyze", name=RULES_VERSION, system="", user=f"{RULES_VERSION}\n{_CATALOGUE}"
        )
        self._usage = Usage()
        self._index: Any = None
        self._gold_matrix: Any = None

    def config(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "rules": RULES_VERSION,
            "prompt_sha256": self.prompt.sha256,
            # New gold labels change the answers, so they change the key.
            "gold": stable_hash([(g.input_text, g.output_text, g.category, g.error_title) for g in self.gold])
            if self.gold
            else "",
            "min_similarity": self.min_similarity,
            "crossfit": {"folds": self.folds, "seed": self.seed},
        }

    @property
    def usage(self) -> Usage:
        return self._usage

    def complete_json(self, stage: str, prompt: str, schema: dict[str, Any], *,
                      system: str | None = None) -> dict[str, Any]:
        raise JudgeUnsupported("the offline judge answers stage 1 only; induction clusters offline instead")

    def analyze(self, requests: list[AnalysisRequest]) -> list[AnalysisResult]:
        neighbours = self._retrieve(requests) if self.gold else [None] * len(requests)
        return [self._analyze_one(r, n) for r, n in zip(requests, neighbours)]

    def findings(self, request: AnalysisRequest) -> list[Finding]:
        """Every detector that fires, in priority order."""
        return [f for f in (d(request) for d in DETECTORS) if f is not None]

    def _analyze_one(self, r: AnalysisRequest, neighbour: tuple[GoldExample, float] | None) -> AnalysisResult:
        found = self.findings(r)
        criteria = [
            {
                "criterion": f.criterion,
                "present_in_wrong": False,
                "quality": "incorrect",
                "evidence": f.evidence,
                "comment": f"{f.detector}: {f.summary}",
            }
            for f in found
        ]
        best = max(found, key=lambda f: f.confidence) if found else None
        # Priority order decides among confident findings; else the most confident one.
        lead = next((f for f in found if f.confidence >= 0.8), best)
        if neighbour is not None:
            gold, similarity = neighbour
            gold_conf = round(min(0.9, similarity), 3)
            criteria.append(
                {
                    "criterion": f"Avoids the error of similar gold failures ({gold.category})",
                    "present_in_wrong": False,
                    "quality": "incorrect",
                    "evidence": "",
                    "comment": f"nearest gold failure at cosine similarity {similarity:.2f}",
                }
            )
            if lead is None or gold_conf > lead.confidence and lead.confidence < 0.8:
                return AnalysisResult(
                    content_key=r.content_key, status="ok", required_criteria=criteria,
                    error_title=gold.error_title,
                    error_summary=gold.error_summary or f"Resembles gold failures labelled {gold.category}.",
                    confidence=gold_conf,
                )
        if lead is None:
            return AnalysisResult(
                content_key=r.content_key, status="ok", required_criteria=criteria,
                error_title="Unexplained failure",
                error_summary="No rule explains this failure; it needs a human or an LLM judge.",
                confidence=0.1,
            )
        return AnalysisResult(
            content_key=r.content_key, status="ok", required_criteria=criteria,
            error_title=lead.title, error_summary=lead.summary, confidence=lead.confidence,
        )

    def _retrieve(self, requests: list[AnalysisRequest]) -> list[tuple[GoldExample, float] | None]:
        """The most similar gold failure of each request (TF-IDF cosine on input + output), if close enough."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics.pairwise import linear_kernel

        if self._index is None:
            self._index = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=200_000)
            self._gold_matrix = self._index.fit_transform([_doc(g.input_text, g.output_text) for g in self.gold])
        queries = self._index.transform([_doc(r.input_text, r.output_text) for r in requests])
        sims = linear_kernel(queries, self._gold_matrix)  # rows are l2-normalised, so this is cosine
        gold_folds = np.array([self._fold_of.get(k, -1) for k in self._gold_keys])
        for row, r in enumerate(requests):
            fold = self._fold_of.get(text_key(r.input_text, r.output_text))
            if fold is not None:
                sims[row, gold_folds == fold] = -1.0  # its own fold is out of sight
        out: list[tuple[GoldExample, float] | None] = []
        for row in sims:
            j = int(row.argmax())
            out.append((self.gold[j], float(row[j])) if row[j] >= self.min_similarity else None)
        return out


def _doc(input_text: str, output_text: str) -> str:
    return f"{input_text[:4000]}\n{output_text[:4000]}"

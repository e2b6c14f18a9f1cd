"""ErrorMap stages 2-4 as plain logic: induce categories from error titles, classify, fold, recurse.

Two inducers share one recursion (`build_tree`): `LLMInducer` runs the generate / update / review /
classify prompts through any JSON-completion callable, `ClusterInducer` clusters titles and summaries
offline (TF-IDF + k-means, seeded) and names clusters from their most distinctive terms.
"""
from __future__ import annotations

import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from annotation.core.prompts import PromptTemplate, load_prompt
from taxonomy.core.paths import OTHER, ROOT_NAME

OTHER_DESCRIPTION = "Errors that fit none of the other categories at this level, or too rare to keep apart."
NO_ERROR_TITLE = "No Error Identified"
TITLE_BATCH = 500
CLASSIFY_BATCH = 50
CATEGORY_CAP = 25
MIN_TITLES_TO_SPLIT = 5  # a category is split further only with MORE than this many distinct titles
DEFAULT_RARE_FREQ = 0.02
MAX_NAME_WORDS = 5
MAX_DESCRIPTION_WORDS = 30
VAGUE_NAMES = frozenset(
    {"other", "others", "general", "general error", "general errors", "misc", "miscellaneous",
     "various", "unknown", "none", "n/a", "uncategorized", "unclassified"}
)

T = TypeVar("T")


class InductionError(Exception):
    """The inducer could not produce any category (e.g. every generate answer was invalid)."""


@dataclass(frozen=True)
class ErrorRecord:
    """One analysed failure: an opaque key (the caller's id), its error title and summary."""

    key: str
    title: str
    summary: str = ""


@dataclass(frozen=True)
class CategoryDef:
    name: str
    description: str = ""


@dataclass
class Node:
    """A node of the induced tree; `titles` are the distinct titles under it, `count` its errors."""

    name: str
    description: str
    path: str
    depth: int
    count: int = 0
    titles: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class DroppedCategory:
    """A category the judge proposed that is not in the tree, where, and why (said, never silent)."""

    parent: str  # path of the node it was proposed under ("" at the top level)
    name: str
    reason: str


@dataclass(frozen=True)
class InductionResult:
    tree: Node
    # distinct (normalised) title -> leaf path, e.g. "Reasoning Error / Arithmetic Slip"
    assignments: dict[str, str]
    notes: tuple[str, ...] = ()
    dropped: tuple[DroppedCategory, ...] = ()

    def categories(self) -> list[tuple[str, str]]:
        """(path, description) of every node below the root, parents before children."""
        return [(n.path, n.description) for n in self.tree.walk() if n.depth > 0]

    def leaf_of(self, title: str) -> str:
        return self.assignments[normalise_title(title)]


# ---------------------------------------------------------------------------------------------
# Small pieces of the method


def normalise_title(title: str) -> str:
    """Whitespace collapsed; an empty title means the judge found no error."""
    text = " ".join((title or "").split())
    return text or NO_ERROR_TITLE


def title_counts(records: Iterable[ErrorRecord]) -> Counter[str]:
    return Counter(normalise_title(r.title) for r in records)


def shuffled_titles(counts: Counter[str] | dict[str, int], *, seed: int) -> list[tuple[str, int]]:
    """Distinct titles with their counts, sorted then shuffled by `seed`: same input, same order."""
    items = sorted(counts.items())
    random.Random(seed).shuffle(items)
    return items


def batched(items: Sequence[T], size: int) -> list[list[T]]:
    if size < 1:
        raise ValueError("batch size must be positive")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def category_limit(n_errors: int, cap: int = CATEGORY_CAP) -> int:
    """min(cap, ceil(0.1 x errors)), at least 1 (the reference code's limit)."""
    return max(1, min(cap, math.ceil(0.1 * n_errors - 1e-9)))


def level_limit(n_errors: int, max_categories: int | None) -> int:
    """Categories allowed at one level: the reference limit, or exactly the user's `max_categories`
    when given (so a small set, where a tenth of the errors allows only one or two, can have more)."""
    return category_limit(n_errors) if max_categories is None else max(1, max_categories)


def clean_name(name: str) -> str:
    """A category name fit for a path: no '/', whitespace collapsed, at most five words."""
    words = " ".join(str(name).replace("/", "-").split()).split(" ")
    return " ".join(words[:MAX_NAME_WORDS]).strip()


def clean_description(text: str) -> str:
    words = " ".join(str(text).split()).split(" ")
    return " ".join(words[:MAX_DESCRIPTION_WORDS]).strip()


def clean_categories(defs: Iterable[CategoryDef], *, limit: int,
                     dropped: dict[str, str] | None = None) -> list[CategoryDef]:
    """Drop vague and duplicate (case-insensitive) names, trim lengths, keep at most `limit`; each name
    left out goes into `dropped` (name -> why) when given."""
    seen: set[str] = set()
    kept: list[CategoryDef] = []
    for d in defs:
        name = clean_name(d.name)
        if not name or name.lower() in seen:
            continue
        if name.lower() in VAGUE_NAMES:
            if dropped is not None:
                dropped.setdefault(name, "too vague a name")
            continue
        seen.add(name.lower())
        if len(kept) == limit:
            if dropped is not None:
                dropped.setdefault(name, f"over the limit of {limit} categories at this level "
                                         "(raise it with --max-categories)")
            continue
        kept.append(CategoryDef(name, clean_description(d.description)))
    return kept


def match_category(name: Any, categories: Sequence[CategoryDef]) -> str:
    """The category whose name equals `name` ignoring case and surrounding space, else `Other`."""
    wanted = " ".join(str(name or "").split()).lower()
    for c in categories:
        if c.name.lower() == wanted:
            return c.name
    return OTHER


def fold_rare(
    assignments: dict[str, str], counts: dict[str, int], *, rare_freq: float
) -> dict[str, str]:
    """Categories holding less than `rare_freq` of the errors (by count, not titles) become `Other`."""
    total = sum(counts[t] for t in assignments)
    if total == 0 or rare_freq <= 0:
        return dict(assignments)
    per_category: Counter[str] = Counter()
    for title, category in assignments.items():
        per_category[category] += counts[title]
    rare = {c for c, n in per_category.items() if c != OTHER and n / total < rare_freq}
    return {t: (OTHER if c in rare else c) for t, c in assignments.items()}


# ---------------------------------------------------------------------------------------------
# Prompts and response schemas (data, sent by an OpenAI-compatible backend)

_CATEGORY_ITEM = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
    "required": ["name", "description"],
    "additionalProperties": False,
}
_CATEGORY_LIST = {"type": "array", "items": _CATEGORY_ITEM}

GENERATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"categories": _CATEGORY_LIST},
    "required": ["categories"],
    "additionalProperties": False,
}
REVISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rating": {"type": "integer"},
        "suggestions": {"type": "string"},
        "categories": _CATEGORY_LIST,
    },
    "required": ["rating", "suggestions", "categories"],
    "additionalProperties": False,
}
UPDATE_SCHEMA = REVISE_SCHEMA
REVIEW_SCHEMA = REVISE_SCHEMA
CLASSIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "assignments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "category": {"type": "string"}},
                "required": ["id", "category"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["assignments"],
    "additionalProperties": False,
}

# The templates ship as text files in taxonomy/prompts/ (prompts are data); placeholders are $name.
PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
STAGES = ("induce_generate", "induce_update", "induce_review", "induce_classify")
STAGE_SCHEMAS: dict[str, dict[str, Any]] = {
    "induce_generate": GENERATE_SCHEMA,
    "induce_update": UPDATE_SCHEMA,
    "induce_review": REVIEW_SCHEMA,
    "induce_classify": CLASSIFY_SCHEMA,
}


def load_induction_prompts(directory: Path | str | None = None) -> dict[str, PromptTemplate]:
    """stage -> template, from `directory` or the shipped taxonomy/prompts/."""
    return {stage: load_prompt(stage, directory or PROMPT_DIR) for stage in STAGES}


def _parent_clause(parent: CategoryDef | None) -> str:
    if parent is None:
        return ""
    return (
        f" All of these errors belong to the category {json.dumps(parent.name)} "
        f"({json.dumps(parent.description)}); the categories must be more specific subcategories of it."
    )


def _categories_json(categories: Sequence[CategoryDef]) -> str:
    return json.dumps([{"name": c.name, "description": c.description} for c in categories],
                      ensure_ascii=False, indent=1)


def _titles_json(titles: Sequence[tuple[str, int]]) -> str:
    return json.dumps(dict(titles), ensure_ascii=False, indent=1)


def generate_prompt(template: PromptTemplate, titles: Sequence[tuple[str, int]], *, limit: int,
                    parent: CategoryDef | None = None) -> list[dict[str, str]]:
    return template.render(parent_clause=_parent_clause(parent), limit=limit, titles=_titles_json(titles))


def update_prompt(template: PromptTemplate, categories: Sequence[CategoryDef],
                  titles: Sequence[tuple[str, int]], *, limit: int,
                  parent: CategoryDef | None = None) -> list[dict[str, str]]:
    return template.render(parent_clause=_parent_clause(parent), limit=limit,
                           categories=_categories_json(categories), titles=_titles_json(titles))


def review_prompt(template: PromptTemplate, categories: Sequence[CategoryDef], *, limit: int,
                  parent: CategoryDef | None = None) -> list[dict[str, str]]:
    return template.render(parent_clause=_parent_clause(parent), limit=limit,
                           categories=_categories_json(categories))


def classify_prompt(template: PromptTemplate, categories: Sequence[CategoryDef], titles: Sequence[str], *,
                    parent: CategoryDef | None = None) -> list[dict[str, str]]:
    numbered = {str(i): t for i, t in enumerate(titles, start=1)}
    return template.render(parent_clause=_parent_clause(parent), categories=_categories_json(categories),
                           titles=json.dumps(numbered, ensure_ascii=False, indent=1))


def parse_categories(response: Any) -> list[CategoryDef]:
    """Categories from a generate/update/review answer; raises ValueError when there are none."""
    items = response.get("categories") if isinstance(response, dict) else None
    if not isinstance(items, list):
        raise TypeError("answer has no 'categories' list")
    defs = [
        CategoryDef(str(i.get("name", "")), str(i.get("description", "")))
        for i in items
        if isinstance(i, dict)
    ]
    if not any(d.name.strip() for d in defs):
        raise ValueError("answer lists no named category")
    return defs


def parse_assignments(response: Any, titles: Sequence[str],
                      categories: Sequence[CategoryDef]) -> dict[str, str]:
    """id -> category name from a classify answer, matched case-insensitively; missing ids -> Other."""
    result = {t: OTHER for t in titles}
    items = response.get("assignments") if isinstance(response, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            index = int(item.get("id", "")) - 1
        except (TypeError, ValueError):
            continue
        if 0 <= index < len(titles):
            result[titles[index]] = match_category(item.get("category"), categories)
    return result


# ---------------------------------------------------------------------------------------------
# Inducers


class Inducer(Protocol):
    """Proposes categories for a set of distinct titles and assigns each title to one (or Other)."""

    def induce(
        self,
        titles: list[tuple[str, int]],
        summaries: dict[str, list[str]],
        *,
        limit: int,
        parent: CategoryDef | None,
        seed: int,
    ) -> tuple[list[CategoryDef], dict[str, str]]: ...


# (stage, messages [system, user], schema) -> parsed JSON answer; raises on an answer that stays invalid.
JsonCompletion = Callable[[str, list[dict[str, str]], dict[str, Any]], Any]


@dataclass
class LLMInducer:
    """The reference method: generate on batch 1, update on each later batch, review, classify by 50."""

    complete: JsonCompletion
    prompts: dict[str, PromptTemplate] = field(default_factory=load_induction_prompts)
    title_batch: int = TITLE_BATCH
    classify_batch: int = CLASSIFY_BATCH
    notes: list[str] = field(default_factory=list)
    # Names proposed in the last induce() call (any stage) that were cut, with why; read by build_tree.
    dropped: dict[str, str] = field(default_factory=dict)

    def induce(self, titles: list[tuple[str, int]], summaries: dict[str, list[str]], *, limit: int,
               parent: CategoryDef | None, seed: int) -> tuple[list[CategoryDef], dict[str, str]]:
        p = self.prompts
        batches = batched(titles, self.title_batch)
        self.dropped = {}
        try:
            answer = self.complete("induce_generate",
                                   generate_prompt(p["induce_generate"], batches[0], limit=limit, parent=parent),
                                   GENERATE_SCHEMA)
            categories = clean_categories(parse_categories(answer), limit=limit, dropped=self.dropped)
        except Exception as exc:
            raise InductionError(f"generate stage failed: {exc}") from exc
        if not categories:
            raise InductionError("generate stage returned only vague or empty categories")
        for batch in batches[1:]:
            messages = update_prompt(p["induce_update"], categories, batch, limit=limit, parent=parent)
            categories = self._revise("induce_update", messages, categories, limit)
        messages = review_prompt(p["induce_review"], categories, limit=limit, parent=parent)
        categories = self._revise("induce_review", messages, categories, limit)
        assignments = classify_titles(
            self.complete, p["induce_classify"], categories, [t for t, _ in titles],
            parent=parent, batch_size=self.classify_batch, notes=self.notes,
        )
        return categories, assignments

    def _revise(self, stage: str, messages: list[dict[str, str]], current: list[CategoryDef],
                limit: int) -> list[CategoryDef]:
        try:
            revised = clean_categories(parse_categories(self.complete(stage, messages, REVISE_SCHEMA)), limit=limit,
                                       dropped=self.dropped)
        except Exception as exc:  # noqa: BLE001 - a bad revision keeps the previous list
            self.notes.append(f"{stage} answer unusable ({exc}); kept the previous list")
            return current
        if revised:
            kept = {c.name.lower() for c in revised}
            step = stage.removeprefix("induce_")
            for c in current:
                if c.name.lower() not in kept:
                    self.dropped.setdefault(c.name, f"left out by the judge's {step} answer")
        return revised or current


def classify_titles(
    complete: JsonCompletion,
    template: PromptTemplate,
    categories: Sequence[CategoryDef],
    titles: Sequence[str],
    *,
    parent: CategoryDef | None = None,
    batch_size: int = CLASSIFY_BATCH,
    notes: list[str] | None = None,
) -> dict[str, str]:
    """title -> category name (or Other), asking in batches of `batch_size` titles."""
    assignments: dict[str, str] = {}
    for batch in batched(list(titles), batch_size):
        try:
            answer = complete("induce_classify", classify_prompt(template, categories, batch, parent=parent),
                              CLASSIFY_SCHEMA)
        except Exception as exc:  # noqa: BLE001 - keep the batch, as Other, and say so
            if notes is not None:
                notes.append(f"classify batch of {len(batch)} titles failed ({exc}); they are Other")
            answer = {}
        assignments.update(parse_assignments(answer, batch, categories))
    return assignments


_TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z]+\b"
# Words every error title may carry; they separate nothing and make poor names.
GENERIC_TERMS = frozenset({"error", "errors", "mistake", "mistakes", "incorrect", "wrong", "model", "llm",
                           "fails", "failed", "failure", "issue", "problem"})


@dataclass
class ClusterInducer:
    """Offline: TF-IDF of each distinct title and of its summaries, k-means with k chosen by silhouette.

    Rows are [sqrt(w) x title vector, sqrt(1-w) x summary vector], so the cosine of two rows is
    w x (title cosine) + (1-w) x (summary cosine): titles decide, summaries break ties. Names come from
    the title terms only (summaries share template phrasing that would make poor names).
    """

    max_summaries: int = 3
    title_share: float = 0.75
    name_terms: int = 2

    def induce(self, titles: list[tuple[str, int]], summaries: dict[str, list[str]], *, limit: int,
               parent: CategoryDef | None, seed: int) -> tuple[list[CategoryDef], dict[str, str]]:
        from scipy.sparse import hstack

        ordered = sorted(titles)  # clustering must not depend on the shuffle
        names = [t for t, _ in ordered]
        weights = np.array([c for _, c in ordered], dtype=float)
        title_matrix, vocabulary = tfidf_matrix(names)
        if title_matrix is None:  # no usable term at all: every title is its own category
            return self._one_per_title(names, limit)
        summary_docs = [" ".join(sorted(set(summaries.get(t, [])))[: self.max_summaries]) for t in names]
        summary_matrix, _ = tfidf_matrix(summary_docs)
        if summary_matrix is None:
            matrix = title_matrix
        else:
            matrix = hstack([math.sqrt(self.title_share) * title_matrix,
                             math.sqrt(1 - self.title_share) * summary_matrix]).tocsr()
        labels = choose_clusters(matrix, weights, limit=limit, seed=seed)
        exclude = set(_words(parent.name)) if parent else set()
        categories: list[CategoryDef] = []
        assignments: dict[str, str] = {}
        used: set[str] = set()
        for cluster in _clusters_by_size(labels, weights):
            members = [i for i, c in enumerate(labels) if c == cluster]
            terms = distinctive_terms(title_matrix, labels, cluster, vocabulary, weights, exclude=exclude)
            name = _cluster_name(terms, used, self.name_terms, fallback=names[members[0]])
            used.add(name.lower())
            top_titles = [names[i] for i in sorted(members, key=lambda i: (-weights[i], names[i]))[:2]]
            description = clean_description(
                f"Errors about {', '.join(terms[:4]) or name.lower()}; e.g. "
                + "; ".join(f'"{t}"' for t in top_titles)
            )
            categories.append(CategoryDef(name, description))
            for i in members:
                assignments[names[i]] = name
        return categories, assignments

    def _one_per_title(self, names: list[str], limit: int) -> tuple[list[CategoryDef], dict[str, str]]:
        categories: list[CategoryDef] = []
        assignments: dict[str, str] = {}
        for title in names[:limit]:
            name = clean_name(title) or "Hard to Analyze"
            categories.append(CategoryDef(name, clean_description(f'Errors titled "{title}"')))
            assignments[title] = name
        for title in names[limit:]:
            assignments[title] = OTHER
        return categories, assignments


def tfidf_matrix(docs: Sequence[str], *, max_df: float = 1.0) -> tuple[Any, Any]:
    """(L2-normalised TF-IDF rows, vocabulary), or (None, None) when no document has a usable term
    (a scipy CSR matrix and a numpy array of terms: scikit-learn ships no types for them).

    `max_df` < 1 drops terms in more than that share of the documents (words every one shares).
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | GENERIC_TERMS), sublinear_tf=True,
                                 ngram_range=(1, 2), token_pattern=_TOKEN_PATTERN, max_df=max_df)
    try:
        matrix = vectorizer.fit_transform(list(docs))
    except ValueError:
        return None, None
    return matrix.tocsr(), vectorizer.get_feature_names_out()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def choose_clusters(matrix: Any, weights: np.ndarray, *, limit: int, seed: int) -> np.ndarray:
    """Cluster labels for the rows of `matrix`: k in 2..limit by best cosine silhouette, seeded k-means."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = matrix.shape[0]
    matrix = matrix.tocsr()
    distinct = len({
        (tuple(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]]),
         tuple(np.round(matrix.data[matrix.indptr[i]:matrix.indptr[i + 1]], 9)))
        for i in range(n)
    })
    if n == 1 or limit == 1 or distinct == 1:
        return np.zeros(n, dtype=int)
    k_max = min(limit, distinct)
    if k_max == 2 and n == 2:
        return np.array([0, 1])
    best_labels, best_score = None, -2.0
    for k in range(2, k_max + 1):
        model = KMeans(n_clusters=k, random_state=seed, n_init=4, algorithm="lloyd")
        labels = model.fit_predict(matrix, sample_weight=weights)
        if len(set(labels)) < 2 or len(set(labels)) >= n:
            score = -1.0 if len(set(labels)) < 2 else 0.0
        else:
            score = silhouette_score(matrix, labels, metric="cosine",
                                     sample_size=min(n, 2000), random_state=seed)
        if score > best_score + 1e-9:
            best_labels, best_score = labels, score
    assert best_labels is not None
    return np.asarray(best_labels)


def _clusters_by_size(labels: np.ndarray, weights: np.ndarray) -> list[int]:
    sizes: dict[int, float] = defaultdict(float)
    for label, w in zip(labels, weights):
        sizes[int(label)] += float(w)
    first_index = {int(c): int(np.argmax(labels == c)) for c in sizes}
    return sorted(sizes, key=lambda c: (-sizes[c], first_index[c]))


def distinctive_terms(matrix: Any, labels: np.ndarray, cluster: int, vocabulary: Sequence[str] | np.ndarray,
                      weights: np.ndarray, *, exclude: Collection[str] = frozenset(), top: int = 6) -> list[str]:
    """Terms whose weighted mean TF-IDF inside the cluster most exceeds their mean outside it."""
    inside = labels == cluster
    w_in = weights[inside] / weights[inside].sum()
    mean_in = np.asarray(matrix[inside].T @ w_in).ravel()
    if (~inside).any():
        w_out = weights[~inside] / weights[~inside].sum()
        mean_out = np.asarray(matrix[~inside].T @ w_out).ravel()
    else:
        mean_out = np.zeros_like(mean_in)
    score = mean_in - mean_out
    order = sorted(range(len(vocabulary)), key=lambda j: (-score[j], vocabulary[j]))
    terms: list[str] = []
    for j in order:
        if score[j] <= 0 or len(terms) >= top:
            break
        term = str(vocabulary[j])
        words = term.split()
        if any(w in exclude for w in words):
            continue
        # skip a unigram already inside a chosen bigram, or a bigram made of chosen unigrams
        if any(w in t.split() for t in terms for w in words):
            continue
        terms.append(term)
    return terms


def _cluster_name(terms: list[str], used: set[str], n_terms: int, *, fallback: str) -> str:
    for count in range(min(n_terms, len(terms)) or 1, len(terms) + 1):
        name = clean_name(" ".join(t.title() for t in terms[:count]))
        if name and name.lower() not in used and name.lower() not in VAGUE_NAMES:
            return name
    base = clean_name(fallback) or "Hard to Analyze"
    name, suffix = base, 2
    while name.lower() in used or name.lower() in VAGUE_NAMES:
        name = clean_name(f"{base} {suffix}")
        suffix += 1
    return name


# ---------------------------------------------------------------------------------------------
# The recursion


def build_tree(
    records: Sequence[ErrorRecord],
    inducer: Inducer,
    *,
    max_depth: int = 2,
    max_categories: int | None = None,
    rare_freq: float = DEFAULT_RARE_FREQ,
    seed: int = 0,
    min_titles_to_split: int = MIN_TITLES_TO_SPLIT,
) -> InductionResult:
    """Induce the tree: categories at level 1, then recurse inside each category with more than
    `min_titles_to_split` distinct titles, down to `max_depth` levels below the root. Per level at most
    min(25, ceil(0.1 x errors)) categories, or `max_categories` when given; every proposed category
    left out is listed in `dropped` with why."""
    if not records:
        raise InductionError("no analysed errors to induce a taxonomy from")
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    counts = title_counts(records)
    summaries: dict[str, list[str]] = {}
    for r in records:
        if r.summary.strip():
            summaries.setdefault(normalise_title(r.title), []).append(" ".join(r.summary.split()))
    root = Node(ROOT_NAME, "All analysed errors.", "", 0, sum(counts.values()), sorted(counts))
    assignments: dict[str, str] = {}
    notes: list[str] = []
    dropped: list[DroppedCategory] = []

    def grow(node: Node, parent: CategoryDef | None) -> None:
        node_counts = {t: counts[t] for t in node.titles}
        n_errors = sum(node_counts.values())
        limit = level_limit(n_errors, max_categories)
        ordered = shuffled_titles(node_counts, seed=seed)
        categories, raw = inducer.induce(ordered, summaries, limit=limit, parent=parent, seed=seed)
        why_not: dict[str, str] = dict(getattr(inducer, "dropped", {}) or {})
        categories = clean_categories(categories, limit=limit, dropped=why_not)
        matched = {t: match_category(raw.get(t, OTHER), categories) for t in node.titles}
        assigned = fold_rare(matched, node_counts, rare_freq=rare_freq)
        groups: dict[str, list[str]] = {}
        for title in node.titles:
            groups.setdefault(assigned[title], []).append(title)
        if node.depth > 0 and len(groups) < 2:
            return  # a split into one group says nothing: keep the node a leaf
        for c in categories:
            if c.name not in groups:
                why_not[c.name] = (f"folded into {OTHER}: under {rare_freq:.0%} of the errors here (--rare-freq)"
                                   if c.name in matched.values() else "no error was classified into it")
        kept = {name.lower() for name in groups}
        dropped.extend(DroppedCategory(node.path, name, why) for name, why in sorted(why_not.items())
                       if name.lower() not in kept)
        descriptions = {c.name: c.description for c in categories}
        descriptions[OTHER] = OTHER_DESCRIPTION
        for name in sorted(groups, key=lambda g: (g == OTHER, -sum(counts[t] for t in groups[g]), g)):
            child = Node(
                name=name,
                description=descriptions[name],
                path=f"{node.path} / {name}" if node.path else name,
                depth=node.depth + 1,
                count=sum(counts[t] for t in groups[name]),
                titles=sorted(groups[name]),
            )
            node.children.append(child)
            if child.depth < max_depth and name != OTHER and len(child.titles) > min_titles_to_split:
                grow(child, CategoryDef(child.name, child.description))

    grow(root, None)
    for node in root.walk():
        if not node.children and node.depth > 0:
            for title in node.titles:
                assignments[title] = node.path
    notes.extend(getattr(inducer, "notes", []))
    return InductionResult(tree=root, assignments=assignments, notes=tuple(notes), dropped=tuple(dropped))


def tree_as_dict(node: Node, total: int | None = None) -> dict[str, Any]:
    """name, description, count, share (of all errors) and children, for JSON export of a pure tree."""
    total = node.count if total is None else total
    return {
        "name": node.name,
        "description": node.description,
        "path": node.path,
        "count": node.count,
        "share": round(node.count / total, 6) if total else 0.0,
        "children": [tree_as_dict(c, total) for c in node.children],
    }

"""Category paths: 'Accuracy / Mistranslation' names a category from the top level down.

Names from outside (label files, Label Studio, people) are parsed here once, with the bounds the
database holds (a test keeps them equal to the model fields), so a bad one is refused before anything
is written.
"""
from __future__ import annotations

from collections.abc import Iterable

PATH_SEPARATOR = " / "  # 'Reasoning / Arithmetic': a category's full path from the top level
ROOT_NAME = "LLM Errors"  # the tree's root, above the top-level categories
OTHER = "Other"  # the fallback category at each level
# Equal to Category.name / Category.path max_length (checked by a test).
CATEGORY_NAME_MAX_LENGTH = 200
CATEGORY_PATH_MAX_LENGTH = 1000
# The ErrorAtlas tree is root -> level 1 -> level 2; MQM has two levels. Deeper is a mistake, not a
# taxonomy (one 40 KB line once made 10,000 nested categories).
CATEGORY_MAX_DEPTH = 8


class CategoryPathError(ValueError):
    """A category path that cannot name a category; the message says why."""


def split_path(path: str) -> list[str]:
    """'A / B' -> ['A', 'B'] (also accepts '/' without spaces); empty parts are dropped."""
    parts = [p.strip() for p in path.replace(PATH_SEPARATOR, "/").split("/")]
    return [p for p in parts if p]


def join_path(parts: Iterable[str]) -> str:
    """['A', 'B'] -> 'A / B'."""
    return PATH_SEPARATOR.join(parts)


def parse_category_path(text: str) -> str:
    """The canonical path of `text` ('Fluency/Grammar' -> 'Fluency / Grammar'), or CategoryPathError.

    A slash always separates levels; an empty level ('A / / B', '/', ' / ') is refused rather than
    guessed at, as are names and paths longer than the database holds and trees deeper than
    CATEGORY_MAX_DEPTH.
    """
    parts = [part.strip() for part in text.split("/")]
    if not any(parts):
        raise CategoryPathError(f"category {_shown(text)} has no name (only separators)")
    if "" in parts:
        raise CategoryPathError(f"category {_shown(text)} has an empty level (between or around '/')")
    if len(parts) > CATEGORY_MAX_DEPTH:
        raise CategoryPathError(f"category path has {len(parts)} levels (at most {CATEGORY_MAX_DEPTH})")
    long_name = next((part for part in parts if len(part) > CATEGORY_NAME_MAX_LENGTH), None)
    if long_name is not None:
        raise CategoryPathError(
            f"category name of {len(long_name)} characters (at most {CATEGORY_NAME_MAX_LENGTH}): {_shown(long_name)}"
        )
    path = join_path(parts)
    if len(path) > CATEGORY_PATH_MAX_LENGTH:
        raise CategoryPathError(f"category path of {len(path)} characters (at most {CATEGORY_PATH_MAX_LENGTH})")
    return path


def at_depth(path: str, depth: int) -> str:
    """The ancestor of `path` at `depth` (1 = top level); the path itself when it is shallower."""
    return PATH_SEPARATOR.join(path.split(PATH_SEPARATOR)[:depth])


def ancestor_paths(path: str) -> list[str]:
    """'A / B / C' -> ['A', 'A / B', 'A / B / C'] (the path itself last)."""
    parts = path.split(PATH_SEPARATOR)
    return [join_path(parts[: depth + 1]) for depth in range(len(parts))]


def _shown(text: str, limit: int = 60) -> str:
    """A bounded repr for messages: a 40 KB name must not become a 40 KB error."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"

"""Creating and resolving taxonomy versions and their category trees."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from annotation.errors import ErrorMapError
from taxonomy.models import PATH_SEPARATOR, Category, Taxonomy, TaxonomyVersion


@dataclass(frozen=True)
class CategorySpec:
    """A category to create: its full path from the top level, and a description."""

    path: str
    description: str = ""


def split_path(path: str) -> list[str]:
    """'A / B' -> ['A', 'B'] (also accepts '/' without spaces); empty parts are dropped."""
    parts = [p.strip() for p in path.replace(PATH_SEPARATOR, "/").split("/")]
    return [p for p in parts if p]


def join_path(parts: Iterable[str]) -> str:
    return PATH_SEPARATOR.join(parts)


def resolve_version(spec: str, *, create: bool = False) -> TaxonomyVersion:
    """'NAME' -> the current (latest) version; 'NAME@N' -> version N. With create, a missing taxonomy gets v1."""
    name, _, number = spec.partition("@")
    name = name.strip()
    if not name:
        raise ErrorMapError("taxonomy name is empty")
    taxonomy = Taxonomy.objects.filter(name=name).first()
    if taxonomy is None:
        if not create or number:
            known = ", ".join(Taxonomy.objects.values_list("name", flat=True)) or "none"
            raise ErrorMapError(f"unknown taxonomy {name!r} (known: {known})")
        taxonomy = Taxonomy.objects.create(name=name)
    if number:
        try:
            return taxonomy.versions.get(number=int(number))
        except (ValueError, TaxonomyVersion.DoesNotExist):
            raise ErrorMapError(f"taxonomy {name!r} has no version {number!r}") from None
    version = taxonomy.current_version()
    if version is None:
        if not create:
            raise ErrorMapError(f"taxonomy {name!r} has no version yet")
        version = TaxonomyVersion.objects.create(taxonomy=taxonomy, number=1)
    return version


def ensure_category(version: TaxonomyVersion, path: str, description: str = "") -> Category:
    """The category at `path` in `version`, creating it and any missing ancestors."""
    parts = split_path(path)
    if not parts:
        raise ErrorMapError("category name is empty")
    parent = None
    category = None
    for depth in range(1, len(parts) + 1):
        node_path = join_path(parts[:depth])
        category = Category.objects.filter(version=version, path=node_path).first()
        if category is None:
            category = Category.objects.create(
                version=version,
                parent=parent,
                name=parts[depth - 1],
                path=node_path,
                depth=depth,
                description=description if depth == len(parts) else "",
            )
        parent = category
    assert category is not None
    return category


@transaction.atomic
def create_version(
    *,
    taxonomy_name: str,
    categories: Iterable[CategorySpec],
    origin: str = TaxonomyVersion.Origin.MANUAL,
    note: str = "",
    config: dict | None = None,
) -> TaxonomyVersion:
    """A new version (number = latest + 1) holding exactly `categories` (ancestors added as needed)."""
    taxonomy, _ = Taxonomy.objects.get_or_create(name=taxonomy_name)
    previous = taxonomy.current_version()
    version = TaxonomyVersion.objects.create(
        taxonomy=taxonomy,
        number=(previous.number + 1) if previous else 1,
        origin=origin,
        previous=previous,
        note=note,
        config=config or {},
    )
    for spec in categories:
        category = ensure_category(version, spec.path, spec.description)
        if spec.description and category.description != spec.description:
            category.description = spec.description
            category.save(update_fields=["description"])
    return version


def category_index(version: TaxonomyVersion) -> dict[str, Category]:
    """Lower-cased path -> category, for case-insensitive matching of names from outside."""
    return {c.path.lower(): c for c in version.categories.all()}

"""Creating and resolving taxonomy versions and their category trees."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from annotation.errors import ErrorMapError
from taxonomy.core.paths import OTHER, PATH_SEPARATOR, ancestor_paths, join_path, split_path
from taxonomy.core.verdicts import NON_ERROR_VERDICTS, VERDICT_DESCRIPTIONS
from taxonomy.models import Category, CategoryMapping, Taxonomy, TaxonomyVersion


@dataclass(frozen=True)
class CategorySpec:
    """A category to create: its full path from the top level, and a description."""

    path: str
    description: str = ""


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


@dataclass(frozen=True)
class CategoryChange:
    """How a category of the base version carries over to a derived one, when it is not kept as is."""

    kind: str  # CategoryMapping.Kind: renamed, merged, split or retired
    targets: tuple[str, ...] = ()  # paths in the derived version (none for a retired category)


def add_categories(version: TaxonomyVersion, specs: Iterable[CategorySpec]) -> list[Category]:
    """Create the categories of `specs` missing from `version`, and their ancestors, in a few queries.

    Linear in the number of categories: paths are matched case-insensitively against one read of the
    version's tree and created level by level with bulk inserts (a query per new category, and a
    re-read of the tree after each, made a 4,000-category import take minutes). A spec whose category
    exists already only updates a changed, non-empty description. Returns the categories created.
    """
    index = category_index(version)
    wanted: dict[str, tuple[str, str]] = {}  # lower-cased path -> (path as first spelled, description)
    for spec in specs:
        parts = split_path(spec.path)
        if not parts:
            raise ErrorMapError("category name is empty")
        for path in ancestor_paths(join_path(parts)):
            key = path.lower()
            if key in index:
                continue
            spelled = wanted.get(key)
            if spelled is None:
                # A child keeps its ancestors' spelling, so one tree node never gets two paths.
                parent = key.rpartition(PATH_SEPARATOR)[0]
                prefix = wanted[parent][0] if parent in wanted else index[parent].path if parent else ""
                wanted[key] = (f"{prefix} / {path.rpartition(' / ')[2]}" if prefix else path, "")
        key = join_path(parts).lower()
        if spec.description:
            if key in wanted:
                wanted[key] = (wanted[key][0], spec.description)
            elif index[key].description != spec.description:
                index[key].description = spec.description
                index[key].save(update_fields=["description"])
    created: list[Category] = []
    by_depth: dict[int, list[str]] = {}
    for key, (path, _) in wanted.items():
        by_depth.setdefault(path.count(PATH_SEPARATOR) + 1, []).append(key)
    for depth in sorted(by_depth):
        level = [
            Category(
                version=version,
                parent=index[key.rpartition(PATH_SEPARATOR)[0]] if depth > 1 else None,
                name=wanted[key][0].rpartition(PATH_SEPARATOR)[2],
                path=wanted[key][0],
                depth=depth,
                description=wanted[key][1],
            )
            for key in by_depth[depth]
        ]
        # Both databases return the new primary keys, which the next level needs as parents.
        Category.objects.bulk_create(level, batch_size=500)
        for category in level:
            index[category.path.lower()] = category
        created.extend(level)
    return created


@transaction.atomic
def create_version(
    *,
    taxonomy_name: str,
    categories: Iterable[CategorySpec],
    origin: str = TaxonomyVersion.Origin.MANUAL,
    note: str = "",
    config: dict[str, Any] | None = None,
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
    add_categories(version, categories)
    return version


@transaction.atomic
def derive_version(
    *,
    base: TaxonomyVersion,
    added: Iterable[CategorySpec] = (),
    changes: dict[str, CategoryChange] | None = None,
    origin: str = TaxonomyVersion.Origin.REFINED,
    note: str = "",
    config: dict[str, Any] | None = None,
) -> TaxonomyVersion:
    """A new version of `base`'s taxonomy (number = latest + 1, previous = `base`); `base` is not touched.

    The new tree is `base`'s (descriptions included) without the categories named in `changes`
    (keyed by their path in `base`), plus the changes' targets and `added`. Every category of `base`
    gets a CategoryMapping: `kept` to the same path, or as its change says (a retired category maps to
    nothing). The children of a changed category must be named in `changes` too.
    """
    changes = changes or {}
    old = list(base.categories.order_by("depth", "path"))
    old_paths = {c.path for c in old}
    unknown = sorted(set(changes) - old_paths)
    if unknown:
        raise ErrorMapError(f"{base} has no categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}")
    dropped = {path for path, change in changes.items() if change.kind != CategoryMapping.Kind.KEPT}
    orphans = [
        c.path for c in old
        if c.path not in changes and any(a in dropped for a in ancestor_paths(c.path)[:-1])
    ]
    if orphans:
        raise ErrorMapError(f"say what becomes of the children of a changed category: {', '.join(orphans)}")
    specs = [CategorySpec(c.path, c.description) for c in old if c.path not in dropped]
    specs += [CategorySpec(target) for change in changes.values() for target in change.targets]
    specs += list(added)
    version = TaxonomyVersion.objects.create(
        taxonomy=base.taxonomy,
        number=base.taxonomy.versions.order_by("-number").values_list("number", flat=True)[0] + 1,
        origin=origin,
        previous=base,
        note=note,
        config=config or {},
    )
    add_categories(version, specs)
    index = category_index(version)
    mappings = []
    for category in old:
        change = changes.get(category.path)
        if change is None:
            mappings.append(CategoryMapping(source=category, target=index[category.path.lower()],
                                            kind=CategoryMapping.Kind.KEPT))
            continue
        targets: list[Category | None] = [index[join_path(split_path(t)).lower()] for t in change.targets]
        mappings.extend(CategoryMapping(source=category, target=t, kind=change.kind) for t in targets or [None])
    CategoryMapping.objects.bulk_create(mappings, batch_size=500)
    return version


def version_in_use(version: TaxonomyVersion) -> bool:
    """True once anything outside the taxonomy app (labels, Label Studio projects, adjudication) points
    at `version`: from then on its categories are fixed, and a change is a derived version."""
    for relation in version._meta.related_objects:
        model = relation.related_model
        if (model._meta.app_label != "taxonomy"
                and model._base_manager.filter(**{relation.field.name: version}).exists()):
            return True
    return False


def category_index(version: TaxonomyVersion) -> dict[str, Category]:
    """Lower-cased path -> category, for case-insensitive matching of names from outside."""
    return {c.path.lower(): c for c in version.categories.all()}


def ensure_verdict_categories(version: TaxonomyVersion) -> list[Category]:
    """The version's top-level verdict categories (not an error, broken item), created when missing;
    they are offered beside the error categories and counted apart from them."""
    return [ensure_category(version, verdict, VERDICT_DESCRIPTIONS[verdict]) for verdict in NON_ERROR_VERDICTS]


def leaf_categories(version: TaxonomyVersion) -> list[Category]:
    """The version's categories without children, by path: what a label may name."""
    categories = list(version.categories.order_by("path"))
    parents = {c.parent_id for c in categories}
    return [c for c in categories if c.id not in parents]


def category_text(category: Category, by_id: dict[int, Category]) -> str:
    """Path words plus the descriptions of the category and its ancestors (what a title is matched with)."""
    parts = [category.path.replace(PATH_SEPARATOR, " "), category.description]
    node = by_id.get(category.parent_id) if category.parent_id else None
    while node is not None:
        parts.append(node.description)
        node = by_id.get(node.parent_id) if node.parent_id else None
    return " ".join(p for p in parts if p)


class CategoryResolver:
    """Maps category paths given from outside (annotations made under any version of the taxonomy) to
    categories of one version, following CategoryMapping from older versions (renamed, merged, kept).
    Split or retired categories stay under the older version (nothing is guessed); unknown paths become
    'Other' (made with `other_description` when the version has none) with the path kept as a proposal."""

    def __init__(self, version: TaxonomyVersion, *, other_description: str = ""):
        self.version = version
        self.other_description = other_description
        self._cache: dict[str, tuple[Category, str]] = {}
        self._current = {c.path.lower(): c for c in version.categories.all()}
        self._older: list[TaxonomyVersion] = []
        previous = version.previous
        while previous is not None and previous.pk not in {v.pk for v in self._older}:
            self._older.append(previous)
            previous = previous.previous

    def resolve(self, parts: list[str]) -> tuple[Category, str]:
        """(category, proposal text when the path was not a category)."""
        path = join_path(p.strip() for p in parts)
        key = path.lower()
        if key not in self._cache:
            self._cache[key] = self._resolve(path, key)
        return self._cache[key]

    def _resolve(self, path: str, key: str) -> tuple[Category, str]:
        if key in self._current:
            return self._current[key], ""
        if key == OTHER.lower():
            return self.other(), ""
        for older in self._older:
            category = older.categories.filter(path__iexact=path).first()
            if category is not None:
                return self._follow(category), ""
        return self.other(), path

    def _follow(self, category: Category) -> Category:
        seen = set()
        while category.version_id != self.version.pk and category.pk not in seen:
            seen.add(category.pk)
            targets = list(
                CategoryMapping.objects.filter(source=category, target__isnull=False).select_related("target")
            )
            target = targets[0].target if len(targets) == 1 else None
            if target is None:
                return category  # split, retired or unmapped: keep the older version's category
            category = target
        return category

    def other(self) -> Category:
        """The version's top-level 'Other', created on first need."""
        if OTHER.lower() not in self._current:
            self._current[OTHER.lower()] = ensure_category(self.version, OTHER, self.other_description)
        return self._current[OTHER.lower()]

"""The version service: derived versions leave their base untouched and map every category; category
creation costs a fixed number of queries however many categories there are."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.errors import ErrorMapError
from taxonomy.core.paths import (
    CATEGORY_NAME_MAX_LENGTH,
    CATEGORY_PATH_MAX_LENGTH,
    CategoryPathError,
    parse_category_path,
)
from taxonomy.models import Category, CategoryMapping, TaxonomyVersion
from taxonomy.services.versions import (
    CategoryChange,
    CategorySpec,
    add_categories,
    create_version,
    derive_version,
)

pytestmark = pytest.mark.django_db


def tree(version: TaxonomyVersion) -> list[tuple]:
    return sorted(version.categories.values_list("pk", "path", "name", "depth", "parent__path", "description"))


def mappings(version: TaxonomyVersion) -> set[tuple]:
    return set(
        CategoryMapping.objects.filter(source__version=version).values_list("source__path", "target__path", "kind")
    )


def base_version() -> TaxonomyVersion:
    return create_version(taxonomy_name="t", categories=[
        CategorySpec("Accuracy / Mistranslation", "wrong meaning"),
        CategorySpec("Accuracy / Omission"),
        CategorySpec("Fluency", "reads badly"),
        CategorySpec("Style"),
    ])


def test_derived_version_copies_the_tree_maps_every_category_and_leaves_the_base_alone():
    base = base_version()
    before = tree(base)
    derived = derive_version(base=base, added=[CategorySpec("Fluency / Grammar", "agreement")], note="added")
    assert tree(base) == before
    assert (derived.number, derived.previous, derived.taxonomy) == (2, base, base.taxonomy)
    assert sorted(row[1:] for row in tree(derived)) == [
        ("Accuracy", "Accuracy", 1, None, ""),
        ("Accuracy / Mistranslation", "Mistranslation", 2, "Accuracy", "wrong meaning"),
        ("Accuracy / Omission", "Omission", 2, "Accuracy", ""),
        ("Fluency", "Fluency", 1, None, "reads badly"),
        ("Fluency / Grammar", "Grammar", 2, "Fluency", "agreement"),
        ("Style", "Style", 1, None, ""),
    ]
    assert mappings(base) == {(p, p, "kept") for _, p, *_ in before}


def test_changes_map_renamed_merged_split_and_retired_categories():
    base = base_version()
    derived = derive_version(base=base, changes={
        "Style": CategoryChange(CategoryMapping.Kind.RENAMED, ("Register",)),
        "Accuracy / Omission": CategoryChange(CategoryMapping.Kind.MERGED, ("Accuracy / Mistranslation",)),
        "Fluency": CategoryChange(CategoryMapping.Kind.SPLIT, ("Fluency / Grammar", "Fluency / Spelling")),
        "Accuracy / Mistranslation": CategoryChange(CategoryMapping.Kind.KEPT, ("Accuracy / Mistranslation",)),
    })
    assert sorted(derived.categories.values_list("path", flat=True)) == [
        "Accuracy", "Accuracy / Mistranslation", "Fluency", "Fluency / Grammar", "Fluency / Spelling", "Register",
    ]
    assert mappings(base) == {
        ("Accuracy", "Accuracy", "kept"),
        ("Accuracy / Mistranslation", "Accuracy / Mistranslation", "kept"),
        ("Accuracy / Omission", "Accuracy / Mistranslation", "merged"),
        ("Fluency", "Fluency / Grammar", "split"),
        ("Fluency", "Fluency / Spelling", "split"),
        ("Style", "Register", "renamed"),
    }
    third = derive_version(base=derived, changes={"Register": CategoryChange(CategoryMapping.Kind.RETIRED)})
    assert third.number == 3 and not third.categories.filter(path="Register").exists()
    assert ("Register", None, "retired") in mappings(derived)


def test_changes_must_name_existing_categories_and_their_children():
    base = base_version()
    with pytest.raises(ErrorMapError, match="has no category Nope"):
        derive_version(base=base, changes={"Nope": CategoryChange(CategoryMapping.Kind.RETIRED)})
    with pytest.raises(ErrorMapError, match="children of a changed category: Accuracy / Mistranslation"):
        derive_version(base=base, changes={
            "Accuracy": CategoryChange(CategoryMapping.Kind.RENAMED, ("Adequacy",)),
            "Accuracy / Omission": CategoryChange(CategoryMapping.Kind.RENAMED, ("Adequacy / Omission",)),
        })
    assert TaxonomyVersion.objects.count() == 1


def category_creation_queries(count: int) -> int:
    version = create_version(taxonomy_name=f"n{count}", categories=[])
    specs = [CategorySpec(f"Top {i % 7} / Mid {i % 31} / Leaf {i}") for i in range(count)]
    with CaptureQueriesContext(connection) as queries:
        add_categories(version, specs)
    assert version.categories.filter(depth=3).count() == count
    return len(queries)


def test_category_creation_takes_a_query_per_batch_of_rows_not_per_category():
    # 2,224 new nodes (7 + 217 + 2,000) on 3 levels: one read of the tree, then bulk INSERTs of at
    # most a few hundred rows each (SQLite's variable limit). Before: a SELECT and an INSERT per node,
    # and import_labels re-read the whole tree after each new category (quadratic).
    assert category_creation_queries(100) <= 5
    assert category_creation_queries(2000) <= 20


def test_a_child_keeps_the_spelling_of_an_existing_parent():
    version = create_version(taxonomy_name="t", categories=[CategorySpec("Fluency")])
    add_categories(version, [CategorySpec("fluency / Grammar"), CategorySpec("FLUENCY/Spelling")])
    assert sorted(version.categories.values_list("path", "parent__path")) == [
        ("Fluency", None), ("Fluency / Grammar", "Fluency"), ("Fluency / Spelling", "Fluency")]


def test_path_bounds_are_the_database_columns():
    assert Category._meta.get_field("name").max_length == CATEGORY_NAME_MAX_LENGTH
    assert Category._meta.get_field("path").max_length == CATEGORY_PATH_MAX_LENGTH


@pytest.mark.parametrize("text,expected", [
    ("Fluency/Grammar", "Fluency / Grammar"),
    (" Accuracy /  Omission ", "Accuracy / Omission"),
    ("Other", "Other"),
])
def test_paths_are_read_with_a_slash_between_levels(text, expected):
    assert parse_category_path(text) == expected


@pytest.mark.parametrize("text,message", [
    ("A / / B", "empty level"),
    ("A/", "empty level"),
    (" / ", "only separators"),
    ("//", "only separators"),
    ("/".join(["x"] * 10_000), "10000 levels"),
    ("x" * 201, "name of 201 characters"),
    (" / ".join(["y" * 199] * 6), "path of 1209 characters"),
])
def test_bad_paths_are_refused_with_the_reason(text, message):
    with pytest.raises(CategoryPathError, match=message):
        parse_category_path(text)

"""Taxonomies, their versions, the category tree of each version and version-to-version mappings."""
from __future__ import annotations

from typing import ClassVar

from django.db import models

from taxonomy.core.paths import CATEGORY_NAME_MAX_LENGTH, CATEGORY_PATH_MAX_LENGTH


class Taxonomy(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "taxonomies"

    def __str__(self) -> str:
        return self.name

    def current_version(self) -> TaxonomyVersion | None:
        return self.versions.order_by("-number").first()


class TaxonomyVersion(models.Model):
    class Origin(models.TextChoices):
        IMPORTED = "imported"
        INDUCED = "induced"
        MANUAL = "manual"
        REFINED = "refined"

    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.MANUAL)
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_versions"
    )
    note = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["taxonomy", "number"], name="unique_taxonomy_version"),
        )
        ordering: ClassVar[list[str]] = ["taxonomy", "number"]

    def __str__(self) -> str:
        return f"{self.taxonomy.name}@{self.number}"


class Category(models.Model):
    """A node of one version's tree; `path` names it from the top level down, e.g. 'Accuracy / Mistranslation'."""

    version = models.ForeignKey(TaxonomyVersion, on_delete=models.CASCADE, related_name="categories")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    name = models.CharField(max_length=CATEGORY_NAME_MAX_LENGTH)
    description = models.TextField(blank=True)
    path = models.CharField(max_length=CATEGORY_PATH_MAX_LENGTH)
    depth = models.PositiveSmallIntegerField(default=1)

    class Meta:
        verbose_name_plural = "categories"
        constraints = (
            models.UniqueConstraint(fields=["version", "path"], name="unique_category_path"),
        )
        ordering: ClassVar[list[str]] = ["version", "path"]

    def __str__(self) -> str:
        return self.path


class CategoryMapping(models.Model):
    """How a category of one version carries over to the next (kept, renamed, merged, split, retired)."""

    class Kind(models.TextChoices):
        KEPT = "kept"
        RENAMED = "renamed"
        MERGED = "merged"
        SPLIT = "split"
        RETIRED = "retired"

    source = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="mapped_to")
    target = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.CASCADE, related_name="mapped_from"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["source", "target"], name="unique_category_mapping"),
        )


class TaxonomyProposal(models.Model):
    """A proposed change to a taxonomy version (add, merge, split, rewrite, retire) with its evidence.

    Proposals are never applied by themselves: a person accepts some, which derives a new version.
    """

    class Kind(models.TextChoices):
        ADD = "add"
        MERGE = "merge"
        SPLIT = "split"
        REWRITE = "rewrite"
        RETIRE = "retire"

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"

    version = models.ForeignKey(TaxonomyVersion, on_delete=models.CASCADE, related_name="proposals")
    # Hash of (kind, categories, new name): a re-run refreshes the evidence of the same proposal.
    key = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    categories = models.JSONField(default=list, help_text="paths in `version` the proposal is about")
    new_name = models.CharField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, help_text="labels it was computed from: human or gold")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    accepted_in = models.ForeignKey(TaxonomyVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="accepted_proposals")
    decided_by = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=["version", "key"], name="unique_taxonomy_proposal"),)
        ordering: ClassVar[list[str]] = ["version", "id"]

    def __str__(self) -> str:
        return f"{self.version} #{self.pk} {self.kind}"

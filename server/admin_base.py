"""The admin base of both apps: a delete confirmation that counts what would go instead of listing it.

Django's own confirmation collects and prints every related row: at a few thousand predictions the page
takes many seconds, at a million it never answers. Here each cascade is counted with one COUNT per
relation (a subquery over the rows above it), so the page costs the same whatever the row counts.
"""
from __future__ import annotations

import operator
from functools import reduce
from typing import Any, TypeVar

from django.contrib import admin
from django.db import models
from django.db.models import Q
from django.db.models.query import QuerySet
from django.http import HttpRequest

_Model = TypeVar("_Model", bound=models.Model)

# Deeper cascades than this are not followed (the category tree's self-reference is bounded well below it).
MAX_CASCADE_DEPTH = 12


def _cascades(queryset: QuerySet[Any], reached: dict[type[models.Model], list[QuerySet[Any]]],
              protecting: dict[type[models.Model], list[QuerySet[Any]]], depth: int) -> None:
    """Gather, per model, the row sets `queryset`'s delete reaches by CASCADE and those that PROTECT it."""
    if depth >= MAX_CASCADE_DEPTH:
        return
    for relation in queryset.model._meta.related_objects:
        if relation.many_to_many or not relation.field.concrete:
            continue  # many-to-many link rows go with their object
        on_delete = relation.field.remote_field.on_delete
        related = relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": queryset})
        if on_delete is models.CASCADE and related.exists():
            reached.setdefault(relation.related_model, []).append(related.values("pk"))
            _cascades(related.values("pk"), reached, protecting, depth + 1)
        elif on_delete is models.PROTECT and related.exists():
            protecting.setdefault(relation.related_model, []).append(related.values("pk"))


def _union(model: type[models.Model], sets: list[QuerySet[Any]]) -> QuerySet[Any]:
    return model._base_manager.filter(reduce(operator.or_, (Q(pk__in=rows) for rows in sets)))


def cascade_counts(queryset: QuerySet[Any]) -> tuple[dict[type[models.Model], int], dict[type[models.Model], int]]:
    """(rows deleted with `queryset`, its own included; rows that stop the delete), per model, without fetching.

    A row reached by two paths counts once; a PROTECT row that the same delete removes does not stop it
    (as in Django's collector).
    """
    protecting: dict[type[models.Model], list[QuerySet[Any]]] = {}
    reached: dict[type[models.Model], list[QuerySet[Any]]] = {queryset.model: [queryset.values("pk")]}
    _cascades(queryset.values("pk"), reached, protecting, 0)
    deleted = {model: _union(model, sets).count() for model, sets in reached.items()}
    blocked = {}
    for model, sets in protecting.items():
        rows = _union(model, sets)
        if model in reached:
            rows = rows.exclude(pk__in=_union(model, reached[model]).values("pk"))
        if n := rows.count():
            blocked[model] = n
    return deleted, blocked


def _described(model: type[models.Model], n: int) -> str:
    meta = model._meta
    return f"{n:,} {meta.verbose_name if n == 1 else meta.verbose_name_plural}"


class CountingDeleteAdmin(admin.ModelAdmin[_Model]):
    """ModelAdmin whose delete confirmation (page and bulk action) shows counts per model, not every row."""

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        model = self.model
        chosen = objs if isinstance(objs, QuerySet) else model._base_manager.filter(pk__in=[o.pk for o in objs])
        deleted, protecting = cascade_counts(chosen)
        user = request.user
        perms_needed = {
            str(m._meta.verbose_name) for m in deleted
            if not user.has_perm(f"{m._meta.app_label}.delete_{m._meta.model_name}")
        }
        summary = [_described(m, n) for m, n in sorted(deleted.items(), key=lambda kv: kv[0]._meta.label)]
        protected = [_described(m, n) for m, n in sorted(protecting.items(), key=lambda kv: kv[0]._meta.label)]
        model_count = {str(m._meta.verbose_name_plural): n for m, n in deleted.items()}
        return summary, model_count, perms_needed, protected

"""Celery tasks of the taxonomy stages: thin wrappers that call the same services as the commands."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from annotation.tasks import report_fields
from taxonomy.services.induction import induce_taxonomy, prelabel_failures
from taxonomy.services.refinement import refine_judge


@shared_task
def induce_taxonomy_task(**options: Any) -> dict[str, Any]:
    """`induce_taxonomy`: a new induced taxonomy version and the judge's labels at its leaves."""
    return report_fields(induce_taxonomy(**options))


@shared_task
def prelabel_task(**options: Any) -> dict[str, Any]:
    """`prelabel`: the judge labels every analysed failure with a leaf of a taxonomy version."""
    return report_fields(prelabel_failures(**options))


@shared_task
def refine_judge_task(**options: Any) -> dict[str, Any]:
    """`refine_judge`: a candidate judge prompt from gold, accepted only if it beats the current one."""
    return refine_judge(**options)

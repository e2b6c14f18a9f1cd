"""Sample failures into a named, reproducible work set, stratified per (model, dataset)."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from annotation.core.failure_rules import MAX_ABS_SCORE
from annotation.core.sampling import stratified_sample
from annotation.errors import ErrorMapError
from annotation.models import Dataset, Prediction, WorkSet, WorkSetFailure
from annotation.services.ingest import apply_failure_rule
from annotation.services.runs import stage_run


@dataclass(frozen=True)
class StratumCount:
    dataset: str
    model: str
    failures: int
    sampled: int


@dataclass(frozen=True)
class SampleReport:
    work_set: str
    created: bool
    ratio: float
    seed: int
    thresholds: dict[str, float | None]
    strata: list[StratumCount]
    members: int  # failures in the work set
    # For an existing (frozen) set: failures a draw with the same parameters would now add or drop
    # (results re-ingested since); the set itself is never changed.
    differs_from_a_new_draw: int = 0

    @property
    def sampled(self) -> int:
        return self.members


def default_work_set_name(*, ratio: float, seed: int, datasets: list[str], models: list[str]) -> str:
    parts = [f"r{ratio:g}", f"s{seed}"]
    if datasets:
        parts.append("d-" + "+".join(sorted(datasets)))
    if models:
        parts.append("m-" + "+".join(sorted(models)))
    return "ws-" + "-".join(parts)


def set_thresholds(thresholds: dict[str, float]) -> None:
    """Fix datasets' success thresholds (overriding 0.7 x mean); each must be a finite number."""
    for name, value in thresholds.items():
        if not math.isfinite(value) or abs(value) > MAX_ABS_SCORE:
            raise ErrorMapError(f"threshold {value!r} for {name!r} is not a finite number within +-{MAX_ABS_SCORE:g}")
        updated = Dataset.objects.filter(name=name).update(success_threshold=value)
        if not updated:
            raise ErrorMapError(f"unknown dataset {name!r}")


def sample_failures(
    *,
    ratio: float = 0.1,
    seed: int = 0,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    name: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> SampleReport:
    """Apply the failure rule, then sample. A work set is frozen once drawn: the same name with the same
    settings returns it unchanged, the same name with other settings is refused."""
    if not 0 < ratio <= 1:
        raise ErrorMapError(f"--ratio must be in (0, 1], got {ratio}")
    if not -(2**31) <= seed < 2**31:  # stored in a 32-bit column on every database
        raise ErrorMapError(f"--seed must fit in 32 bits, got {seed}")
    datasets, models = sorted(datasets or []), sorted(models or [])
    for label, wanted, known in (
        ("dataset", datasets, Dataset.objects.filter(name__in=datasets).values_list("name", flat=True)),
        ("model", models, Prediction.objects.filter(model__name__in=models).values_list("model__name", flat=True)),
    ):
        missing = sorted(set(wanted) - set(known))
        if missing:
            raise ErrorMapError(f"unknown {label}(s): {', '.join(missing)}")
    name = name or default_work_set_name(ratio=ratio, seed=seed, datasets=datasets, models=models)
    filters = {"datasets": datasets, "models": models}
    # The run row outside the stage's transaction: a refused or failed draw rolls back its work
    # (thresholds, flags, the set) but leaves its FAILED row.
    with stage_run("sample_failures", {"ratio": ratio, "seed": seed, "name": name, **filters}) as run, \
            transaction.atomic():
        if thresholds:
            set_thresholds(thresholds)
        scope = Dataset.objects.filter(name__in=datasets) if datasets else Dataset.objects.all()
        apply_failure_rule(dataset_ids=scope.values_list("pk", flat=True))
        failures = Prediction.objects.filter(is_failure=True, example__dataset__in=scope)
        if models:
            failures = failures.filter(model__name__in=models)
        strata: dict[tuple[str, str], list[str]] = defaultdict(list)
        pk_by_key: dict[tuple[str, str, str], int] = {}
        for pk, dataset, model, example_id in failures.values_list(
            "pk", "example__dataset__name", "model__name", "example__example_id"
        ):
            strata[(dataset, model)].append(example_id)
            pk_by_key[(dataset, model, example_id)] = pk
        existing = WorkSet.objects.filter(name=name).first()
        if existing is not None:
            _refuse_other_parameters(existing, ratio=ratio, seed=seed, filters=filters, thresholds=thresholds)
            # Frozen: the set keeps the members it was drawn with, whatever the results say now.
            members = set(existing.failures.values_list("prediction_id", flat=True))
            chosen = {stratum: [e for e in ids if pk_by_key[(stratum[0], stratum[1], e)] in members]
                      for stratum, ids in strata.items()}
            drawn_now = stratified_sample(strata, ratio=ratio, seed=seed)
            differing = len(members ^ {pk_by_key[(d, m, e)] for (d, m), ids in drawn_now.items() for e in ids})
            work_set, created, wanted_pks = existing, False, members
            thresholds_used = existing.thresholds
        else:
            chosen = stratified_sample(strata, ratio=ratio, seed=seed)
            thresholds_used = dict(scope.order_by("name").values_list("name", "applied_threshold"))
            wanted_pks = {pk_by_key[(d, m, e)] for (d, m), ids in chosen.items() for e in ids}
            work_set = WorkSet.objects.create(
                name=name, ratio=ratio, seed=seed, filters=filters, thresholds=thresholds_used
            )
            WorkSetFailure.objects.bulk_create(
                [WorkSetFailure(work_set=work_set, prediction_id=pk) for pk in sorted(wanted_pks)], batch_size=2000
            )
            created, differing = True, 0
        strata_counts = [
            StratumCount(dataset=d, model=m, failures=len(strata[(d, m)]), sampled=len(chosen[(d, m)]))
            for (d, m) in sorted(strata)
        ]
        run.counts = {"failures": sum(s.failures for s in strata_counts), "sampled": len(wanted_pks),
                      "created": int(created), "differs_from_a_new_draw": differing}
    return SampleReport(
        work_set=work_set.name, created=created, ratio=ratio, seed=seed,
        thresholds=thresholds_used, strata=strata_counts, members=len(wanted_pks),
        differs_from_a_new_draw=differing,
    )


def _refuse_other_parameters(existing: WorkSet, *, ratio: float, seed: int, filters: dict[str, Any],
                             thresholds: dict[str, float] | None) -> None:
    """A name stands for one draw: the same name with other parameters is an error, never a re-draw."""
    differences = [f"{what} {old!r} (asked {new!r})" for what, old, new in (
        ("ratio", existing.ratio, ratio), ("seed", existing.seed, seed),
        ("datasets", existing.filters.get("datasets", []), filters["datasets"]),
        ("models", existing.filters.get("models", []), filters["models"]),
    ) if old != new]
    for dataset, value in sorted((thresholds or {}).items()):
        drawn_with = existing.thresholds.get(dataset)
        if drawn_with != value:
            differences.append(f"threshold of {dataset} {drawn_with!r} (asked {value!r})")
    if differences:
        raise ErrorMapError(
            f"work set {existing.name!r} was drawn with other parameters: {'; '.join(differences)}. "
            "A work set never changes once drawn; choose another --name for a new draw")

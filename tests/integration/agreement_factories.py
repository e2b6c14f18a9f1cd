"""Plain factory helpers for agreement, judge-audit and adjudication tests: a taxonomy, items, labels."""
from __future__ import annotations

import hashlib

from annotation.models import (
    Annotator,
    Dataset,
    EvaluatedModel,
    Example,
    Label,
    LabelStudioProject,
    LabelStudioTask,
    Prediction,
    WorkSet,
)
from taxonomy.models import Category, TaxonomyVersion
from taxonomy.services.versions import CategorySpec, create_version, ensure_category


def make_version(paths: list[str], name: str = "errors") -> TaxonomyVersion:
    """A taxonomy version holding these category paths."""
    return create_version(taxonomy_name=name, categories=[CategorySpec(p) for p in paths])


def make_prediction(example_id: str, *, dataset: str = "ds", model: str = "m1",
                    output: str = "out", reference: str = "ref") -> Prediction:
    """One failed prediction (an item) with its example."""
    ds, _ = Dataset.objects.get_or_create(name=dataset)
    mod, _ = EvaluatedModel.objects.get_or_create(name=model)
    example, _ = Example.objects.get_or_create(
        dataset=ds, example_id=example_id, defaults={"input_text": f"input {example_id}",
                                                    "reference": reference})
    key = hashlib.sha256(f"{dataset}/{example_id}/{model}".encode()).hexdigest()
    return Prediction.objects.create(example=example, model=mod, output_text=output, score=0.0,
                                     is_failure=True, content_key=key)


def add_label(prediction: Prediction, version: TaxonomyVersion, annotator: str, *paths: str,
              source: str = "human", confidence: float | None = None,
              proposed_category: str = "") -> None:
    """The annotator's set of categories on the item (one Label row per category)."""
    kind = {"human": Annotator.Kind.HUMAN, "judge": Annotator.Kind.JUDGE,
            "gold": Annotator.Kind.ADJUDICATOR}[source]
    who, _ = Annotator.objects.get_or_create(name=annotator, defaults={"kind": kind})
    for path in paths:
        category = (Category.objects.filter(version=version, path=path).first()
                    or ensure_category(version, path))
        Label.objects.create(prediction=prediction, taxonomy_version=version, category=category,
                             source=source, annotator=who, confidence=confidence,
                             proposed_category=proposed_category)


def put_in_labelstudio_project(predictions: list[Prediction], version: TaxonomyVersion,
                               mode: str, project_id: int = 1) -> LabelStudioProject:
    """Record that these items were labelled in a Label Studio project of the given mode."""
    work_set, _ = WorkSet.objects.get_or_create(name=f"ws{project_id}", defaults={"ratio": 1, "seed": 0})
    project = LabelStudioProject.objects.create(labelstudio_id=project_id, title=f"p{project_id}",
                                                work_set=work_set, taxonomy_version=version, mode=mode)
    for i, prediction in enumerate(predictions):
        LabelStudioTask.objects.create(project=project, prediction=prediction,
                                       labelstudio_id=project_id * 10_000 + i)
    return project

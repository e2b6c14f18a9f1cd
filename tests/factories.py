"""Factories shared by the tests and the benchmarks: failures with a correct answer beside them, and
work sets of failures. Bulk inserts, so a benchmark's thousands of rows cost what a test's three do."""
from __future__ import annotations

import hashlib

from annotation.models import Dataset, EvaluatedModel, Example, Prediction, WorkSet, WorkSetFailure
from annotation.services.ingest import content_key


def make_failures(n: int, *, dataset: str = "arith", model: str = "model-a", correct_model: str = "model-b",
                  with_correct: bool = True) -> list[Prediction]:
    """n failing arithmetic answers of `model`, each example also answered correctly by `correct_model`."""
    ds, _ = Dataset.objects.get_or_create(name=dataset)
    failing, _ = EvaluatedModel.objects.get_or_create(name=model)
    other, _ = EvaluatedModel.objects.get_or_create(name=correct_model)
    examples = Example.objects.bulk_create(
        [Example(dataset=ds, example_id=f"{model}-{i}", input_text=f"What is {i} + 3 * 4?", reference=str(i + 12))
         for i in range(n)], batch_size=2000)
    wrong, right = [], []
    for i, ex in enumerate(examples):
        output = f"{i} + 3 = {i + 3}\n{i + 3} * 4 = {4 * (i + 3)}\nThe answer is {4 * (i + 3)}"
        wrong.append(Prediction(example=ex, model=failing, output_text=output, score=0, is_failure=True,
                                content_key=content_key(ex.input_text, output, ex.reference)))
        if with_correct:
            good = f"3 * 4 = 12, then {i} + 12 = {i + 12}. The answer is {i + 12}"
            right.append(Prediction(example=ex, model=other, output_text=good, score=1, is_failure=False,
                                    content_key=content_key(ex.input_text, good, ex.reference)))
    failures = Prediction.objects.bulk_create(wrong, batch_size=2000)
    Prediction.objects.bulk_create(right, batch_size=2000)
    return failures


def make_work_set(name: str, size: int, *, model: str = "model-a",
                  input_text: str = "Translate <b>sentence</b> {i}", output_text: str = "output {i} $output",
                  reference: str = "ref {i}") -> tuple[WorkSet, list[Prediction]]:
    """A work set of `size` failures in a dataset of its own ('{name}-data'); texts are templates of {i}."""
    dataset = Dataset.objects.create(name=f"{name}-data")
    evaluated, _ = EvaluatedModel.objects.get_or_create(name=model)
    work_set = WorkSet.objects.create(name=name, ratio=1.0, seed=0)
    examples = Example.objects.bulk_create(
        [Example(dataset=dataset, example_id=f"ex{i}", input_text=input_text.format(i=i),
                 reference=reference.format(i=i)) for i in range(size)], batch_size=2000)
    predictions = Prediction.objects.bulk_create(
        [Prediction(example=e, model=evaluated, output_text=output_text.format(i=i), score=0.1, is_failure=True,
                    content_key=hashlib.sha256(f"{name}{i}".encode()).hexdigest())
         for i, e in enumerate(examples)], batch_size=2000)
    WorkSetFailure.objects.bulk_create(
        [WorkSetFailure(work_set=work_set, prediction=p) for p in predictions], batch_size=2000)
    return work_set, predictions

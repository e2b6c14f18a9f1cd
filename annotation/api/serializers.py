"""API serializers: plain field lists over the models, and request shapes for the actions."""
from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from annotation.core.result_formats import FORMATS
from annotation.models import (
    AdjudicationItem,
    Dataset,
    EvaluatedModel,
    IngestUpload,
    Label,
    LabelStudioProject,
    Prediction,
    StageRun,
    WorkSet,
)
from annotation.services.runs import run_state


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = ("id", "name", "metric_name", "success_threshold", "applied_threshold", "source", "created_at")


class EvaluatedModelSerializer(serializers.ModelSerializer[EvaluatedModel]):
    class Meta:
        model = EvaluatedModel
        fields = ("id", "name")


class PredictionSerializer(serializers.ModelSerializer[Prediction]):
    dataset = serializers.CharField(source="example.dataset.name", read_only=True)
    example_id = serializers.CharField(source="example.example_id", read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    input_text = serializers.CharField(source="example.input_text", read_only=True)
    reference = serializers.CharField(source="example.reference", read_only=True)

    class Meta:
        model = Prediction
        fields = ("id", "dataset", "example_id", "model", "input_text", "output_text", "reference", "score",
                  "is_failure")


class WorkSetSerializer(serializers.ModelSerializer[WorkSet]):
    failures = serializers.IntegerField(source="n_failures", read_only=True)

    class Meta:
        model = WorkSet
        fields = ("id", "name", "ratio", "seed", "filters", "thresholds", "created_at", "failures")


class WorkSetCreateSerializer(serializers.Serializer[Any]):
    ratio = serializers.FloatField(default=0.1, min_value=0.0001, max_value=1.0)
    seed = serializers.IntegerField(default=0, min_value=-(2**31), max_value=2**31 - 1)
    datasets = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    models = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    name = serializers.CharField(required=False, allow_blank=False, max_length=200)
    thresholds = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)


class StageRunSerializer(serializers.ModelSerializer[StageRun]):
    state = serializers.SerializerMethodField(
        help_text="the status, or 'interrupted' for a running row whose process is gone")

    class Meta:
        model = StageRun
        fields = ("id", "stage", "status", "state", "config", "counts", "error", "started_at", "finished_at",
                  "pid", "host", "heartbeat_at")

    def get_state(self, run: StageRun) -> str:
        return run_state(run)


class LabelSerializer(serializers.ModelSerializer[Label]):
    taxonomy_version = serializers.CharField(source="taxonomy_version.__str__", read_only=True)
    category = serializers.CharField(source="category.path", read_only=True)
    annotator = serializers.CharField(source="annotator.name", read_only=True)
    model = serializers.CharField(source="prediction.model.name", read_only=True)
    dataset = serializers.CharField(source="prediction.example.dataset.name", read_only=True)
    example_id = serializers.CharField(source="prediction.example.example_id", read_only=True)

    class Meta:
        model = Label
        fields = ("id", "prediction", "dataset", "example_id", "model", "taxonomy_version", "category", "source",
                  "annotator", "confidence", "error_title", "error_summary", "rationale", "note",
                  "proposed_category", "external_id", "created_at", "updated_at")


class IngestUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField()
    dataset = serializers.CharField(required=False, allow_blank=True, max_length=200)
    format = serializers.ChoiceField(choices=list(FORMATS), default="auto")


class IngestUploadStatusSerializer(serializers.ModelSerializer[IngestUpload]):
    url = serializers.SerializerMethodField(help_text="where to poll this upload's status")

    class Meta:
        model = IngestUpload
        fields = ("id", "url", "status", "name", "size", "sha256", "dataset", "format", "error", "report",
                  "uploaded_by", "created_at", "started_at", "finished_at")


    def get_url(self, upload: IngestUpload) -> str:
        return str(self.context["request"].build_absolute_uri(reverse("api-ingest-status", args=[upload.pk])))


class LabelStudioProjectSerializer(serializers.ModelSerializer[LabelStudioProject]):
    work_set = serializers.CharField(source="work_set.name", read_only=True, allow_null=True)
    taxonomy_version = serializers.CharField(source="taxonomy_version.__str__", read_only=True)

    class Meta:
        model = LabelStudioProject
        fields = ("id", "labelstudio_id", "title", "work_set", "taxonomy_version", "mode", "overlap", "created_at")


class AgreementQuerySerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(required=False, allow_blank=True, help_text="NAME or NAME@N")
    source = serializers.MultipleChoiceField(choices=Label.Source.choices, required=False,  # type: ignore[assignment]  # named like a Field attribute
                                             help_text="label sources to compare (default human)")
    model = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    dataset = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    annotator = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    depth = serializers.IntegerField(required=False, min_value=1, max_value=10)
    reps = serializers.IntegerField(default=200, min_value=0, max_value=2000)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)
    ci_method = serializers.ChoiceField(choices=("units", "kalpha"), default="units")


class JudgeAuditQuerySerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(required=False, allow_blank=True, help_text="NAME or NAME@N")
    judge = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    model = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    dataset = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class AdjudicationItemSerializer(serializers.ModelSerializer[AdjudicationItem]):
    dataset = serializers.CharField(source="prediction.example.dataset.name", read_only=True)
    example_id = serializers.CharField(source="prediction.example.example_id", read_only=True)
    model = serializers.CharField(source="prediction.model.name", read_only=True)
    taxonomy_version = serializers.CharField(source="taxonomy_version.__str__", read_only=True)

    class Meta:
        model = AdjudicationItem
        fields = ("id", "prediction", "dataset", "example_id", "model", "taxonomy_version", "status", "why",
                  "labels", "created_at", "updated_at")


class GoldExportQuerySerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(required=False, allow_blank=True, help_text="NAME or NAME@N")
    model = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    dataset = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    limit = serializers.IntegerField(default=100, min_value=1, max_value=1000)
    offset = serializers.IntegerField(default=0, min_value=0)

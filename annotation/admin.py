"""Admin for benchmark data, work sets, runs, judging and labels (read-mostly; text shown escaped)."""
from django.apps import apps
from django.contrib import admin

from annotation import models
from server.admin_base import CountingDeleteAdmin


@admin.register(models.Dataset)
class DatasetAdmin(CountingDeleteAdmin[models.Dataset]):
    list_display = ("name", "metric_name", "success_threshold", "applied_threshold", "created_at")
    search_fields = ("name",)


@admin.register(models.EvaluatedModel)
class EvaluatedModelAdmin(CountingDeleteAdmin[models.EvaluatedModel]):
    search_fields = ("name",)


@admin.register(models.Example)
class ExampleAdmin(CountingDeleteAdmin[models.Example]):
    list_display = ("example_id", "dataset")
    list_filter = ("dataset",)
    search_fields = ("example_id",)
    list_select_related = ("dataset",)


@admin.register(models.Prediction)
class PredictionAdmin(CountingDeleteAdmin[models.Prediction]):
    list_display = ("example", "model", "score", "is_failure", "updated_at")
    list_filter = ("is_failure", "model", "example__dataset")
    search_fields = ("example__example_id",)
    list_select_related = ("example__dataset", "model")
    raw_id_fields = ("example",)
    show_full_result_count = False  # counting a million rows on every page is slow


class WorkSetFailureInline(admin.TabularInline[models.WorkSetFailure, models.WorkSet]):
    model = models.WorkSetFailure
    raw_id_fields = ("prediction",)
    extra = 0


@admin.register(models.WorkSet)
class WorkSetAdmin(CountingDeleteAdmin[models.WorkSet]):
    list_display = ("name", "ratio", "seed", "created_at")
    inlines = (WorkSetFailureInline,)


@admin.register(models.StageRun)
class StageRunAdmin(CountingDeleteAdmin[models.StageRun]):
    list_display = ("stage", "status", "started_at", "finished_at")
    list_filter = ("stage", "status")


@admin.register(models.Annotator)
class AnnotatorAdmin(CountingDeleteAdmin[models.Annotator]):
    list_display = ("name", "kind", "email", "labelstudio_user_id")
    list_filter = ("kind",)
    search_fields = ("name", "email")


@admin.register(models.PromptVersion)
class PromptVersionAdmin(CountingDeleteAdmin[models.PromptVersion]):
    list_display = ("stage", "name", "sha256", "created_at")


@admin.register(models.Analysis)
class AnalysisAdmin(CountingDeleteAdmin[models.Analysis]):
    list_display = ("error_title", "backend", "model_name", "status", "confidence", "created_at")
    list_filter = ("status", "backend")
    search_fields = ("error_title",)


@admin.register(models.ResponseCache)
class ResponseCacheAdmin(CountingDeleteAdmin[models.ResponseCache]):
    list_display = ("key", "prompt_tokens", "completion_tokens", "created_at")


@admin.register(models.Label)
class LabelAdmin(CountingDeleteAdmin[models.Label]):
    list_display = ("prediction", "category", "source", "annotator", "confidence", "updated_at")
    list_filter = ("source", "taxonomy_version")
    search_fields = ("category__path", "annotator__name")
    raw_id_fields = ("prediction", "analysis")
    list_select_related = ("prediction__example__dataset", "prediction__model", "category", "annotator")
    show_full_result_count = False


@admin.register(models.LabelStudioProject)
class LabelStudioProjectAdmin(CountingDeleteAdmin[models.LabelStudioProject]):
    list_display = ("title", "labelstudio_id", "work_set", "taxonomy_version", "mode", "overlap")


@admin.register(models.LabelStudioTask)
class LabelStudioTaskAdmin(CountingDeleteAdmin[models.LabelStudioTask]):
    list_display = ("labelstudio_id", "project", "prediction")
    raw_id_fields = ("prediction",)


# Models added later get a plain admin until they need more: every model stays reachable. Their
# foreign keys are raw ids: a select of every prediction (millions) would make each form unusable.
for _model in apps.get_app_config("annotation").get_models():
    if not admin.site.is_registered(_model):
        _keys = tuple(f.name for f in _model._meta.get_fields() if f.many_to_one and f.concrete)
        admin.site.register(_model, type(f"{_model.__name__}Admin", (CountingDeleteAdmin,), {"raw_id_fields": _keys}))

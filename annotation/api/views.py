"""REST API views for benchmark data, work sets, stage runs, labels and Label Studio progress: thin
wrappers that validate, call the same services as the commands, and serialize."""
from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import selectors
from annotation.api.serializers import (
    AdjudicationItemSerializer,
    AgreementQuerySerializer,
    DatasetSerializer,
    EvaluatedModelSerializer,
    GoldExportQuerySerializer,
    IngestUploadSerializer,
    IngestUploadStatusSerializer,
    JudgeAuditQuerySerializer,
    LabelSerializer,
    LabelStudioProjectSerializer,
    PredictionSerializer,
    StageRunSerializer,
    WorkSetCreateSerializer,
    WorkSetSerializer,
)
from annotation.api.uploads import PrivateUploadHandler
from annotation.errors import ErrorMapError
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
from annotation.selectors import LabelFilter, default_version, select_labels
from annotation.services.ingest_uploads import accept_ingest_upload, forget_ingest_upload, incoming_folder
from annotation.services.sampling import sample_failures
from annotation.tasks import ingest_upload_task

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _param(name: str, description: str, type_: type = str) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, required=False, description=description)


ID_PATTERN = "[0-9]{1,18}"  # object ids in URLs: larger numbers are not ids (404, not a database error)


_M = TypeVar("_M", bound=Model)


class ReadOnlyViewSet(viewsets.ReadOnlyModelViewSet[_M]):
    lookup_value_regex = ID_PATTERN


class DatasetViewSet(ReadOnlyViewSet[Dataset]):
    queryset = Dataset.objects.order_by("name")
    serializer_class = DatasetSerializer


class EvaluatedModelViewSet(ReadOnlyViewSet[EvaluatedModel]):
    queryset = EvaluatedModel.objects.order_by("name")
    serializer_class = EvaluatedModelSerializer


@extend_schema(parameters=[
    _param("dataset", "dataset name"), _param("model", "model name"),
    _param("is_failure", "true or false", bool),
])
class PredictionViewSet(ReadOnlyViewSet[Prediction]):
    serializer_class = PredictionSerializer

    def get_queryset(self) -> QuerySet[Prediction]:
        qs = Prediction.objects.select_related("example__dataset", "model").order_by("pk")
        params = self.request.query_params
        if params.get("dataset"):
            qs = qs.filter(example__dataset__name=params["dataset"])
        if params.get("model"):
            qs = qs.filter(model__name=params["model"])
        if params.get("is_failure") in ("true", "false", "1", "0"):
            qs = qs.filter(is_failure=params["is_failure"] in ("true", "1"))
        return qs


class WorkSetViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[WorkSet]):
    lookup_value_regex = ID_PATTERN
    serializer_class = WorkSetSerializer
    queryset = WorkSet.objects.annotate(n_failures=Count("failures")).order_by("-created_at", "-pk")

    @extend_schema(request=WorkSetCreateSerializer, responses={201: WorkSetSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Sample failures into a work set (same service as `manage.py sample_failures`)."""
        form = WorkSetCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        report = sample_failures(**form.validated_data)
        work_set = self.get_queryset().get(name=report.work_set)
        return Response(WorkSetSerializer(work_set).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_param("stage", "stage name, e.g. ingest"), _param("status", "running, succeeded, failed")])
class StageRunViewSet(ReadOnlyViewSet[StageRun]):
    serializer_class = StageRunSerializer

    def get_queryset(self) -> QuerySet[StageRun]:
        qs = StageRun.objects.order_by("-started_at", "-pk")
        params = self.request.query_params
        if params.get("stage"):
            qs = qs.filter(stage=params["stage"])
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        return qs


@extend_schema(parameters=[
    _param("source", "judge, human or gold"),
    _param("taxonomy", "NAME or NAME@N"),
    _param("model", "model name"),
    _param("dataset", "dataset name"),
    _param("annotator", "annotator name"),
    _param("category", "category path; its subtree is included"),
    _param("prediction", "prediction id", int),
])
class LabelViewSet(ReadOnlyViewSet[Label]):
    serializer_class = LabelSerializer

    def get_queryset(self) -> QuerySet[Label]:
        params = self.request.query_params
        source = params.get("source")
        one = {key: (params[key],) if params.get(key) else () for key in
               ("model", "dataset", "annotator", "category")}
        label_filter = LabelFilter(
            sources=(source,) if source in selectors.ALL_SOURCES else selectors.ALL_SOURCES,
            models=one["model"], datasets=one["dataset"], annotators=one["annotator"],
            categories=one["category"], taxonomy=params.get("taxonomy") or None)
        version = default_version(label_filter).version if label_filter.taxonomy else None
        qs = select_labels(label_filter, version).select_related(
            "taxonomy_version__taxonomy", "category", "annotator", "prediction__model", "prediction__example__dataset"
        ).order_by("pk")
        if source and source not in selectors.ALL_SOURCES:
            qs = qs.none()
        if params.get("prediction"):
            try:
                prediction = int(params["prediction"])
            except ValueError:
                prediction = -1
            # Out-of-range ids match nothing (SQLite integers are 64-bit).
            qs = qs.filter(prediction_id=prediction) if 0 < prediction < 2**63 else qs.none()
        return qs


class LabelStudioProjectViewSet(ReadOnlyViewSet[LabelStudioProject]):
    queryset = LabelStudioProject.objects.select_related("work_set", "taxonomy_version__taxonomy").order_by("pk")
    serializer_class = LabelStudioProjectSerializer


# Room for the multipart boundaries and the form's other fields beside the file itself.
UPLOAD_FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(ErrorMapError):
    """An upload over ERRORMAP_MAX_UPLOAD_BYTES: answered 413."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class QueueUnavailable(ErrorMapError):
    """The task queue refused the ingest: answered 503 (the same upload sent again is queued again)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


def _upload_status(request: Request, upload: IngestUpload) -> dict[str, object]:
    return dict(IngestUploadStatusSerializer(upload, context={"request": request}).data)


class IngestUploadView(APIView):
    parser_classes = (MultiPartParser, FormParser)

    def initialize_request(self, request: HttpRequest, *args: object, **kwargs: object) -> Request:
        # Before anything reads the body (the session CSRF check reads the form): the file streams
        # to a private file under var/, never into memory, and reading stops past the limit.
        self.upload_handler = PrivateUploadHandler(request, folder=incoming_folder(),
                                                   limit=settings.ERRORMAP_MAX_UPLOAD_BYTES)
        request.upload_handlers = [self.upload_handler]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": IngestUploadSerializer},
        responses={202: IngestUploadStatusSerializer, 200: IngestUploadStatusSerializer},
    )
    def post(self, request: Request) -> Response:
        """Upload one results file to be ingested by a task (the service of `manage.py ingest_results`).

        Answers 202 with the upload's id and the URL to poll; the same file for the same dataset and
        format again answers 200 with the existing upload and queues nothing."""
        try:
            return self._accept(request)
        finally:
            self.upload_handler.discard()

    def _accept(self, request: Request) -> Response:
        # Refused from the declared length before the body is read, and again while it streams.
        limit = settings.ERRORMAP_MAX_UPLOAD_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > limit + UPLOAD_FORM_OVERHEAD:
            raise UploadTooLarge(f"upload larger than {limit:,} bytes (the limit; ERRORMAP_MAX_UPLOAD_BYTES)")
        form = IngestUploadSerializer(data=request.data)
        if self.upload_handler.too_large:
            raise UploadTooLarge(f"upload larger than {limit:,} bytes (the limit; ERRORMAP_MAX_UPLOAD_BYTES)")
        form.is_valid(raise_exception=True)
        received = form.validated_data["file"]
        # Keep the suffix (it tells the format) but never trust the name as a path.
        name = SAFE_NAME.sub("_", Path(received.name or "upload").name).lstrip(".")[:200] or "upload"
        upload, queue = accept_ingest_upload(
            received=received.path, sha256=received.sha256, size=received.size, name=name,
            dataset=form.validated_data.get("dataset") or "", fmt=form.validated_data["format"],
            uploaded_by=request.user.get_username())
        if queue:
            try:
                ingest_upload_task.delay(upload_id=upload.pk)  # in process when no broker is configured
            except Exception as exc:
                forget_ingest_upload(upload)
                raise QueueUnavailable(f"the ingest could not be queued ({type(exc).__name__}); try again") from exc
            upload.refresh_from_db()
        return Response(_upload_status(request, upload),
                        status=status.HTTP_202_ACCEPTED if queue else status.HTTP_200_OK)


class IngestUploadStatusView(APIView):
    @extend_schema(responses=IngestUploadStatusSerializer)
    def get(self, request: Request, pk: str) -> Response:
        """An upload's status: queued, running, done (with the ingest report) or failed (with the
        `FILE:LINE` error)."""
        upload = IngestUpload.objects.get(pk=int(pk))
        return Response(_upload_status(request, upload))


class OverviewView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Headline counts (as on the dashboard)."""
        return Response(selectors.overview())


class LabelStudioProgressView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Annotation progress per Label Studio project."""
        rows = [{**asdict(p), "percent_complete": p.percent_complete} for p in selectors.labelstudio_progress()]
        return Response({"projects": rows})


def _list_query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """Query parameters through a serializer; repeated keys (?model=a&model=b) become lists."""
    data = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        field = serializer_class().fields.get(key)
        many = isinstance(field, (serializers.ListField, serializers.MultipleChoiceField))
        data[key] = values if many else values[-1]
    form = serializer_class(data=data)
    form.is_valid(raise_exception=True)
    return dict(form.validated_data)


class AgreementView(APIView):
    @extend_schema(parameters=[AgreementQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Agreement among annotators (same JSON as `manage.py agreement --json`)."""
        from annotation.selectors.agreement import compute_agreement

        q = _list_query(AgreementQuerySerializer, request)
        label_filter = LabelFilter(datasets=tuple(q["dataset"]), models=tuple(q["model"]),
                                   sources=tuple(sorted(q.get("source") or [Label.Source.HUMAN])),
                                   annotators=tuple(q["annotator"]), taxonomy=q.get("taxonomy") or None)
        return Response(compute_agreement(label_filter=label_filter, depth=q.get("depth"), reps=q["reps"],
                                          seed=q["seed"], ci_method=q["ci_method"]).to_dict())


class JudgeAuditView(APIView):
    @extend_schema(parameters=[JudgeAuditQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """The judge against the human majority and gold (same JSON as `manage.py judge_audit --json`)."""
        from annotation.selectors.judge_audit import audit_judge

        q = _list_query(JudgeAuditQuerySerializer, request)
        label_filter = LabelFilter(datasets=tuple(q["dataset"]), models=tuple(q["model"]),
                                   taxonomy=q.get("taxonomy") or None)
        return Response(audit_judge(label_filter=label_filter, judges=tuple(q["judge"])).to_dict())


@extend_schema(parameters=[_param("status", "open, resolved, auto_gold or all (default open)")])
class AdjudicationItemViewSet(ReadOnlyViewSet[AdjudicationItem]):
    serializer_class = AdjudicationItemSerializer

    def get_queryset(self) -> QuerySet[AdjudicationItem]:
        items: QuerySet[AdjudicationItem] = selectors.adjudication_queue(
            status=self.request.query_params.get("status") or "open")["items"]
        return items


class GoldExportView(APIView):
    @extend_schema(parameters=[GoldExportQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Gold items with texts, every source's labels, agreement and provenance (the records `export_gold` writes)."""
        from annotation.services.gold_export import gold_records

        q = _list_query(GoldExportQuerySerializer, request)
        version, records = gold_records(label_filter=LabelFilter(
            datasets=tuple(q["dataset"]), models=tuple(q["model"]), taxonomy=q.get("taxonomy") or None))
        return Response({"taxonomy_version": str(version), "count": len(records), "offset": q["offset"],
                         "results": records[q["offset"]: q["offset"] + q["limit"]]})

"""REST API routes (filled in by the API issue)."""
from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from annotation.api import adjudication, views
from annotation.api.labelstudio_webhook import labelstudio_webhook

router = DefaultRouter()
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("models", views.EvaluatedModelViewSet, basename="evaluated-model")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("work-sets", views.WorkSetViewSet, basename="work-set")
router.register("stage-runs", views.StageRunViewSet, basename="stage-run")
router.register("labels", views.LabelViewSet, basename="label")
router.register("labelstudio-projects", views.LabelStudioProjectViewSet, basename="labelstudio-project")
router.register("adjudication-items", views.AdjudicationItemViewSet, basename="adjudication-item")
urlpatterns = router.urls + [
    path("ingest/", views.IngestUploadView.as_view(), name="api-ingest"),
    path("overview/", views.OverviewView.as_view(), name="api-overview"),
    path("labelstudio-progress/", views.LabelStudioProgressView.as_view(), name="api-labelstudio-progress"),
    path("agreement/", views.AgreementView.as_view(), name="api-agreement"),
    path("judge-audit/", views.JudgeAuditView.as_view(), name="api-judge-audit"),
    path("gold-export/", views.GoldExportView.as_view(), name="api-gold-export"),
]
urlpatterns += [
    re_path(r"^ingest/(?P<pk>[0-9]{1,18})/$", views.IngestUploadStatusView.as_view(), name="api-ingest-status"),
    # Ids of at most 18 digits: larger numbers are not ids (404, not a database error).
    re_path(r"^adjudication/(?P<pk>[0-9]{1,18})/resolve/$", adjudication.ResolveAdjudicationView.as_view(),
            name="api-adjudication-resolve"),
    re_path(r"^adjudication/(?P<pk>[0-9]{1,18})/decisions/$", adjudication.AdjudicationDecisionsView.as_view(),
            name="api-adjudication-decisions"),
]
urlpatterns += [path("labelstudio/webhook/", labelstudio_webhook, name="labelstudio-webhook")]

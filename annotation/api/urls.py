"""REST API routes (filled in by the API issue)."""
from django.urls import path
from rest_framework.routers import DefaultRouter

from annotation.api import views
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
urlpatterns += [path("labelstudio/webhook/", labelstudio_webhook, name="labelstudio-webhook")]

"""Taxonomy REST API routes."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from taxonomy.api import views

router = SimpleRouter()
router.register("taxonomy-versions", views.TaxonomyVersionViewSet, basename="taxonomy-version")
urlpatterns = router.urls + [
    path("signatures/", views.SignaturesView.as_view(), name="api-signatures"),
    path("signatures/compare/", views.SignatureComparisonView.as_view(), name="api-signatures-compare"),
    path("atlas/", views.AtlasView.as_view(), name="api-atlas"),
    path("proposals/", views.ProposalsView.as_view(), name="api-proposals"),
    path("proposals/accept/", views.AcceptProposalsView.as_view(), name="api-proposals-accept"),
]

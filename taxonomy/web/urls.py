"""Web routes for signatures and the ErrorAtlas."""
from django.urls import path

from taxonomy.web import views

urlpatterns = [
    path("signatures/", views.signatures_page, name="signatures"),
    path("atlas/", views.atlas_page, name="atlas"),
    path("atlas/examples/", views.atlas_examples_page, name="atlas-examples"),
    path("atlas/versions/", views.atlas_versions_page, name="atlas-versions"),
    path("proposals/", views.proposals_page, name="proposals"),
    path("learning-curve/", views.learning_curve_page, name="learning-curve"),
]

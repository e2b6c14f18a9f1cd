"""URL routes: admin, the REST API and its schema."""
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# The API docs page is for signed-in users (a browser is sent to the login page) unless
# ERRORMAP_PUBLIC_API_DOCS opens it; the schema itself follows SPECTACULAR_SETTINGS' permissions.
api_docs = SpectacularSwaggerView.as_view(url_name="schema")
if not settings.ERRORMAP_PUBLIC_API_DOCS:
    api_docs = login_required(api_docs)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("annotation.api.urls")),
    path("api/", include("taxonomy.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("", include("annotation.web.urls")),
    path("", include("taxonomy.web.urls")),
]

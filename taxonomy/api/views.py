"""Taxonomy API: versions with their category trees, failure signatures, comparisons and the atlas tree."""
from __future__ import annotations

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.exceptions import ErrorMapAPIMixin
from taxonomy.api.serializers import (
    AtlasQuerySerializer,
    CompareQuerySerializer,
    SignatureQuerySerializer,
    TaxonomyVersionDetailSerializer,
    TaxonomyVersionSerializer,
)
from taxonomy.models import TaxonomyVersion
from taxonomy.services.signatures import (
    atlas,
    compare_groups,
    comparison_to_dict,
    failure_signatures,
)


class TaxonomyVersionViewSet(ErrorMapAPIMixin, viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = "[0-9]{1,18}"
    queryset = (
        TaxonomyVersion.objects.select_related("taxonomy", "previous__taxonomy")
        .annotate(n_categories=Count("categories"))
        .order_by("taxonomy__name", "number")
    )

    def get_serializer_class(self):
        return TaxonomyVersionDetailSerializer if self.action == "retrieve" else TaxonomyVersionSerializer


def _query(serializer_class, request) -> dict:
    form = serializer_class(data=request.query_params)
    form.is_valid(raise_exception=True)
    data = dict(form.validated_data)
    data["taxonomy"] = data.get("taxonomy") or None
    return data


class SignaturesView(ErrorMapAPIMixin, APIView):
    @extend_schema(parameters=[SignatureQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Failure signatures (same numbers as `manage.py signatures --json`)."""
        return Response(failure_signatures(**_query(SignatureQuerySerializer, request)).to_dict())


class SignatureComparisonView(ErrorMapAPIMixin, APIView):
    @extend_schema(parameters=[CompareQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """Which categories differ between two models or datasets (`manage.py signatures --compare A B --json`)."""
        return Response(comparison_to_dict(compare_groups(**_query(CompareQuerySerializer, request))))


class AtlasView(ErrorMapAPIMixin, APIView):
    @extend_schema(parameters=[AtlasQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        """The ErrorAtlas tree with counts and shares per node."""
        query = _query(AtlasQuerySerializer, request)
        query["model"] = query.get("model") or None
        query["dataset"] = query.get("dataset") or None
        return Response(atlas(**query).to_dict())

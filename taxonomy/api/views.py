"""Taxonomy API: versions with their category trees, failure signatures, comparisons, the atlas tree,
and change proposals (listing; accepting them is staff only)."""
from __future__ import annotations

from typing import Any

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from taxonomy.api.serializers import (
    AtlasQuerySerializer,
    CompareQuerySerializer,
    SignatureQuerySerializer,
    TaxonomyVersionDetailSerializer,
    TaxonomyVersionSerializer,
)
from taxonomy.models import TaxonomyVersion
from taxonomy.services.proposals import accept_proposals, list_proposals
from taxonomy.services.signatures import (
    atlas,
    compare_groups,
    comparison_to_dict,
    failure_signatures,
)


class TaxonomyVersionViewSet(viewsets.ReadOnlyModelViewSet[TaxonomyVersion]):
    lookup_value_regex = "[0-9]{1,18}"
    queryset = (
        TaxonomyVersion.objects.select_related("taxonomy", "previous__taxonomy")
        .annotate(n_categories=Count("categories"))
        .order_by("taxonomy__name", "number")
    )

    def get_serializer_class(self) -> type[TaxonomyVersionSerializer]:
        return TaxonomyVersionDetailSerializer if self.action == "retrieve" else TaxonomyVersionSerializer


def _query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    form = serializer_class(data=request.query_params)
    form.is_valid(raise_exception=True)
    data = dict(form.validated_data)
    data["taxonomy"] = data.get("taxonomy") or None
    return data


class SignaturesView(APIView):
    @extend_schema(parameters=[SignatureQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Failure signatures (same numbers as `manage.py signatures --json`)."""
        return Response(failure_signatures(**_query(SignatureQuerySerializer, request)).to_dict())


class SignatureComparisonView(APIView):
    @extend_schema(parameters=[CompareQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Which categories differ between two models or datasets (`manage.py signatures --compare A B --json`)."""
        return Response(comparison_to_dict(compare_groups(**_query(CompareQuerySerializer, request))))


class AtlasView(APIView):
    @extend_schema(parameters=[AtlasQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """The ErrorAtlas tree with counts and shares per node."""
        query = _query(AtlasQuerySerializer, request)
        query["model"] = query.get("model") or None
        query["dataset"] = query.get("dataset") or None
        return Response(atlas(**query).to_dict())


class AcceptProposalsSerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(max_length=200, help_text="taxonomy name")
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)
    reason = serializers.CharField(max_length=10_000, required=False, default="")


class ProposalsView(APIView):
    @extend_schema(parameters=[OpenApiParameter("taxonomy", str, required=True, description="NAME[@VERSION]")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Stored proposals of a version (as `propose_taxonomy_changes --json` prints them), with status."""
        return Response(list_proposals(taxonomy=request.query_params.get("taxonomy", "")))


class AcceptProposalsView(APIView):
    permission_classes = (IsAdminUser,)  # staff only: accepting changes the taxonomy everyone labels with

    @extend_schema(request=AcceptProposalsSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        """Accept proposals: makes NAME@V+1 with a mapping for every category (as `accept_proposals`)."""
        form = AcceptProposalsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        report = accept_proposals(taxonomy=form.validated_data["taxonomy"], ids=form.validated_data["ids"],
                                  by=request.user.get_username(), reason=form.validated_data["reason"])
        return Response(report.to_dict(), status=status.HTTP_201_CREATED)

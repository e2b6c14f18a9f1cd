"""REST adjudication: resolve a queue item (the same `resolve_item` as the command and the Label Studio
adjudication project; the authenticated user is who decided) and read an item's decision history."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ErrorMapError
from annotation.models import AdjudicationItem
from annotation.services.adjudication import decision_history, resolve_item


class ResolveSerializer(serializers.Serializer[Any]):
    category = serializers.CharField(required=False, max_length=300, help_text="gold category path, e.g. 'A / B'")
    categories = serializers.ListField(child=serializers.CharField(max_length=300), required=False,
                                       max_length=50, help_text="several gold category paths")
    reason = serializers.CharField(max_length=10_000, help_text="why these categories are gold")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        paths = list(attrs.get("categories") or [])
        if attrs.get("category"):
            paths.insert(0, attrs["category"])
        if not paths:
            raise serializers.ValidationError({"category": "give a category path (or categories)"})
        return {"categories": paths, "reason": attrs["reason"]}


DECISION_FIELDS: dict[str, serializers.Field[Any, Any, Any, Any]] = {
    "id": serializers.IntegerField(), "categories": serializers.ListField(child=serializers.CharField()),
    "method": serializers.CharField(), "rule": serializers.CharField(), "decided_by": serializers.CharField(),
    "reason": serializers.CharField(), "superseded": serializers.BooleanField(),
    "taxonomy_version": serializers.CharField(), "external_id": serializers.CharField(),
    "created_at": serializers.DateTimeField(),
}


def _queued(pk: str) -> AdjudicationItem:
    item = AdjudicationItem.objects.filter(pk=int(pk)).first()
    if item is None:
        raise AdjudicationItem.DoesNotExist(f"no adjudication queue item {pk}")
    return item


class ResolveAdjudicationView(APIView):
    @extend_schema(request=ResolveSerializer,
                   responses={201: inline_serializer("AdjudicationDecision", DECISION_FIELDS)})
    def post(self, request: Request, pk: str) -> Response:
        """Decide an item's gold categories, with the reason; you (the authenticated user) are who decided.
        A newer decision supersedes the older one (every decision is kept)."""
        item = _queued(pk)
        form = ResolveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        name = request.user.get_username()
        if not name:
            raise ErrorMapError("your account has no user name to record as the adjudicator")
        decision = resolve_item(item=str(item.pk), categories=form.validated_data["categories"], by=name,
                                reason=form.validated_data["reason"], external_id=f"api:{request.user.pk}")
        (data,) = [d for d in decision_history(item=str(item.pk)) if d["id"] == decision.pk]
        return Response(data, status=status.HTTP_201_CREATED)


class AdjudicationDecisionsView(APIView):
    @extend_schema(responses={200: inline_serializer("AdjudicationHistory", {
        "item": serializers.IntegerField(), "status": serializers.CharField(),
        "decisions": inline_serializer("AdjudicationDecision", DECISION_FIELDS, many=True)})})
    def get(self, request: Request, pk: str) -> Response:
        """Every decision on a queue item's prediction under its taxonomy version, oldest first."""
        item = _queued(pk)
        return Response({"item": item.pk, "status": item.status, "decisions": decision_history(item=str(item.pk))})

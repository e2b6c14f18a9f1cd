"""Taxonomy API serializers."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.models import Label
from taxonomy.models import Category, TaxonomyVersion


class CategorySerializer(serializers.ModelSerializer[Category]):
    parent = serializers.CharField(source="parent.path", read_only=True, default=None)  # type: ignore[assignment]  # a declared field named like a Field attribute (the stubs see an override)

    class Meta:
        model = Category
        fields = ("id", "name", "path", "depth", "parent", "description")


class TaxonomyVersionSerializer(serializers.ModelSerializer[TaxonomyVersion]):
    taxonomy = serializers.CharField(source="taxonomy.name", read_only=True)
    spec = serializers.CharField(source="__str__", read_only=True)
    # null for a first version (nullable in the schema); source="previous.__str__" found None's own
    # __str__ there and printed "<method-wrapper ...>".
    previous = serializers.CharField(read_only=True, allow_null=True)
    categories = serializers.IntegerField(source="n_categories", read_only=True)

    class Meta:
        model = TaxonomyVersion
        fields: tuple[str, ...] = ("id", "spec", "taxonomy", "number", "origin", "previous", "note", "config",
                                   "created_at", "categories")


class TaxonomyVersionDetailSerializer(TaxonomyVersionSerializer):
    category_tree = CategorySerializer(source="categories", many=True, read_only=True)

    class Meta(TaxonomyVersionSerializer.Meta):
        fields = (*TaxonomyVersionSerializer.Meta.fields, "category_tree")


class SignatureQuerySerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(required=False, allow_blank=True, help_text="NAME or NAME@N")
    source = serializers.ChoiceField(choices=Label.Source.choices, default=Label.Source.JUDGE)  # type: ignore[assignment]  # a declared field named like a Field attribute (the stubs see an override)
    by = serializers.ChoiceField(choices=("model", "dataset"), default="model")
    depth = serializers.IntegerField(default=1, min_value=1, max_value=10)


class CompareQuerySerializer(SignatureQuerySerializer):
    a = serializers.CharField(max_length=200)
    b = serializers.CharField(max_length=200)
    alpha = serializers.FloatField(default=0.05, min_value=1e-6, max_value=0.5)


class AtlasQuerySerializer(serializers.Serializer[Any]):
    taxonomy = serializers.CharField(required=False, allow_blank=True, help_text="NAME or NAME@N")
    source = serializers.ChoiceField(choices=Label.Source.choices, default=Label.Source.JUDGE)  # type: ignore[assignment]  # a declared field named like a Field attribute (the stubs see an override)
    model = serializers.CharField(required=False, allow_blank=True)
    dataset = serializers.CharField(required=False, allow_blank=True)

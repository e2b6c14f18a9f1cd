"""Admin for taxonomies, their versions, category trees and version mappings."""
from django.apps import apps
from django.contrib import admin

from server.admin_base import CountingDeleteAdmin
from taxonomy import models


class CategoryInline(admin.TabularInline[models.Category, models.TaxonomyVersion]):
    model = models.Category
    fields = ("path", "name", "description", "depth", "parent")
    raw_id_fields = ("parent",)
    extra = 0


@admin.register(models.Taxonomy)
class TaxonomyAdmin(CountingDeleteAdmin[models.Taxonomy]):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(models.TaxonomyVersion)
class TaxonomyVersionAdmin(CountingDeleteAdmin[models.TaxonomyVersion]):
    list_display = ("__str__", "origin", "previous", "created_at")
    list_filter = ("taxonomy", "origin")
    inlines = (CategoryInline,)


@admin.register(models.Category)
class CategoryAdmin(CountingDeleteAdmin[models.Category]):
    list_display = ("path", "version", "depth")
    list_filter = ("version",)
    search_fields = ("path", "description")


@admin.register(models.CategoryMapping)
class CategoryMappingAdmin(CountingDeleteAdmin[models.CategoryMapping]):
    list_display = ("source", "target", "kind")
    list_filter = ("kind",)


# Models added later get a plain admin until they need more: every model stays reachable.
for _model in apps.get_app_config("taxonomy").get_models():
    if not admin.site.is_registered(_model):
        admin.site.register(_model, CountingDeleteAdmin)

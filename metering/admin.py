from typing import Any

from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from core.spreadsheets import SpreadsheetCSV, SpreadsheetXLSX
from metering.models import ModelPrice
from metering.resources import ModelPriceResource
from tenants.roles import PLATFORM_ADMINS
from tenants.selectors import has_staff_role


@admin.register(ModelPrice)
class ModelPriceAdmin(ImportExportModelAdmin):
    """Browse, CSV import/export. Rows are added through the price rules (the previous row is closed);
    an import that would change an existing row's prices is refused."""

    resource_classes = [ModelPriceResource]
    # Files for a spreadsheet: a model name a client sent (the unpriced queue's) is never run as a formula.
    export_formats = [SpreadsheetCSV, SpreadsheetXLSX, base_formats.JSON]
    list_display = [
        "provider",
        "model",
        "input",
        "cached_input",
        "cache_write",
        "output",
        "reasoning",
        "effective_from",
        "effective_to",
        "source",
    ]
    list_filter = ["provider", "source"]
    search_fields = ["model", "provider"]
    readonly_fields = [
        "provider",
        "model",
        "effective_from",
        "effective_to",
        "currency",
        "input",
        "cached_input",
        "cache_write",
        "output",
        "reasoning",
        "per_request",
        "source",
        "created_at",
    ]

    # The price book is the platform admins' (SPEC §9): they browse it here, edit aliases and import CSV (the
    # portal's price book links here); other staff do not write prices — not through an import either.
    def has_module_permission(self, request: Any) -> bool:
        return has_staff_role(request.user, PLATFORM_ADMINS) or super().has_module_permission(request)

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return has_staff_role(request.user, PLATFORM_ADMINS) or super().has_view_permission(request, obj)

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return has_staff_role(request.user, PLATFORM_ADMINS)

    def has_import_permission(self, request: Any) -> bool:
        return has_staff_role(request.user, PLATFORM_ADMINS)

    def has_export_permission(self, request: Any) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: Any) -> bool:
        return False  # new prices: the portal's price book, the API, or a CSV import

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def save_model(self, request: Any, obj: ModelPrice, form: Any, change: bool) -> None:
        from metering.prices import price_update_aliases

        price_update_aliases(actor=request.user, price=ModelPrice.objects.get(pk=obj.pk), aliases=obj.aliases)

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from invoices.models import CreditNote, Invoice, NumberSeries, Payment


class ReadOnlyAdmin(admin.ModelAdmin):
    """Invoices change only through their services (and issued ones not at all): the admin shows, never edits."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "tenant", "period", "status", "currency", "total", "issue_date", "due_date")
    list_filter = ("status", "currency", "period")
    search_fields = ("number", "tenant__slug")
    exclude = ("pdf",)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = ("number", "invoice", "amount", "full", "issue_date")
    exclude = ("pdf",)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "amount", "paid_on", "reference")


@admin.register(NumberSeries)
class NumberSeriesAdmin(ReadOnlyAdmin):
    list_display = ("series", "year", "last")

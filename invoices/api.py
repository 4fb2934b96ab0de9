"""Invoices API (SPEC §8): tenants' owners, admins and members and the staff who see the tenant read; finance
approves, rejects, records payments and issues credit notes; finance or the tenant's account manager submits."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from billing.bills import period_parse
from core.api import ApiError
from invoices import services
from invoices.models import Invoice
from invoices.selectors import invoices_for_user
from invoices.serializers import (
    CreditNoteCreateSerializer,
    CreditNoteSerializer,
    InvoiceSerializer,
    PaymentSerializer,
    RejectSerializer,
)
from tenants.permissions import IsPerson


def _refused(exc: services.InvoiceRuleViolation) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.fields)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[s for s, _label in Invoice.Status.choices]),
            OpenApiParameter("period", str, description="YYYY-MM"),
            OpenApiParameter("tenant", str, description="tenant slug"),
        ]
    )
)
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    query_parameters = ("period", "status")  # the list's filters besides tenant (core.filters)
    serializer_class = InvoiceSerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> Any:
        from tenants.selectors import tenant_for_request

        invoices = invoices_for_user(self.request.user)
        if self.action != "list":
            return invoices
        params = self.request.query_params
        if params.get("status"):
            if params["status"] not in Invoice.Status.values:
                raise ApiError(400, "invalid", "The query has invalid parameters.", {"status": ["Unknown status."]})
            invoices = invoices.filter(status=params["status"])
        if params.get("period"):
            try:
                invoices = invoices.filter(period=period_parse(params["period"]))
            except ValueError:
                raise ApiError(400, "invalid", "The query has invalid parameters.", {"period": ["YYYY-MM."]}) from None
        if params.get("tenant"):
            invoices = invoices.filter(tenant=tenant_for_request(user=self.request.user, slug=params["tenant"]))
        return invoices.order_by("-period", "tenant__slug", "id")

    def _finance_only(self) -> Invoice:
        """Another tenant's invoice is a 404 first; then the role (403); the body is read only after both."""
        from rest_framework.exceptions import PermissionDenied

        from tenants.roles import FINANCE
        from tenants.selectors import has_staff_role

        invoice = self.get_object()
        if not has_staff_role(self.request.user, FINANCE):
            raise PermissionDenied("Only finance does this.")
        return invoice

    def _act(self, fn: Any, **kwargs: Any) -> Response:
        invoice = self.get_object()
        try:
            fn(actor=self.request.user, invoice=invoice, **kwargs)
        except services.InvoiceRuleViolation as exc:
            raise _refused(exc) from None
        return Response(InvoiceSerializer(self.get_queryset().get(pk=invoice.pk)).data)

    @extend_schema(request=None, responses=InvoiceSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.invoice_submit)

    @extend_schema(request=None, responses=InvoiceSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.invoice_approve)

    @extend_schema(request=RejectSerializer, responses=InvoiceSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        self._finance_only()
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(services.invoice_reject, reason=body.validated_data["reason"])

    @extend_schema(request=PaymentSerializer, responses={201: PaymentSerializer})
    @action(detail=True, methods=["post"])
    def payments(self, request: Request, pk: str | None = None) -> Response:
        invoice = self._finance_only()
        body = PaymentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            payment = services.payment_record(actor=request.user, invoice=invoice, **body.validated_data)
        except services.InvoiceRuleViolation as exc:
            raise _refused(exc) from None
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CreditNoteCreateSerializer, responses={201: CreditNoteSerializer})
    @action(detail=True, methods=["post"], url_path="credit-notes")
    def credit_notes(self, request: Request, pk: str | None = None) -> Response:
        invoice = self._finance_only()
        body = CreditNoteCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            note = services.credit_note_create(
                actor=request.user,
                invoice=invoice,
                reason=body.validated_data["reason"],
                amount=body.validated_data.get("amount"),
            )
        except services.InvoiceRuleViolation as exc:
            raise _refused(exc) from None
        return Response(CreditNoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(description="the invoice PDF")},
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        invoice = self.get_object()
        if invoice.number is None:
            raise ApiError(409, "not_issued", "A draft has no PDF: the invoice is rendered when it is issued.")
        if not invoice.pdf_ready:
            raise ApiError(409, "pdf_rendering", "The PDF is still being rendered; try again in a few seconds.")
        response = HttpResponse(bytes(invoice.pdf), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
        return response

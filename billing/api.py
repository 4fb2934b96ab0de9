"""Billing API: FX rates (SPEC §9)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError
from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from billing.fx import fx_rate_add
from billing.models import FxRate
from billing.serializers import FxRateCreateSerializer, FxRateSerializer
from core.api import ApiError, Conflict
from tenants.permissions import IsPerson, staff_only
from tenants.roles import FINANCE


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("base", str),
            OpenApiParameter("quote", str),
            OpenApiParameter("date", str, description="YYYY-MM-DD: the rate in force that day (latest on or before)"),
        ]
    ),
    create=extend_schema(request=FxRateCreateSerializer, responses={201: FxRateSerializer}),
)
class FxRateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """FX rates: everyone signed in reads; finance adds rates."""

    serializer_class = FxRateSerializer

    def get_permissions(self) -> list:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [IsPerson()]
        return [IsPerson(), staff_only(FINANCE)()]

    def get_queryset(self) -> Any:
        rates = FxRate.objects.all().order_by("base", "quote", "-date", "-id")
        params = self.request.query_params
        for name in ("base", "quote"):
            if params.get(name):
                rates = rates.filter(**{name: params[name].upper()})
        if params.get("date"):
            try:
                day = dt.date.fromisoformat(params["date"])
            except ValueError:
                raise ApiError(
                    400, "invalid", "The query has invalid parameters.", {"date": ["A date YYYY-MM-DD."]}
                ) from None
            # The rate in force: per pair, the latest dated on or before the day.
            latest_day = (
                FxRate.objects.filter(base=OuterRef("base"), quote=OuterRef("quote"), date__lte=day)
                .order_by("-date")
                .values("date")[:1]
            )
            rates = rates.filter(date=Subquery(latest_day)).order_by("base", "quote")
        return rates

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = FxRateCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            fx = fx_rate_add(actor=request.user, **body.validated_data)
        except IntegrityError:
            raise Conflict("A rate for this pair and day exists already.", code="fx_rate_exists") from None
        return Response(FxRateSerializer(fx).data, status=status.HTTP_201_CREATED)

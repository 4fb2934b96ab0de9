"""Billing API: FX rates, contracts (SPEC §9) and bills (SPEC §7)."""

from __future__ import annotations

import builtins
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.bills import BillBlocked, bill_preview, month_close, months_close, period_parse
from billing.budgets import (
    BudgetInvalid,
    QuotaPlan,
    budget_create,
    budget_states,
    budget_update,
    quota_decide,
    quota_plan,
)
from billing.contracts import ContractRuleViolation, contract_activate, contract_create, contract_update
from billing.fx import fx_rate_add
from billing.models import Budget, BudgetAlert, Contract, FxRate, NotificationChannel
from billing.selectors import bills_for_user
from billing.serializers import (
    AlertSerializer,
    BillCloseResultSerializer,
    BillCloseSerializer,
    BillPreviewSerializer,
    BillSerializer,
    BudgetRaiseSerializer,
    BudgetSerializer,
    ChannelSerializer,
    ContractSerializer,
    DeliverySerializer,
    FxRateCreateSerializer,
    FxRateSerializer,
    QuotaCheckSerializer,
    QuotaDecisionSerializer,
    RaiseDecisionSerializer,
)
from core.api import ApiError, Conflict
from tenants.permissions import IsPerson, staff_only
from tenants.roles import FINANCE, PLATFORM_ADMINS
from tenants.selectors import can_see_billing, manages_as_staff


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

    query_parameters = ("base", "quote", "date")  # the list's filters besides tenant (core.filters)

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


class ContractViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Contracts: the tenant's account manager writes; the tenant's owners, admins, members and provider
    staff who see the tenant read. Body and filters name the tenant by slug (`tenant`)."""

    query_parameters = ()  # the list's filters besides tenant (core.filters)

    serializer_class = ContractSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        from tenants.selectors import tenant_for_request, tenants_for_user

        user = self.request.user
        visible = [t.pk for t in tenants_for_user(user) if can_see_billing(user, t)]
        contracts = Contract.objects.filter(tenant_id__in=visible).select_related("tenant")
        if self.request.query_params.get("tenant"):
            contracts = contracts.filter(tenant=tenant_for_request(user=user, slug=self.request.query_params["tenant"]))
        return contracts.order_by("tenant__slug", "-starts_on", "-id")

    @extend_schema(
        request=ContractSerializer,
        responses={201: ContractSerializer},
        parameters=[OpenApiParameter("tenant", str, description="tenant slug (body field `tenant`)")],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from tenants.selectors import tenant_for_request

        slug = request.data.get("tenant") if isinstance(request.data, dict) else None
        tenant = tenant_for_request(user=request.user, slug=slug if isinstance(slug, str) else None)
        _require_account_manager(request.user, tenant)
        body = ContractSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.setdefault("billing_currency", tenant.billing_currency)
        contract = contract_create(actor=request.user, tenant=tenant, **data)
        return Response(ContractSerializer(contract).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        contract = self.get_object()
        _require_account_manager(request.user, contract.tenant)
        body = ContractSerializer(contract, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        try:
            contract = contract_update(actor=request.user, contract=contract, **body.validated_data)
        except ContractRuleViolation as exc:
            raise Conflict(str(exc), code=exc.code) from None
        return Response(ContractSerializer(contract).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(request=None, responses=ContractSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        _require_account_manager(request.user, contract.tenant)
        try:
            contract = contract_activate(actor=request.user, contract=contract)
        except ContractRuleViolation as exc:
            raise Conflict(str(exc), code=exc.code) from None
        return Response(ContractSerializer(contract).data)


def _require_account_manager(user: Any, tenant: Any) -> None:
    from rest_framework.exceptions import PermissionDenied

    if not manages_as_staff(user, tenant):
        raise PermissionDenied("Only the tenant's account manager edits its contracts.")


def _bad_query(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid", "The query has invalid parameters.", {name: [message]})


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("period", str, description="YYYY-MM"),
            OpenApiParameter("status", str, enum=["closed", "invoiced"]),
            OpenApiParameter("tenant", str, description="tenant slug"),
        ]
    )
)
class BillViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Monthly bills (SPEC §7): tenants' owners, admins and members and the staff who see the tenant read them;
    finance and platform admins close months. The open month is `current` (a live preview)."""

    query_parameters = ("period", "status")  # the list's filters besides tenant (core.filters)

    serializer_class = BillSerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> Any:
        from tenants.selectors import tenant_for_request

        bills = bills_for_user(self.request.user)
        params = self.request.query_params
        if self.action != "list":
            return bills
        if params.get("period"):
            try:
                bills = bills.filter(period=period_parse(params["period"]))
            except ValueError:
                raise _bad_query("period", "A month as YYYY-MM.") from None
        if params.get("status"):
            if params["status"] not in ("open", "closed", "invoiced"):
                raise _bad_query("status", "One of open, closed, invoiced.")
            bills = bills.filter(status=params["status"])
        if params.get("tenant"):
            bills = bills.filter(tenant=tenant_for_request(user=self.request.user, slug=params["tenant"]))
        return bills.order_by("-period", "tenant__slug", "group_key")

    @extend_schema(
        parameters=[OpenApiParameter("tenant", str, description="tenant slug (implied for a one-tenant user)")],
        responses=BillPreviewSerializer,
    )
    @action(detail=False, methods=["get"])
    def current(self, request: Request) -> Response:
        """The open month so far and a month-end forecast."""
        from rest_framework.exceptions import PermissionDenied

        from core.filters import query_parameters_check

        query_parameters_check(request, ())

        from tenants.selectors import can_see_billing, tenant_for_request

        tenant = tenant_for_request(user=request.user, slug=request.query_params.get("tenant"))
        if not can_see_billing(request.user, tenant):
            raise PermissionDenied("Bills are for the tenant's owners, admins and members.")
        try:
            preview = bill_preview(tenant)
        except BillBlocked as blocked:
            raise Conflict(blocked.message, code=blocked.code, fields=blocked.fields) from None
        return Response(BillPreviewSerializer(preview).data)

    @extend_schema(request=BillCloseSerializer, responses=BillCloseResultSerializer(many=True))
    @action(detail=False, methods=["post"], permission_classes=[IsPerson, staff_only(FINANCE, PLATFORM_ADMINS)])
    def close(self, request: Request) -> Response:
        """Close a month now (finance, platform admins). With `tenant`: that tenant's month — 200 with its
        bills, 409 with the reason when it cannot close. Without: every billable tenant, one result each."""
        from tenants.selectors import tenant_for_request

        body = BillCloseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        period = period_parse(body.validated_data["period"])
        if body.validated_data.get("tenant"):
            tenant = tenant_for_request(user=request.user, slug=body.validated_data["tenant"])
            result = month_close(tenant=tenant, period=period, actor=request.user)
            if result.error is not None:
                error = result.error
                raise Conflict(error.message, code=error.code, fields=error.fields)
            results = [result]
        else:
            results = months_close(period=period, actor=request.user)
        return Response([_close_result(result) for result in results])


def _close_result(result: Any) -> dict[str, Any]:
    error = result.error
    return {
        "tenant": result.tenant.slug,
        "period": f"{result.period:%Y-%m}",
        "status": result.status,
        "bills": [bill.number for bill in result.bills],
        "error": {"code": error.code, "message": error.message, "fields": error.fields} if error else None,
    }


class BudgetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Budgets (SPEC §6): the tenant's owners, admins and account manager write; members read. Reads carry the
    current period's spend from the real-time counters."""

    query_parameters = ()  # the list's filters besides tenant (core.filters)

    serializer_class = BudgetSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        from tenants.selectors import full_access_tenant_ids, tenant_for_request

        budgets = Budget.objects.filter(tenant__in=full_access_tenant_ids(self.request.user)).select_related("tenant")
        if self.action == "list" and self.request.query_params.get("tenant"):
            budgets = budgets.filter(
                tenant=tenant_for_request(user=self.request.user, slug=self.request.query_params["tenant"])
            )
        return budgets.prefetch_related("channels").order_by("tenant__slug", "name", "id")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([BudgetSerializer(s).data for s in budget_states(list(page or []))])

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        [state] = budget_states([self.get_object()])
        return Response(BudgetSerializer(state).data)

    def _channels(self, tenant: Any, ids: builtins.list[int] | None) -> builtins.list[Any] | None:
        if ids is None:
            return None
        found = list(NotificationChannel.objects.filter(tenant=tenant, pk__in=ids))
        if len(found) != len(set(ids)):
            raise ApiError(400, "invalid", "Unknown channel.", {"channels": ["Channels of this tenant only."]})
        return found

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from tenants.selectors import can_manage_tenant, tenant_for_request

        body = BudgetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        tenant = tenant_for_request(user=request.user, slug=data.pop("tenant", None))
        if not can_manage_tenant(request.user, tenant):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("Budgets are set by the tenant's owners, admins and account manager.")
        channels = self._channels(tenant, data.pop("channels", None))
        try:
            budget = budget_create(actor=request.user, tenant=tenant, channels=channels, **data)
        except BudgetInvalid as exc:
            raise ApiError(400, "invalid", "The budget is invalid.", exc.fields) from None
        [state] = budget_states([budget])
        return Response(BudgetSerializer(state).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from tenants.selectors import can_manage_tenant

        budget = self.get_object()
        if not can_manage_tenant(request.user, budget.tenant):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("Budgets are set by the tenant's owners, admins and account manager.")
        body = BudgetSerializer(budget, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("tenant", None)
        channels = self._channels(budget.tenant, data.pop("channels", None))
        try:
            budget = budget_update(actor=request.user, budget=budget, channels=channels, **data)
        except BudgetInvalid as exc:
            raise ApiError(400, "invalid", "The budget is invalid.", exc.fields) from None
        [state] = budget_states([budget])
        return Response(BudgetSerializer(state).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)


def _quota_input(data: Any) -> dict[str, Any]:
    """The quota check body, validated by hand (this is the gateways' hot path)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid", "Send a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not 1 <= len(model) <= 200:
        errors["model"] = ["A model name of 1–200 characters."]
    for name, limit in (("api_key", 40), ("tenant", 40), ("end_user", 200)):
        if name in data and data[name] is not None and (not isinstance(data[name], str) or len(data[name]) > limit):
            errors[name] = [f"A string of at most {limit} characters."]
    estimated = data.get("estimated_tokens", 0)
    if isinstance(estimated, bool) or not isinstance(estimated, int) or not 0 <= estimated <= 10**9:
        errors["estimated_tokens"] = ["An integer from 0 to 1,000,000,000."]
    unknown = set(data) - {"model", "api_key", "tenant", "end_user", "estimated_tokens"}
    for name in sorted(unknown)[:20]:
        errors[name] = ["Unknown field."]
    if errors:
        raise ApiError(400, "invalid", "The quota check body is invalid.", errors)
    return data


def _quota_key(user: Any, credential: Any, data: dict[str, Any], *, peek: bool = False) -> Any:
    """The project key whose quota is asked: the caller's own, or the one a gateway names (None when `peek`
    and this process does not hold it)."""
    from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied

    from tenants.credential_cache import credential_lookup, credential_peek
    from tenants.models import ApiKey, GatewayToken

    if isinstance(credential, ApiKey):
        if data.get("api_key") and data["api_key"] != credential.prefix:
            raise NotFound("A project key checks its own quota.")
        return credential
    if isinstance(credential, GatewayToken):
        if not data.get("api_key"):
            raise ApiError(400, "invalid", "Name the key.", {"api_key": ["Required with a gateway token."]})
        key = (credential_peek if peek else credential_lookup)("mlk", data["api_key"])
        if key is None and peek:
            return None
        if (
            not isinstance(key, ApiKey)
            or not key.is_usable()
            or (data.get("tenant") and data["tenant"] != key.tenant.slug)
        ):
            raise NotFound("No active key with this prefix in this tenant.")
        return key
    if user is not None and getattr(user, "is_authenticated", False):
        raise PermissionDenied("The quota check takes a project key or a gateway token.")
    raise NotAuthenticated()


@dataclass
class _QuotaPrefetch:
    data: dict[str, Any]
    key: Any
    plan: QuotaPlan

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        return self.plan.commands


def quota_prefetch(user: Any, credential: Any, data: Any) -> _QuotaPrefetch | None:
    """The budgets the check will read, planned from what this process holds, so that their counters come in
    the request's one Redis round trip; None when the check must plan for itself (or will refuse)."""
    from rest_framework.exceptions import APIException

    try:
        data = _quota_input(data)
        key = _quota_key(user, credential, data, peek=True)
    except APIException:
        return None
    if key is None:
        return None
    plan = quota_plan(
        tenant_id=key.tenant_id, project=key.project, api_key_id=key.pk, end_user=data.get("end_user") or "", peek=True
    )
    return _QuotaPrefetch(data, key, plan)


def quota_answer(user: Any, credential: Any, data: Any, planned: Any = None) -> tuple[int, dict[str, Any]]:
    """(status, body) of a quota check; `planned`: (quota_prefetch's answer, the replies to its commands)."""
    if planned is not None:
        prefetched, replies = planned
        data, key, planned = prefetched.data, prefetched.key, (prefetched.plan, replies)
    else:
        data = _quota_input(data)
        key = _quota_key(user, credential, data)
    result = quota_decide(
        tenant=key.tenant,
        project=key.project,
        api_key_id=key.pk,
        model=data["model"],
        end_user=data.get("end_user") or "",
        estimated_tokens=data.get("estimated_tokens", 0),
        planned=planned,
    )
    return 200, {
        "decision": result.decision,
        "model": result.model,
        "reason": result.reason,
        "budgets": [
            {
                "id": s.budget.pk,
                "scope": s.budget.scope,
                "period": s.budget.period,
                "limit": str(s.limit),
                "spent": str(s.spent),
                "remaining": str(s.remaining),
                "percent": str(s.percent),
            }
            for s in result.states
        ],
    }


def quota_check_hot(request: Any) -> Any:
    """`POST /api/v1/quota/check` with a bearer credential, on the short route (settings.METERLINE_HOT_PATHS)."""
    from metering.api import lean_json_endpoint

    return lean_json_endpoint(request, quota_answer, quota_prefetch)


class QuotaCheckView(APIView):
    """May this key spend more? Answers from the real-time counters (SPEC §6), for project keys and gateway
    tokens; bearer credentials are answered by `quota_check_hot` before this view (no DRF machinery)."""

    permission_classes: list = []

    @extend_schema(request=QuotaCheckSerializer, responses=QuotaDecisionSerializer)
    def post(self, request: Request) -> Response:
        status_code, body = quota_answer(request.user, request.auth, request.data)
        return Response(body, status=status_code)


class ChannelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Notification channels of a tenant: owners, admins and the account manager write (the secret is
    write-only); members read. `POST /<id>/test` sends a test message through the channel now."""

    query_parameters = ()  # the list's filters besides tenant (core.filters)

    serializer_class = ChannelSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        from tenants.selectors import full_access_tenant_ids, tenant_for_request

        channels = NotificationChannel.objects.filter(tenant__in=full_access_tenant_ids(self.request.user))
        if self.action == "list" and self.request.query_params.get("tenant"):
            channels = channels.filter(
                tenant=tenant_for_request(user=self.request.user, slug=self.request.query_params["tenant"])
            )
        return channels.select_related("tenant").order_by("tenant__slug", "name", "id")

    def _require_manage(self, tenant: Any) -> None:
        from rest_framework.exceptions import PermissionDenied

        from tenants.selectors import can_manage_tenant

        if not can_manage_tenant(self.request.user, tenant):
            raise PermissionDenied("Channels are set by the tenant's owners, admins and account manager.")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from core.audit import audit_record, audit_snapshot
        from tenants.selectors import tenant_for_request

        body = ChannelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        tenant = tenant_for_request(user=request.user, slug=data.pop("tenant", None))
        self._require_manage(tenant)
        channel = NotificationChannel.objects.create(tenant=tenant, **data)
        audit_record(
            actor=request.user, action="create", instance=channel, after=audit_snapshot(channel), tenant=tenant
        )
        return Response(ChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from core.audit import audited_update

        channel = self.get_object()
        self._require_manage(channel.tenant)
        body = ChannelSerializer(channel, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("tenant", None)
        audited_update(actor=request.user, instance=channel, changes=data, tenant=channel.tenant)
        return Response(ChannelSerializer(channel).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from core.audit import audit_record, audit_snapshot

        channel = self.get_object()
        self._require_manage(channel.tenant)
        audit_record(
            actor=request.user, action="delete", instance=channel, before=audit_snapshot(channel), tenant=channel.tenant
        )
        channel.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        from billing.channels import deliveries_queue, delivery_attempt

        channel = self.get_object()
        self._require_manage(channel.tenant)
        payload = {
            "type": "test",
            "tenant": channel.tenant.slug,
            "channel": channel.name,
            "sent_by": request.user.username,
        }
        if not channel.enabled:
            raise Conflict("The channel is disabled.", code="channel_disabled")
        with transaction.atomic():
            [delivery] = deliveries_queue(channels=[channel], payload=payload, subject="test")
        delivery.refresh_from_db()
        if delivery.status == "pending" and delivery.attempts == 0:  # the worker has not run yet: try now
            delivery = delivery_attempt(delivery.pk)
        return Response(DeliverySerializer(delivery).data)


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("tenant", str), OpenApiParameter("severity", str)]))
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Budget alerts fired, newest first."""

    query_parameters = ("severity",)  # the list's filters besides tenant (core.filters)

    serializer_class = AlertSerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> Any:
        from tenants.selectors import full_access_tenant_ids, tenant_for_request

        alerts = BudgetAlert.objects.filter(
            budget__tenant__in=full_access_tenant_ids(self.request.user)
        ).select_related("budget__tenant")
        params = self.request.query_params
        if self.action == "list" and params.get("tenant"):
            alerts = alerts.filter(budget__tenant=tenant_for_request(user=self.request.user, slug=params["tenant"]))
        if self.action == "list" and params.get("severity"):
            alerts = alerts.filter(severity=params["severity"])
        return alerts.order_by("-fired_at", "-id")


class BudgetRaiseViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Budget raises: tenant owners and admins ask; the tenant's account manager approves or rejects."""

    query_parameters = ()  # the list's filters besides tenant (core.filters)

    serializer_class = BudgetRaiseSerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> Any:
        from billing.models import BudgetRaiseRequest
        from tenants.selectors import full_access_tenant_ids, tenant_for_request

        raises = BudgetRaiseRequest.objects.filter(budget__tenant__in=full_access_tenant_ids(self.request.user))
        if self.action == "list" and self.request.query_params.get("tenant"):
            raises = raises.filter(
                budget__tenant=tenant_for_request(user=self.request.user, slug=self.request.query_params["tenant"])
            )
        return raises.select_related("budget__tenant", "requested_by", "decided_by").order_by("-created_at", "-id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from billing.budgets import RaiseRefused, raise_request
        from tenants.selectors import full_access_tenant_ids

        body = BudgetRaiseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        budget = body.validated_data["budget"]
        if not Budget.objects.filter(pk=budget.pk, tenant__in=full_access_tenant_ids(request.user)).exists():
            from rest_framework.exceptions import NotFound

            raise NotFound("No such budget.")
        try:
            created = raise_request(
                actor=request.user,
                budget=budget,
                amount=body.validated_data["amount"],
                until=body.validated_data["until"],
                reason=body.validated_data["reason"],
            )
        except RaiseRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        return Response(BudgetRaiseSerializer(created).data, status=status.HTTP_201_CREATED)

    def _decide(self, approve: bool) -> Response:
        from billing.budgets import RaiseRefused, raise_decide

        raise_obj = self.get_object()
        body = RaiseDecisionSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        try:
            decided = raise_decide(
                actor=self.request.user, raise_request=raise_obj, approve=approve, note=body.validated_data["note"]
            )
        except RaiseRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        return Response(BudgetRaiseSerializer(decided).data)

    @extend_schema(request=RaiseDecisionSerializer, responses=BudgetRaiseSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(True)

    @extend_schema(request=RaiseDecisionSerializer, responses=BudgetRaiseSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(False)


class EstimateView(APIView):
    """The cost estimator: the month a given traffic would make for a tenant, in its currency with tax."""

    permission_classes = [IsPerson]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        description="Body: tenant (slug; implied for a one-tenant user), requests_per_second or requests_per_day, "
        "input_tokens, output_tokens, cached_input_tokens?, reasoning_tokens? (averages per request), days? "
        '(30), mix: [{"model", "share"}] with shares in percent adding up to 100.',
    )
    def post(self, request: Request) -> Response:
        from rest_framework.exceptions import PermissionDenied

        from billing.estimator import EstimateInvalid, estimate, estimate_json, traffic_parse
        from tenants.selectors import tenant_for_request

        data = request.data if isinstance(request.data, dict) else {}
        slug = data.get("tenant")
        tenant = tenant_for_request(user=request.user, slug=slug if isinstance(slug, str) else None)
        if not can_see_billing(request.user, tenant):
            raise PermissionDenied("Estimates use contract prices: for the tenant's owners, admins and members.")
        try:
            result = estimate(tenant, traffic_parse(data))
        except EstimateInvalid as exc:
            raise ApiError(400 if exc.code == "invalid" else 422, exc.code, exc.message, exc.fields) from None
        return Response(dict(estimate_json(result), tenant=tenant.slug))

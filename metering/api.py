"""Metering API: ingestion (SPEC §5.1–5.2), prices (§9), usage (§5.5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions as drf_exceptions
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, Conflict, error_body
from core.deferred import defer_until_response
from core.hotcache import GENERATION_KEY, generation_seen, hot_clear
from core.parsers import JSONOrLinesParser, LimitedJSONParser
from core.redis import redis_run, warn_unavailable
from core.throttling import RateWindow
from metering.events import MAX_BATCH, parse_day, parse_timestamp
from metering.models import Anomaly, ModelPrice
from metering.serializers import (
    AnomalySerializer,
    EventBatchSerializer,
    IngestResultSerializer,
    ModelPriceAliasesSerializer,
    ModelPriceCreateSerializer,
    ModelPriceSerializer,
    SingleIngestResultSerializer,
    UnpricedModelSerializer,
    UsageEventSerializer,
    UsageResponseSerializer,
)
from metering.services import (
    IngestPlan,
    IngestResult,
    IngestScope,
    events_counters_ahead,
    events_ingest,
    events_plan,
    events_store,
)
from tenants.authentication import bearer_lookup, bearer_parse, bearer_verify, principal_identity
from tenants.credential_cache import credential_peek
from tenants.models import ApiKey, GatewayToken
from tenants.permissions import IsPerson, staff_only
from tenants.roles import FINANCE, PLATFORM_ADMINS
from tenants.selectors import is_person

logger = logging.getLogger(__name__)
COST_DIGITS = Decimal("1E-10")
USAGE_PARAMETERS = [
    OpenApiParameter(name, str)
    for name in (
        "start",
        "end",
        "tenant",
        "project",
        "model",
        "feature",
        "end_user",
        "api_key",
        "department",
        "environment",
        "estimated",
    )
]


def ingest_scope(request: Request) -> IngestScope:
    if isinstance(request.auth, ApiKey):
        return IngestScope(kind="project_key", api_key=request.auth)
    if isinstance(request.auth, GatewayToken):
        return IngestScope(kind="gateway")
    if is_person(request.user):
        return IngestScope(kind="user", user=request.user)
    raise PermissionDenied("Send usage with a project key, a gateway token or a personal token.")


def batch_of(data: Any) -> tuple[list[Any], bool]:
    """(events, is_batch) of a request body, or an ApiError for a malformed envelope."""
    if isinstance(data, dict) and "events" in data:
        events = data["events"]
        if not isinstance(events, list):
            raise ApiError(400, "invalid", "events must be a list.", {"events": ["Expected a list of events."]})
        if len(events) > MAX_BATCH:
            raise ApiError(
                413,
                "batch_too_large",
                f"At most {MAX_BATCH} events per request; split the batch.",
                {"events": [f"{len(events)} events; at most {MAX_BATCH}."]},
            )
        extra = sorted(set(data) - {"events"})
        if extra:
            raise ApiError(400, "invalid", "A batch body holds only events.", {k: ["Unknown field."] for k in extra})
        return events, True
    if isinstance(data, dict):
        return [data], False
    raise ApiError(400, "invalid", 'Send one event object or {"events": [...]}.')


def ingest_outcome(scope: IngestScope, data: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) of an ingest request (SPEC §5.1)."""
    events, is_batch = batch_of(data)
    result = events_ingest(scope=scope, raw_events=events)
    if is_batch:
        return 200, result.as_dict()
    return single_outcome(result, events[0])


def single_outcome(result: IngestResult, event: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) of a single-event request, from its ingest result."""
    outcome = result.outcomes.get(0, "rejected")
    if outcome == "rejected":
        return 400, error_body("invalid", "The event was rejected.", result.rejected[0]["errors"])
    if outcome == "conflict":
        return 409, error_body(
            "conflict",
            "An event with this event_id and different content was already recorded; the first one is kept.",
            {"event_id": ["Already used."]},
        )
    return (201 if outcome == "accepted" else 200), result.as_dict() | {
        "event_id": event.get("event_id"),
        "outcome": outcome,
    }


def lean_json_endpoint(request: HttpRequest, handle: Any, prefetch: Any = None) -> HttpResponse | None:
    """A hot path for bearer credentials without DRF's request/response machinery: authentication from the
    credentials this process holds, the per-credential rate limit, JSON parsing, then
    `handle(user, credential, data, planned) -> (status, body)`; errors in the §11 shape. Returns None to let the
    full view answer (portal sessions, CSRF).

    One Redis round trip carries the rate-limit count, the hot-path generation (which vouches for the held
    credential and budget index, core.hotcache) and the commands of `prefetch(user, credential, data)`, a plan
    with `.commands` or None; `planned` is then (plan, its replies), or None when they must be read again. A plan
    whose commands change something has `.unused(replies)` (replies None: unknown whether they ran), called when
    the plan is not handed on — the rate limit refuses, or the generation shows what it was made from stale."""
    try:
        parsed = bearer_parse(request.META.get("HTTP_AUTHORIZATION", ""))
        if parsed is None:
            return None
        kind, prefix, secret = parsed
        held = credential_peek(kind, prefix)
        try:
            user, credential = bearer_verify(held or bearer_lookup(kind, prefix), secret)
        except drf_exceptions.AuthenticationFailed:
            if held is None:
                raise
            held = None  # what this process held may be out of date: decide on a fresh look-up
            user, credential = bearer_verify(bearer_lookup(kind, prefix), secret)
    except drf_exceptions.AuthenticationFailed as exc:
        return _unauthorized(request, exc)
    defer_until_response()
    window = RateWindow(*principal_identity(user, credential))
    data, refused = _json_body(request)
    plan = prefetch(user, credential, data) if prefetch is not None and refused is None else None
    commands = [*window.commands, ("GET", GENERATION_KEY), *(plan.commands if plan is not None else [])]
    try:
        replies: list[Any] | None = redis_run(commands)
    except Exception:  # noqa: BLE001  (Redis down: answer from the database, without rate limits)
        warn_unavailable(logger, "Redis unavailable on the %s hot path; answering without it", request.path)
        hot_clear()
        replies = None
    counted = len(window.commands)
    fresh = replies is not None and generation_seen(replies[counted])
    if not fresh:
        _plan_unused(plan, replies[counted + 1 :] if replies is not None else None)
        plan = None
        if held is not None:
            try:
                user, credential = bearer_verify(bearer_lookup(kind, prefix), secret)
            except drf_exceptions.AuthenticationFailed as exc:
                return _unauthorized(request, exc)
    if replies is not None and not window.allows(replies[:counted]):
        _plan_unused(plan, replies[counted + 1 :])
        response = JsonResponse(
            error_body("rate_limited", f"Too many requests; retry in {int(window.wait)} s."), status=429
        )
        response["Retry-After"] = str(int(window.wait))
        return response
    if refused is not None:
        return refused
    planned = (plan, replies[counted + 1 :]) if plan is not None and replies is not None else None
    try:
        status_code, body = handle(user, credential, data, planned)
    except ApiError as exc:
        return JsonResponse(error_body(exc.error_code, str(exc.detail), exc.fields), status=exc.status_code)
    except drf_exceptions.APIException as exc:
        code = {
            drf_exceptions.ParseError: "malformed_request",
            drf_exceptions.NotFound: "not_found",
            drf_exceptions.NotAuthenticated: "not_authenticated",
        }.get(type(exc), "permission_denied")
        return JsonResponse(error_body(code, str(exc.detail)), status=exc.status_code)
    return _json_response(body, status_code)


def _plan_unused(plan: Any, replies: list[Any] | None) -> None:
    if plan is not None and plan.commands and hasattr(plan, "unused"):
        plan.unused(replies)


_ENCODER = DjangoJSONEncoder()


def _json_response(body: Any, status_code: int) -> HttpResponse:
    """The answer as JsonResponse writes it (Decimals and datetimes as DjangoJSONEncoder does), by orjson."""
    try:
        content = orjson.dumps(body, default=_ENCODER.default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # numbers beyond 64 bits
        return JsonResponse(body, status=status_code)
    return HttpResponse(content, status=status_code, content_type="application/json")


def _unauthorized(request: HttpRequest, exc: Any) -> JsonResponse:
    from tenants.authentication import BearerTokenAuthentication

    response = JsonResponse(error_body("authentication_failed", str(exc.detail)), status=401)
    response["WWW-Authenticate"] = BearerTokenAuthentication().authenticate_header(request)  # type: ignore[arg-type]
    return response


def _json_body(request: HttpRequest) -> tuple[Any, JsonResponse | None]:
    """(data, None), or (None, the error response) for a body that is not JSON."""
    if not request.content_type or request.content_type != "application/json":
        return None, JsonResponse(
            error_body("unsupported_media_type", "Send JSON with Content-Type: application/json."), status=415
        )
    try:
        context = {"request": request, "encoding": request.encoding}
        return LimitedJSONParser().parse(request, parser_context=context), None
    except ApiError as exc:
        return None, JsonResponse(error_body(exc.error_code, str(exc.detail), exc.fields), status=exc.status_code)
    except drf_exceptions.ParseError as exc:
        return None, JsonResponse(error_body("malformed_request", str(exc.detail)), status=exc.status_code)


def events_hot(request: HttpRequest) -> HttpResponse | None:
    """`POST /api/v1/events` with a bearer credential, on the short route (settings.METERLINE_HOT_PATHS)."""
    return lean_json_endpoint(request, _events_answer, _events_prefetch)


@dataclass
class _EventPrefetch:
    """A single event validated, resolved and rated from what this process holds, before the request's Redis
    round trip, which then also carries the event's budget counter increments (counted ahead of the write)."""

    event: dict[str, Any]
    plan: IngestPlan
    counters: Any  # billing.budgets.CounterPlan | None

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        return self.counters.commands if self.counters is not None else []

    def unused(self, replies: list[Any] | None) -> None:
        from billing.budgets import counters_take_back

        counters_take_back(self.counters, replies)


def _events_prefetch(user: Any, credential: Any, data: Any) -> _EventPrefetch | None:
    """A single event's plan, for a project key, which names the event's tenant and project without a look-up:
    with a gateway or personal token the event's tenant and project are read from the database, which waits until
    the rate limit allows the request; batches count their budgets after the write, per group of events."""
    if not isinstance(credential, ApiKey) or not isinstance(data, dict) or "events" in data:
        return None
    plan = events_plan(scope=_scope_for(user, credential), raw_events=[data])
    return _EventPrefetch(data, plan, events_counters_ahead(plan))


def _events_answer(user: Any, credential: Any, data: Any, planned: Any) -> tuple[int, dict[str, Any]]:
    if planned is None:
        return ingest_outcome(_scope_for(user, credential), data)
    prefetched, replies = planned
    counted_ahead = prefetched.counters is not None
    try:
        result = events_store(prefetched.plan, counted_ahead=counted_ahead)
    except BaseException:
        if counted_ahead:
            prefetched.unused(replies)
        raise
    if counted_ahead:
        if result.outcomes.get(0) == "accepted":
            from billing.budgets import counters_counted_ahead

            counters_counted_ahead(prefetched.counters, replies)
        else:
            prefetched.unused(replies)
    return single_outcome(result, prefetched.event)


def _scope_for(user: Any, credential: Any) -> IngestScope:
    if isinstance(credential, ApiKey):
        return IngestScope(kind="project_key", api_key=credential)
    if isinstance(credential, GatewayToken):
        return IngestScope(kind="gateway")
    return IngestScope(kind="user", user=user)


class EventsView(APIView):
    """Usage from portal sessions; bearer credentials are answered by `events_hot` before this view."""

    parser_classes = [LimitedJSONParser]

    @extend_schema(
        request=EventBatchSerializer,
        responses={
            200: IngestResultSerializer,
            201: SingleIngestResultSerializer,
            409: OpenApiResponse(description="Single event: same event_id, different content"),
        },
        description="Record one usage event (201 accepted, 200 duplicate/corrected, 409 conflict, 400 rejected) "
        'or a batch {"events": [...]} of at most 1,000 (200 with counts and the rejected list).',
    )
    def post(self, request: Request) -> Response:
        status_code, body = ingest_outcome(ingest_scope(request), request.data)
        return Response(body, status=status_code)


# --- Reading usage --------------------------------------------------------------------------------


def _usage_tenant(request: Request, params: Any) -> tuple[Any, list[int] | None]:
    """The tenant whose usage is read, and the projects the caller may see in it."""
    from metering.selectors import usage_scope_projects
    from tenants.selectors import tenant_for_request

    if isinstance(request.auth, ApiKey):
        slug = params.get("tenant")
        if slug and slug != request.auth.tenant.slug:
            from django.http import Http404

            raise Http404("No such tenant.")
        return request.auth.tenant, usage_scope_projects(tenant=request.auth.tenant, api_key=request.auth)
    if not is_person(request.user):
        raise PermissionDenied("Usage is read with a project key, a personal token or a portal session.")
    tenant = tenant_for_request(user=request.user, slug=params.get("tenant"))
    return tenant, usage_scope_projects(tenant=tenant, user=request.user)


def usage_query_from(
    request: Request, *, default_days: int = 30, params: Any = None, also: tuple[str, ...] = ()
) -> Any:
    """The usage query a request's parameters ask for. Days are the tenant's calendar days; `end` defaults to today,
    `start` to `default_days` days up to `end`. A parameter that is neither the query's nor one of `also` (the
    endpoint's own) is refused: a misspelt filter (`projct=`) would otherwise answer the whole tenant's usage."""
    import datetime as dt

    from django.utils import timezone as django_timezone

    from metering.selectors import FILTERS, GROUP_BY, MAX_DAYS, UsageQuery

    params = request.query_params if params is None else params
    tenant, project_ids = _usage_tenant(request, params)
    errors: dict[str, list[str]] = {}
    known = {"start", "end", "tenant", "group_by", *FILTERS, *also}
    for name in sorted(set(params) - known)[:20]:
        errors[name] = ["Unknown parameter."]
    dates: dict[str, dt.date] = {}
    for name in ("start", "end"):
        raw = params.get(name)
        if raw is None:
            continue
        day = parse_day(raw)
        if day is None:
            errors[name] = ["A date YYYY-MM-DD."]
            continue
        dates[name] = day
        if not 2000 <= dates[name].year <= 2100:
            errors[name] = ["A date between the years 2000 and 2100."]
    import zoneinfo

    today = django_timezone.now().astimezone(zoneinfo.ZoneInfo(tenant.timezone)).date()  # the tenant's calendar
    end = dates["end"] if "end" in dates and "end" not in errors else today
    start = dates["start"] if "start" in dates and "start" not in errors else end - dt.timedelta(days=default_days - 1)
    if not errors and end < start:
        errors["end"] = ["On or after start."]
    elif not errors and (end - start).days >= MAX_DAYS:
        errors["end"] = [f"At most {MAX_DAYS} days per query."]
    group_by = [g for g in params.get("group_by", "").split(",") if g]
    unknown = [g for g in group_by if g not in GROUP_BY]
    if unknown:
        errors["group_by"] = [f"Unknown: {', '.join(unknown)}. Use {', '.join(GROUP_BY)}."]
    if len(set(group_by)) != len(group_by):
        errors["group_by"] = ["Each dimension once."]
    filters: dict[str, Any] = {}
    for name in FILTERS:
        value = params.get(name)
        if value is None:
            continue
        if name == "estimated":
            if value not in ("true", "false"):
                errors[name] = ["true or false."]
            filters[name] = value == "true"
        elif len(value) > 200:
            errors[name] = ["At most 200 characters."]
        else:
            filters[name] = value
    if errors:
        raise ApiError(400, "invalid", "The query has invalid parameters.", errors)
    return UsageQuery(tenant=tenant, start=start, end=end, group_by=group_by, filters=filters, project_ids=project_ids)


class UsageView(APIView):
    @extend_schema(
        parameters=[*USAGE_PARAMETERS, OpenApiParameter("group_by", str)],
        responses=UsageResponseSerializer,
        description="Aggregated usage from the rollups; group_by takes day, model, project, feature, end_user, "
        "api_key, department, environment. Days are the tenant's local calendar days; without start and end, the "
        "last 30 of them up to today.",
    )
    def get(self, request: Request) -> Response:
        from metering.selectors import usage_aggregate

        result = usage_aggregate(usage_query_from(request))
        for row in [*result["rows"], result["totals"]]:
            row["cost"] = f"{row['cost'].quantize(COST_DIGITS):f}"  # plain digits: str() writes a zero as 0E-10
        return Response(result)


class UsageEventsPagination(CursorPagination):
    """Pages of events by position (the time and id of the last event shown), newest first: a page costs the same
    however deep it is and whatever its neighbours share a moment, and with filters only the stretches of time the
    rollups say hold a match are read (the view's `spans`)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        from metering.selectors import events_slice

        self.request = request
        size = self.get_page_size(request) or self.page_size
        self.base_url = request.build_absolute_uri()
        cursor = self.decode_cursor(request)
        position = None if cursor is None else cursor.position
        if cursor is not None and position is None:
            raise self.invalid_cursor()
        spans = getattr(view, "spans", None)  # none at all when the rollups hold no match: nothing is read
        try:
            if cursor is not None and cursor.reverse:
                self.events = events_slice(queryset, newer=position, size=size, spans=spans)
            else:
                self.events = events_slice(queryset, older=position, size=size, spans=spans)
        except ValueError:
            raise self.invalid_cursor() from None
        return self.events.object_list

    def get_next_link(self) -> str | None:
        return self._link(self.events.older, reverse=False)

    def get_previous_link(self) -> str | None:
        return self._link(self.events.newer, reverse=True)

    def _link(self, position: str, *, reverse: bool) -> str | None:
        cursor = Cursor(offset=0, reverse=reverse, position=cast(Any, position))  # a position of events_slice
        return self.encode_cursor(cursor) if position else None

    def decode_cursor(self, request: Request) -> Any:
        """A cursor this API did not hand out is a bad request (400), not a missing page."""
        try:
            return super().decode_cursor(request)
        except drf_exceptions.NotFound:
            raise self.invalid_cursor() from None

    @staticmethod
    def invalid_cursor() -> ApiError:
        fields = {"cursor": ["Use a next or previous link."]}
        return ApiError(400, "invalid", "The query has invalid parameters.", fields)


class UsageEventsView(ListAPIView):
    """Raw events, newest first, cursor-paginated; same filters as /usage plus event_id, rating_status."""

    serializer_class = UsageEventSerializer
    pagination_class = UsageEventsPagination
    filter_backends: list = []
    spans: list[Any] | None = None

    @extend_schema(
        parameters=[*USAGE_PARAMETERS, *(OpenApiParameter(n, str) for n in ("event_id", "rating_status", "cursor"))]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        from metering.selectors import events_for, matching_spans

        query = usage_query_from(
            self.request, default_days=35, also=("cursor", "page_size", "event_id", "rating_status")
        )
        rating = self.request.query_params.get("rating_status") or None
        if rating not in (None, "priced", "unpriced"):
            raise ApiError(
                400, "invalid", "The query has invalid parameters.", {"rating_status": ["priced or unpriced."]}
            )
        event_id = self.request.query_params.get("event_id")
        # With filters, only the hours the rollups say hold a match are read (a rare end user, feature or unpriced
        # model would otherwise walk every event of the period); one event by its id is found by its own index.
        self.spans = None if event_id else matching_spans(query, rating_status=rating)
        return events_for(query, event_id=event_id, extra={"rating_status": rating} if rating else {})


def _export_kind(params: Any) -> str:
    kind = params.get("format", "csv")
    if kind not in ("csv", "xlsx"):
        raise ApiError(400, "invalid", "The query has invalid parameters.", {"format": ["csv or xlsx."]})
    return str(kind)


def _file_response(content: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class UsageExportView(APIView):
    """Detailed events as CSV, or XLSX with a Summary (by department and project) and a Detailed sheet."""

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "xlsx"]), *USAGE_PARAMETERS],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiTypes.BINARY,
        },
        description="Answers in the request up to METERLINE_EXPORT_MAX_ROWS events; larger exports are "
        "requested with POST /api/v1/usage/exports and built in the background.",
    )
    def get(self, request: Request) -> HttpResponse:
        from django.conf import settings

        from metering.exports import ExportTooLarge, export_render

        kind = _export_kind(request.query_params)
        query = usage_query_from(request, also=("format",))
        try:
            built = export_render(query, kind, limit=settings.METERLINE_EXPORT_MAX_ROWS)
        except ExportTooLarge as exc:
            raise ApiError(
                422,
                "export_too_large",
                f"More than {exc.limit} events: narrow the date range or filters, or request a background "
                "export with POST /api/v1/usage/exports.",
            ) from exc
        return _file_response(built.content, built.content_type, built.filename)


def _export_json(export: Any, request: Request) -> dict[str, Any]:
    from django.urls import reverse

    return {
        "id": export.pk,
        "tenant": export.tenant.slug,
        "format": export.format,
        "status": export.status,
        "start": export.query["start"],
        "end": export.query["end"],
        "filters": export.query.get("filters") or {},
        "rows_total": export.rows_total,
        "rows_done": export.rows_done,
        "percent": export.percent,
        "filename": export.filename,
        "size": export.size,
        "error": export.error,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "download_url": request.build_absolute_uri(reverse("api:usage-export-download", args=[export.pk]))
        if export.status == "ready"
        else None,
    }


class UsageExportJobsView(APIView):
    """Background usage exports of the calling person: request one, list them."""

    permission_classes = [IsPerson]

    @extend_schema(
        operation_id="usage_exports_list", parameters=[OpenApiParameter("tenant", str)], responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        from core.filters import query_parameters_check
        from metering.exports import exports_for_user
        from tenants.selectors import tenant_for_request

        query_parameters_check(request, ())
        tenant = tenant_for_request(user=request.user, slug=request.query_params.get("tenant"))
        exports = exports_for_user(tenant=tenant, user=request.user).select_related("tenant")[:50]
        return Response({"results": [_export_json(export, request) for export in exports]})

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={202: OpenApiTypes.OBJECT},
        description="Body (or query string): format (csv|xlsx), tenant, start, end and the filters of "
        "/api/v1/usage/export. Answers 202 with the export; poll /api/v1/usage/exports/<id> for its progress.",
    )
    def post(self, request: Request) -> Response:
        from metering.exports import ExportTooLarge, export_request

        params = request.query_params.dict()
        params.update(_export_body(request.data))
        kind = _export_kind(params)
        query = usage_query_from(request, params=params, also=("format",))
        try:
            export = export_request(query=query, kind=kind, user=request.user)
        except ExportTooLarge as exc:
            raise ApiError(
                422, "export_too_large", f"More than {exc.limit} events: narrow the date range or filters."
            ) from exc
        return Response(_export_json(export, request), status=status.HTTP_202_ACCEPTED)


def _export_body(data: Any) -> dict[str, str]:
    """An export request's body: one JSON object of the export's parameters (strings; `estimated` also true or
    false), none of them unknown; an empty body leaves them to the query string."""
    from metering.selectors import FILTERS

    if not isinstance(data, dict):
        raise ApiError(400, "invalid", "Send the export's parameters as one JSON object (or in the query string).")
    known = {"format", "tenant", "start", "end", *FILTERS}
    errors: dict[str, list[str]] = {}
    params: dict[str, str] = {}
    for name, value in data.items():
        if name not in known:
            errors[name] = ["Unknown field."]
        elif isinstance(value, bool) and name == "estimated":
            params[name] = "true" if value else "false"
        elif not isinstance(value, str):
            errors[name] = ["A string."]
        else:
            params[name] = value
    if errors:
        raise ApiError(400, "invalid", "The export request has invalid fields.", errors)
    return params


def _own_export(request: Request, pk: int) -> Any:
    from django.http import Http404

    from metering.models import UsageExport

    export = UsageExport.objects.select_related("tenant").filter(pk=pk, requested_by=request.user.pk).first()
    if export is None:
        raise Http404("No such export.")
    return export


class UsageExportJobView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_export_json(_own_export(request, pk), request))


class UsageExportDownloadView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        from metering.exports import CONTENT_TYPES

        export = _own_export(request, pk)
        if export.status != "ready":
            raise ApiError(409, "export_not_ready", f"The export is {export.status}; try again when it is ready.")
        return _file_response(bytes(export.content), CONTENT_TYPES[export.format], export.filename)


# --- Prices -----------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("model", str),
            OpenApiParameter("provider", str),
            OpenApiParameter("at", str, description="YYYY-MM-DD or a timestamp"),
        ]
    ),
    create=extend_schema(request=ModelPriceCreateSerializer, responses={201: ModelPriceSerializer}),
    partial_update=extend_schema(request=ModelPriceAliasesSerializer, responses=ModelPriceSerializer),
)
class PriceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The price book: everyone reads; platform admins add effective-dated rows and edit aliases."""

    query_parameters = ("model", "provider", "at")  # the list's filters besides tenant (core.filters)

    serializer_class = ModelPriceSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_permissions(self) -> list:
        if self.request.method in ("GET", "HEAD", "OPTIONS") and self.action != "unpriced":
            return [IsAuthenticated()]
        return [IsPerson(), staff_only(PLATFORM_ADMINS)()]

    def get_queryset(self) -> Any:
        import datetime as dt

        from django.db.models import Q

        from metering.selectors import prices_for_model

        prices = ModelPrice.objects.all().order_by("provider", "model", "-effective_from", "-id")
        params = self.request.query_params
        if params.get("model"):
            prices = prices_for_model(prices, params["model"])
        if params.get("provider"):
            prices = prices.filter(provider__iexact=params["provider"])
        if params.get("at"):
            raw = params["at"]
            day = parse_day(raw)
            moment = parse_timestamp(raw) if day is None else dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            if moment is None:
                raise ApiError(
                    400,
                    "invalid",
                    "The query has invalid parameters.",
                    {"at": ["A date YYYY-MM-DD or an RFC 3339 timestamp."]},
                )
            prices = prices.filter(
                Q(effective_from__lte=moment), Q(effective_to__isnull=True) | Q(effective_to__gt=moment)
            )
        return prices

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from metering.prices import PRICE_FIELDS, PriceRuleViolation, price_add

        body = ModelPriceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            price = price_add(
                actor=request.user,
                provider=data["provider"],
                model=data["model"],
                prices={name: data.get(name) for name in PRICE_FIELDS},
                effective_from=data["effective_from"],
                aliases=data.get("aliases"),
            )
        except PriceRuleViolation as exc:
            raise Conflict(str(exc), code="price_exists") from None
        return Response(ModelPriceSerializer(price).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from metering.prices import price_update_aliases

        price = self.get_object()
        extra = sorted(set(request.data) - {"aliases"}) if isinstance(request.data, dict) else []
        if extra:
            raise ApiError(
                400,
                "invalid",
                "Prices are never edited: add a row with a later effective_from.",
                {name: ["Read-only; add a new effective-dated price."] for name in extra},
            )
        body = ModelPriceAliasesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        price = price_update_aliases(actor=request.user, price=price, aliases=body.validated_data["aliases"])
        return Response(ModelPriceSerializer(price).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(responses=UnpricedModelSerializer(many=True))
    @action(
        detail=False, methods=["get"], permission_classes=[IsPerson, staff_only(PLATFORM_ADMINS)], filter_backends=[]
    )
    def unpriced(self, request: Request) -> Response:
        """Models seen in events without a price, with counts, most events first, paged as every list (clients
        name models freely: the queue can be long): add a price and they are re-rated."""
        from core.filters import query_parameters_check
        from metering.selectors import unpriced_groups

        query_parameters_check(request, ("page", "page_size"))
        page = self.paginate_queryset(unpriced_groups())
        return self.get_paginated_response(UnpricedModelSerializer(page, many=True).data)


# --- LiteLLM ------------------------------------------------------------------------------------------


class LiteLLMPayloadParser(JSONOrLinesParser):
    """LiteLLM's generic API callback posts up to 512 payloads at a time (its default batch), as a JSON array
    (`log_format: json_array`, its default), one per line (`ndjson`) or one per request (`single`). A payload holds
    the call's messages and response unless LiteLLM's message logging is off, so batches get larger than the 4 MiB
    of /api/v1/events; LiteLLM drops a batch that is refused."""

    max_bytes = 16 * 1024 * 1024
    too_large = (
        "The body is larger than {mib} MiB. Meterline needs no prompts or responses: set LiteLLM's "
        "turn_off_message_logging, or a smaller batch."
    )


class LiteLLMView(APIView):
    """LiteLLM's StandardLoggingPayload (one, a list, or one per line), as its generic API callback sends it."""

    parser_classes = [LiteLLMPayloadParser]

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT}, responses=IngestResultSerializer)
    def post(self, request: Request) -> Response:
        from metering.litellm import litellm_rejections, litellm_to_events

        scope = ingest_scope(request)
        payloads = request.data if isinstance(request.data, list) else [request.data]
        if len(payloads) > MAX_BATCH:
            raise ApiError(413, "batch_too_large", f"At most {MAX_BATCH} payloads per request.")
        events = litellm_to_events(
            payloads,
            tenant=request.query_params.get("tenant"),
            project=request.query_params.get("project"),
            scoped_by_key=scope.kind == "project_key",
        )
        result = events_ingest(scope=scope, raw_events=events)
        given = frozenset(name for name in ("tenant", "project") if request.query_params.get(name))
        result.rejected = litellm_rejections(result.rejected, payloads, from_url=given)
        return Response(result.as_dict(), status=status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("kind", str, enum=[k for k, _label in Anomaly.Kind.choices]),
            OpenApiParameter("status", str, enum=[s for s, _label in Anomaly.Status.choices]),
        ]
    )
)
class AnomalyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Unusual usage found by the hourly and daily scans (SPEC §6); `POST /<id>/acknowledge` marks one seen."""

    query_parameters = ("kind", "status")  # the list's filters besides tenant (core.filters)

    serializer_class = AnomalySerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> Any:
        from tenants.selectors import full_access_tenant_ids, tenant_for_request

        anomalies = Anomaly.objects.filter(tenant__in=full_access_tenant_ids(self.request.user)).select_related(
            "tenant"
        )
        params = self.request.query_params
        if self.action == "list":
            if params.get("tenant"):
                anomalies = anomalies.filter(tenant=tenant_for_request(user=self.request.user, slug=params["tenant"]))
            for name in ("kind", "status"):
                if params.get(name):
                    anomalies = anomalies.filter(**{name: params[name]})
        return anomalies.order_by("-window_start", "-id")

    @extend_schema(request=None, responses=AnomalySerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        from tenants.selectors import can_manage_tenant

        anomaly = self.get_object()
        if not can_manage_tenant(request.user, anomaly.tenant):
            raise PermissionDenied("Owners, admins and the account manager acknowledge anomalies.")
        anomaly.status = Anomaly.Status.ACKNOWLEDGED
        anomaly.save(update_fields=["status"])
        return Response(AnomalySerializer(anomaly).data)


class InsightsView(APIView):
    """Cost optimisation suggestions for one month (default: the last full month in the tenant's zone)."""

    @extend_schema(
        parameters=[OpenApiParameter("tenant", str), OpenApiParameter("period", str, description="YYYY-MM")],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        from django.utils import timezone as django_timezone

        from core.filters import query_parameters_check
        from metering.insights import last_month, suggestion_json, suggestions

        query_parameters_check(request, ("period",))
        tenant, project_ids = _usage_tenant(request, request.query_params)
        raw = request.query_params.get("period")
        if raw:
            period = parse_day(f"{raw}-01")
            if period is None or not 2000 <= period.year <= 2100:
                raise ApiError(
                    400, "invalid", "The query has invalid parameters.", {"period": ["A month YYYY-MM, 2000–2100."]}
                )
        else:
            period = last_month(tenant, django_timezone.now())
        found = suggestions(tenant, period, project_ids=project_ids)
        return Response(
            {
                "tenant": tenant.slug,
                "period": f"{period:%Y-%m}",
                "currency": "USD",
                "total_saving": f"{sum((s.saving for s in found), Decimal(0)):.4f}",
                "suggestions": [suggestion_json(s) for s in found],
            }
        )


class ProviderStatementViewSet(viewsets.ViewSet):
    """Providers' own usage/cost exports and their reconciliation with metered usage (finance).

    `POST` (multipart): `file`, and optionally `format` (detected when absent), `provider` (required for a
    generic CSV), `tenant` (slug: the tenant whose usage the provider account carries), `tolerance_percent`
    (default 1). `GET /<id>` answers the reconciliation report; `GET /<id>/export` the same as XLSX."""

    permission_classes = [IsPerson, staff_only(FINANCE, PLATFORM_ADMINS)]
    parser_classes = [MultiPartParser, FormParser]
    lookup_value_regex = r"\d+"

    def _get(self, pk: str | None) -> Any:
        from django.http import Http404

        from metering.models import ProviderStatement

        statement = (
            ProviderStatement.objects.select_related("tenant").filter(pk=int(str(pk))).first()
            if str(pk).isdigit()
            else None
        )
        if statement is None:
            raise Http404("No such statement.")
        return statement

    @extend_schema(operation_id="provider_statements_list", responses=OpenApiTypes.OBJECT)
    def list(self, request: Request) -> Response:
        from metering.models import ProviderStatement

        statements = ProviderStatement.objects.select_related("tenant")[:200]
        return Response(
            {
                "results": [
                    {
                        "id": s.pk,
                        "provider": s.provider,
                        "format": s.format,
                        "tenant": s.tenant.slug if s.tenant else None,
                        "filename": s.filename,
                        "period_start": s.period_start.isoformat(),
                        "period_end": s.period_end.isoformat(),
                        "lines": s.line_count,
                        "imported_at": s.imported_at.isoformat(),
                    }
                    for s in statements
                ]
            }
        )

    @extend_schema(request={"multipart/form-data": OpenApiTypes.OBJECT}, responses={201: OpenApiTypes.OBJECT})
    def create(self, request: Request) -> Response:
        from metering.reconciliation import StatementInvalid, reconcile, report_json, statement_import
        from tenants.models import Tenant

        data: Any = request.data
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError(
                400, "invalid", "Send the provider's export as the multipart field 'file'.", {"file": ["Required."]}
            )
        if upload.size > 50 * 1024 * 1024:
            raise ApiError(413, "payload_too_large", "At most 50 MB per statement: import month by month.")
        tenant = None
        if data.get("tenant"):
            tenant = Tenant.objects.filter(slug=data["tenant"]).first()
            if tenant is None:
                raise ApiError(400, "invalid", "Unknown tenant.", {"tenant": ["No tenant with this slug."]})
        try:
            tolerance = Decimal(str(data.get("tolerance_percent") or "1"))
        except ArithmeticError:
            raise ApiError(400, "invalid", "Tolerance is a number.", {"tolerance_percent": ["A number."]}) from None
        try:
            statement = statement_import(
                actor=request.user,
                content=upload.read(),
                filename=upload.name or "",
                fmt=str(data.get("format") or ""),
                provider=str(data.get("provider") or ""),
                tenant=tenant,
                tolerance_percent=tolerance,
            )
        except StatementInvalid as exc:
            raise ApiError(422 if not exc.fields else 400, "statement_invalid", exc.message, exc.fields) from None
        return Response(report_json(reconcile(statement)), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)], responses=OpenApiTypes.OBJECT)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        from metering.reconciliation import reconcile, report_json

        return Response(report_json(reconcile(self._get(pk))))

    @extend_schema(
        responses={(200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiTypes.BINARY}
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        from metering.exports import CONTENT_TYPES
        from metering.reconciliation import reconcile, report_xlsx

        statement = self._get(pk)
        name = f"reconciliation-{statement.provider}-{statement.period_start:%Y%m%d}-{statement.period_end:%Y%m%d}.xlsx"
        return _file_response(report_xlsx(reconcile(statement)), CONTENT_TYPES["xlsx"], name)

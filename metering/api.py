"""Metering API: ingestion (SPEC §5.1–5.2), prices (§9), usage (§5.5)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, error_body
from core.parsers import LimitedJSONParser
from metering.events import MAX_BATCH
from metering.serializers import EventBatchSerializer, IngestResultSerializer, SingleIngestResultSerializer
from metering.services import IngestResult, IngestScope, events_ingest
from tenants.models import ApiKey, GatewayToken
from tenants.selectors import is_person


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


def single_response(result: IngestResult, event: Any) -> Response:
    outcome = result.outcomes.get(0, "rejected")
    if outcome == "rejected":
        rejected = result.rejected[0]
        return Response(error_body("invalid", "The event was rejected.", rejected["errors"]), status=400)
    if outcome == "conflict":
        return Response(
            error_body(
                "conflict",
                "An event with this event_id and different content was already recorded; the first one is kept.",
                {"event_id": ["Already used."]},
            ),
            status=409,
        )
    body = result.as_dict() | {"event_id": event.get("event_id"), "outcome": outcome}
    return Response(body, status=201 if outcome == "accepted" else 200)


class EventsView(APIView):
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
        scope = ingest_scope(request)
        events, is_batch = batch_of(request.data)
        result = events_ingest(scope=scope, raw_events=events)
        if is_batch:
            return Response(result.as_dict(), status=status.HTTP_200_OK)
        return single_response(result, events[0])

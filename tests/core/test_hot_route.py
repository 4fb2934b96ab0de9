"""The gateways' hot endpoints answer bearer requests right after the request id and security middleware
(core.middleware.HotPathMiddleware): same answers, same security headers, JSON errors; everything else to those
paths takes the whole stack."""

import json

import pytest
from django.test import override_settings
from django.utils import timezone

import billing.api

pytestmark = pytest.mark.django_db

CHECK = {"model": "gpt-4o", "estimated_tokens": 1200}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5}


def test_hot_answers_keep_the_request_id_and_security_headers(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    answer = client.post("/api/v1/quota/check", CHECK, format="json", HTTP_X_REQUEST_ID="gateway-call-42")
    assert answer.status_code == 200
    assert answer["X-Request-Id"] == "gateway-call-42"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["Content-Type"] == "application/json"


def test_an_ingest_refusal_on_the_short_route_is_json(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    event = {"event_id": "short-1", "timestamp": timezone.now().isoformat(), "model": "gpt-4o", "usage": USAGE}
    refused = client.post("/api/v1/events", "{not json", content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "malformed_request"
    wrong_type = client.post("/api/v1/events", "x=1", content_type="text/plain")
    assert wrong_type.status_code == 415
    assert client.post("/api/v1/events", event, format="json").status_code == 201


def test_an_unexpected_error_on_the_short_route_is_the_json_server_error(world, monkeypatch) -> None:
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a fault on our side")

    monkeypatch.setattr(billing.api, "quota_answer", broken)
    client = world.key_client(world.alpha_key_secret)
    answer = client.post("/api/v1/quota/check", CHECK, format="json", HTTP_X_REQUEST_ID="req-500")
    assert answer.status_code == 500
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "server_error"
    assert "req-500" in answer.json()["error"]["message"]
    assert answer["X-Request-Id"] == "req-500"


def test_other_methods_and_session_callers_take_the_whole_stack(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    not_allowed = client.get("/api/v1/quota/check")
    assert not_allowed.status_code == 405
    assert not_allowed.json()["error"]["code"] == "method_not_allowed"
    by_token = world.client("alpha_owner").post("/api/v1/quota/check", CHECK, format="json")  # short route
    by_session = world.portal("alpha_owner").post(  # the whole stack: session authentication in the view
        "/api/v1/quota/check", json.dumps(CHECK), content_type="application/json"
    )
    for refused in (by_token, by_session):
        assert refused.status_code == 403
        assert "project key or a gateway token" in refused.json()["error"]["message"]


@override_settings(METERLINE_HOT_PATHS={})
def test_without_the_short_route_the_views_give_the_same_answers(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    answer = client.post("/api/v1/quota/check", CHECK, format="json")
    assert answer.status_code == 200
    assert answer.json()["decision"] == "allow"
    event = {"event_id": "long-1", "timestamp": timezone.now().isoformat(), "model": "gpt-4o", "usage": USAGE}
    stored = client.post("/api/v1/events", event, format="json")
    assert stored.status_code == 201
    assert stored.json()["outcome"] == "accepted"

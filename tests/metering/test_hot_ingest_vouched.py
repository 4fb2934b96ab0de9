"""On the hot route an ingest request is stored only once its Redis round trip allows it, and with what that round
trip vouches for: a request the rate limit refuses stores nothing, and a change another process announced (the
hot-path generation) decides the very event that follows it, even when this process read the generation a moment
ago and still holds the records the change replaced."""

import datetime as dt
import time
from decimal import Decimal

from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from billing.contracts import contract_activate, contract_create
from core import hotcache
from metering.models import UsageEvent
from tenants.services import api_key_revoke


def _post(world, event_id: str, tokens: int = 1_000_000):  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
    event = {
        "event_id": event_id,
        "timestamp": (timezone.now() - dt.timedelta(minutes=1)).isoformat(),
        "model": "gpt-4o",
        "usage": {"input_tokens": tokens, "output_tokens": 0},
    }
    return client.post("/api/v1/events", event, format="json")


@override_settings(METERLINE_RATE_LIMITS={"user": 2, "project_key": 2, "gateway": 2, "anonymous": 2})
def test_an_event_refused_by_the_rate_limit_is_not_stored(world, prices) -> None:  # type: ignore[no-untyped-def]
    assert _post(world, "one").status_code == 201
    assert _post(world, "two").status_code == 201
    refused = _post(world, "three")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == ["one", "two"]


@override_settings(METERLINE_RATE_LIMITS={"user": 1, "project_key": 1, "gateway": 1, "anonymous": 1})
def test_the_rate_limit_answers_before_the_body_is_judged(world, prices) -> None:  # type: ignore[no-untyped-def]
    """A refused request is refused whatever its body holds: what is wrong with the events is answered only once
    the rate limit allows the request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
    invalid = {"event_id": "bad", "model": "gpt-4o", "usage": {"input_tokens": -1}}
    first = client.post("/api/v1/events", invalid, format="json")
    assert first.status_code == 400 and set(first.json()["error"]["fields"]) == {"timestamp", "usage.input_tokens"}
    for body in (invalid, {"events": "not a list"}, {"events": [invalid]}):
        refused = client.post("/api/v1/events", body, format="json")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert not UsageEvent.objects.exists()


def test_a_change_another_process_announced_decides_the_event(world, prices, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The process still holds the contract terms of the previous event and read the generation a moment ago; the
    request's round trip shows the new generation, and the event is rated with the new terms."""
    assert _post(world, "before").status_code == 201
    assert UsageEvent.objects.get(event_id="before").cost == Decimal("2.5")
    with monkeypatch.context() as patched:  # as in another process: only the generation in Redis changes
        patched.setattr(hotcache, "hot_clear", lambda: None)
        contract = contract_create(actor=None, tenant=world.alpha, starts_on=dt.date(2020, 1, 1), markup_percent=10)
        contract_activate(actor=None, contract=contract)
    hotcache._thread.checked_at = time.monotonic()  # within the trust window: held records are used without a look
    assert _post(world, "with-markup").status_code == 201
    assert UsageEvent.objects.get(event_id="with-markup").cost == Decimal("2.75")


def test_a_revoked_key_stores_nothing(world, prices) -> None:  # type: ignore[no-untyped-def]
    assert _post(world, "before").status_code == 201
    api_key_revoke(actor=None, api_key=world.alpha_key)
    refused = _post(world, "revoked")
    assert refused.status_code == 401
    assert not UsageEvent.objects.filter(event_id="revoked").exists()

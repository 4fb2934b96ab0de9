"""Every rejection reason of SPEC §5.1 answers its code, and never costs a valid neighbour its place."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from metering.models import UsageEvent
from tenants import services
from tests.metering.conftest import iso
from tests.metering.test_ingest import WHEN, event

pytestmark = pytest.mark.django_db
RECENT = timezone.now() - dt.timedelta(minutes=5)

CASES = [
    ({"event_id": ""}, "event_id"),
    ({"event_id": "x" * 129}, "event_id"),
    ({"timestamp": None}, "timestamp"),
    ({"timestamp": "2026-11-02 08:00:00"}, "timestamp"),
    ({"timestamp": "2026-11-02T08:00:00"}, "timestamp"),  # no offset
    # ISO 8601 forms that are not RFC 3339: basic format, week date, no seconds, an offset without its colon
    ({"timestamp": f"{RECENT:%Y%m%dT%H%M%SZ}"}, "timestamp"),
    ({"timestamp": f"{RECENT:%G-W%V-%uT%H:%M:%SZ}"}, "timestamp"),
    ({"timestamp": f"{RECENT:%Y-%m-%dT%H:%MZ}"}, "timestamp"),
    ({"timestamp": f"{RECENT:%Y-%m-%dT%H:%M:%S+0000}"}, "timestamp"),
    ({"timestamp": f"{RECENT:%Y-%m-%dT%H:%M:%S,5Z}"}, "timestamp"),
    ({"timestamp": "9999-12-31T23:59:59-23:59"}, "timestamp"),  # beyond year 9999 in UTC
    # relative to the moment the case runs (a suite takes minutes: ten minutes ahead at collection is not at the end)
    (lambda: {"timestamp": iso(timezone.now() + dt.timedelta(minutes=10))}, "timestamp"),
    (lambda: {"timestamp": iso(timezone.now() - dt.timedelta(days=36))}, "timestamp"),
    ({"model": ""}, "model"),
    ({"model": "m" * 201}, "model"),
    ({"provider": "p" * 101}, "provider"),
    ({"provider": 0.0}, "provider"),  # not a name, even if empty-looking
    ({"provider": False}, "provider"),
    ({"usage": {"prompt_tokens": "12"}}, "usage.prompt_tokens"),
    ({"usage": {"input_tokens": 5, "output_tokens": 1, "reasoning_tokens": 2}}, "usage.output_tokens"),
    ({"usage": [1, 2]}, "usage"),
    ({"usage_format": "cobol"}, "usage_format"),
    ({"feature": "f" * 201}, "feature"),
    ({"end_user": 42}, "end_user"),
    ({"latency_ms": -1}, "latency_ms"),
    ({"status": "maybe"}, "status"),
    ({"metadata": {"blob": "x" * 5000}}, "metadata"),
    ({"metadata": "text"}, "metadata"),
    ({"request_chars": -3}, "request_chars"),
    ({"tenant": "bravo"}, "tenant"),
    ({"project": "research"}, "project"),
    ({"api_key": "mlk_doesnotexist"}, "api_key"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_each_rejection_names_its_field_and_keeps_the_neighbours(world, prices, change, field) -> None:  # type: ignore[no-untyped-def]
    change = change() if callable(change) else change
    bad = event("bad") | change
    client = world.key_client(world.alpha_key_secret)
    response = client.post("/api/v1/events", {"events": [event("good-1"), bad, event("good-2")]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert len(body["rejected"]) == 1
    rejected = body["rejected"][0]
    assert rejected["index"] == 1 and rejected["code"] == "invalid"
    assert field in rejected["errors"], rejected
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"good-1", "good-2"}


def test_a_single_rejected_event_is_a_400_in_the_error_shape(world, prices) -> None:
    response = world.key_client(world.alpha_key_secret).post("/api/v1/events", event(model=""), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "model" in response.json()["error"]["fields"]
    assert not UsageEvent.objects.exists()


def test_a_batch_over_1000_events_is_refused_whole(world, prices) -> None:
    batch = [event(f"e-{n}") for n in range(1001)]
    response = world.key_client(world.alpha_key_secret).post("/api/v1/events", {"events": batch}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert not UsageEvent.objects.exists()


def test_a_body_over_4_mib_is_a_413(world, prices) -> None:
    huge = '{"events": [' + ",".join(['{"event_id": "' + "x" * 1000 + '"}'] * 4300) + "]}"
    response = world.key_client(world.alpha_key_secret).post("/api/v1/events", huge, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_batch_under_4_mib_is_taken_from_a_portal_session_as_from_a_key(world, prices) -> None:
    """The 4 MiB of SPEC §5.1 on both routes: a 3 MiB batch is not refused by a smaller general request limit."""
    note = {"note": "n" * 3000}
    batch = [event(f"s-{n}", project="chatbot", metadata=note) for n in range(1000)]
    body = json.dumps({"events": batch})
    assert 3 * 1024 * 1024 < len(body) < 4 * 1024 * 1024
    response = world.client("alpha_owner").post("/api/v1/events", body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["accepted"] == 1000


def test_a_non_json_body_is_a_415_and_malformed_json_a_400(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", "x", content_type="text/plain").status_code == 415
    response = client.post("/api/v1/events", "{oops", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"


def test_a_gateway_must_name_tenant_and_project(world, prices) -> None:
    _token, secret = services.gateway_token_create(actor=None, name="edge")
    client = world.key_client(secret)
    response = client.post(
        "/api/v1/events",
        {
            "events": [
                event("g-1", tenant="alpha", project="chatbot"),
                event("g-2", project="chatbot"),
                event("g-3", tenant="alpha"),
                event("g-4", tenant="nope", project="chatbot"),
                event("g-5", tenant="bravo", project="search", api_key=world.alpha_key.prefix),
            ]
        },
        format="json",
    )
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], sorted(r["errors"])) for r in body["rejected"]] == [
        (1, ["tenant"]),
        (2, ["project"]),
        (3, ["tenant"]),
        (4, ["api_key"]),
    ]
    stored = UsageEvent.objects.get(event_id="g-1")
    assert stored.tenant_id == world.alpha.pk and stored.api_key_id is None


def test_a_personal_token_sends_usage_for_projects_its_user_can_see(world, prices) -> None:
    client = world.client("alpha_dev")
    response = client.post(
        "/api/v1/events", {"events": [event("u-1", project="chatbot"), event("u-2", project="research")]}, format="json"
    )
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["errors"] == {"project": ["No such project in this tenant."]}


def test_a_revoked_key_cannot_send_usage(world, prices) -> None:
    services.api_key_revoke(actor=None, api_key=world.alpha_key)
    response = world.key_client(world.alpha_key_secret).post("/api/v1/events", event(), format="json")
    assert response.status_code == 401
    assert not UsageEvent.objects.exists()


def test_the_same_event_id_in_two_tenants_is_two_events(world, prices) -> None:
    world.key_client(world.alpha_key_secret).post("/api/v1/events", event("shared"), format="json")
    response = world.key_client(world.bravo_key_secret).post("/api/v1/events", event("shared"), format="json")
    assert response.status_code == 201
    assert UsageEvent.objects.filter(event_id="shared").count() == 2


def test_a_timestamp_with_an_offset_is_the_same_instant(world, prices) -> None:
    moment = dt.datetime.fromisoformat(WHEN.replace("Z", "+00:00"))
    shanghai = moment.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()
    client = world.key_client(world.alpha_key_secret)
    client.post("/api/v1/events", event("tz"), format="json")
    again = client.post("/api/v1/events", event("tz", timestamp=shanghai), format="json")
    assert again.json()["outcome"] == "duplicate"


def test_nul_characters_are_a_field_error_not_a_server_error(world, prices) -> None:
    client = world.key_client(world.alpha_key_secret)
    batch = [
        event("ok-1"),
        event("nul-\x00"),
        event("bad-meta", metadata={"k": "a\x00b"}),
        event("bad-dim", feature="x\x00"),
    ]
    body = client.post("/api/v1/events", {"events": batch}, format="json").json()
    assert body["accepted"] == 1
    assert [sorted(r["errors"]) for r in body["rejected"]] == [["event_id"], ["metadata"], ["feature"]]


def test_nul_characters_in_query_parameters_are_a_400(world) -> None:
    response = world.client("alpha_owner").get("/api/v1/api-keys", {"tenant": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_values_json_cannot_carry_from_python_callers_are_field_errors(world, prices) -> None:
    """The API's parser refuses NaN, Infinity and lone surrogates; callers in Python get field errors instead."""
    from metering.services import IngestScope, events_ingest

    batch = [
        event("py-ok"),
        event("py-nan", usage={"prompt_tokens": float("nan"), "completion_tokens": 1}),
        event("py-inf", usage={"prompt_tokens": 10, "completion_tokens": float("inf")}),
        event("py-nan-meta", metadata={"score": float("nan")}),
        event("py-surrogate", metadata={"k": "\ud800"}),
        event("py-surrogate-dim", feature="\udc00"),
    ]
    result = events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=batch)
    assert result.accepted == 1
    assert [sorted(r["errors"]) for r in result.rejected] == [
        ["usage.prompt_tokens"],
        ["usage.completion_tokens"],
        ["metadata"],
        ["metadata"],
        ["feature"],
    ]
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["py-ok"]


@pytest.mark.parametrize(
    ("written", "offset"),
    [
        ("%Y-%m-%dT%H:%M:%S.%fZ", dt.timedelta(0)),
        ("%Y-%m-%dt%H:%M:%S.%fz", dt.timedelta(0)),  # RFC 3339 allows lower-case t and z
        ("%Y-%m-%dT%H:%M:%S.%f-00:00", dt.timedelta(0)),
        ("%Y-%m-%dT%H:%M:%S.%f+05:30", dt.timedelta(hours=5, minutes=30)),
        ("%Y-%m-%dT%H:%M:%S.%f999-08:00", dt.timedelta(hours=-8)),  # nanoseconds: cut to microseconds
    ],
)
def test_rfc_3339_timestamps_are_read_in_every_form_it_allows(world, prices, written, offset) -> None:  # type: ignore[no-untyped-def]
    moment = RECENT.replace(microsecond=123456)
    local = (moment + offset).replace(tzinfo=None)
    response = world.key_client(world.alpha_key_secret).post(
        "/api/v1/events", event("ts", timestamp=local.strftime(written)), format="json"
    )
    assert response.status_code == 201, response.json()
    assert UsageEvent.objects.get(event_id="ts").occurred_at == moment

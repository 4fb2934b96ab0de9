"""Contracts: drafts, activation (one active per tenant), and rating with overrides and markup (SPEC §5.4)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Contract
from metering.models import UsageEvent
from metering.services import IngestScope, events_ingest
from tests.metering.conftest import iso

pytestmark = pytest.mark.django_db

CONTRACT = {
    "tenant": "alpha",
    "starts_on": "2026-01-01",
    "billing_currency": "CNY",
    "markup_percent": "10",
    "discount_percent": "5",
    "tax_percent": "6",
    "tax_label": "VAT 6%",
    "invoice_type": "vat_special",
    "volume_tiers": [{"from_amount": "10000", "percent": "3"}, {"from_amount": "50000", "percent": "5"}],
    "rate_overrides": [{"model": "claude-sonnet-4", "input": "2", "output": "10"}],
    "minimum_monthly_commitment": "1000",
}


def _send(world, *events):  # type: ignore[no-untyped-def]
    return events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=list(events))


def test_an_account_manager_creates_and_activates_a_contract(world, prices, django_capture_on_commit_callbacks) -> None:
    client = world.client("am")
    created = client.post("/api/v1/contracts", CONTRACT, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["status"], body["number"], body["tenant"]) == ("draft", "C-alpha-001", "alpha")
    assert body["rate_overrides"][0]["input"] == "2.00000000"
    with django_capture_on_commit_callbacks(execute=True):
        activated = client.post(f"/api/v1/contracts/{body['id']}/activate")
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert world.client("alpha_owner").get(f"/api/v1/contracts/{body['id']}").status_code == 200
    assert world.client("alpha_dev").get(f"/api/v1/contracts/{body['id']}").status_code == 404
    assert world.client("am_other").get(f"/api/v1/contracts/{body['id']}").status_code == 404


def test_events_are_rated_with_the_override_and_the_markup(world, prices, django_capture_on_commit_callbacks) -> None:
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    _send(
        world,
        {
            "event_id": "before",
            "timestamp": when,
            "model": "gpt-4o",
            "usage": {"input_tokens": 1_000_000, "output_tokens": 0},
        },
    )
    assert UsageEvent.objects.get(event_id="before").cost == Decimal("2.5")
    client = world.client("am")
    contract = client.post("/api/v1/contracts", CONTRACT, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/contracts/{contract['id']}/activate")
    # Re-rated from the contract's start: 2.5 × 1.10
    assert UsageEvent.objects.get(event_id="before").cost == Decimal("2.75")
    _send(
        world,
        {
            "event_id": "markup",
            "timestamp": when,
            "model": "gpt-4o",
            "usage": {"input_tokens": 1_000_000, "output_tokens": 100_000},
        },
        {
            "event_id": "override",
            "timestamp": when,
            "model": "claude-sonnet-4",
            "usage": {"input_tokens": 1_000_000, "cache_read_input_tokens": 500_000, "output_tokens": 100_000},
        },
    )
    # gpt-4o book 2.5 in / 10 out, +10 %: 2.75 + 0.1 × 11 = 3.85
    assert UsageEvent.objects.get(event_id="markup").cost == Decimal("3.85")
    # override 2 in (cached falls back to input), 10 out, no markup: 1 × 2 + 0.5 × 2 + 0.1 × 10 = 4
    assert UsageEvent.objects.get(event_id="override").cost == Decimal("4")
    # The event named no provider: under the override as under book prices, the book names it.
    assert dict(UsageEvent.objects.values_list("event_id", "provider")) == {
        "before": "openai",
        "markup": "openai",
        "override": "anthropic",
    }
    # The rollups, which bills are computed from, followed the re-rating: the event priced by the book and marked
    # up keeps its book row, the one priced by the override names none.
    from metering.models import UsageRollup
    from metering.verification import rollups_verify

    assert rollups_verify() == []
    rows = UsageRollup.objects.filter(grain="day", requests__gt=0)
    assert sorted(rows.values_list("model", "price_id_value")) == [
        ("claude-sonnet-4", 0),
        ("gpt-4o", prices["gpt-4o"].pk),
    ]


def test_a_new_contract_takes_over_and_ends_the_old_one(world, prices, django_capture_on_commit_callbacks) -> None:
    client = world.client("am")
    first = client.post("/api/v1/contracts", CONTRACT, format="json").json()
    second = client.post("/api/v1/contracts", CONTRACT | {"starts_on": "2026-06-01"}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/contracts/{first['id']}/activate")
        client.post(f"/api/v1/contracts/{second['id']}/activate")
    old = Contract.objects.get(pk=first["id"])
    assert (old.status, old.ends_on) == ("ended", dt.date(2026, 5, 31))
    assert Contract.objects.filter(tenant=world.alpha, status="active").get().pk == second["id"]


def test_only_drafts_change_and_only_account_managers_write(world, prices, django_capture_on_commit_callbacks) -> None:
    contract = world.client("am").post("/api/v1/contracts", CONTRACT, format="json").json()
    assert world.client("alpha_owner").post("/api/v1/contracts", CONTRACT, format="json").status_code == 403
    assert (
        world.client("alpha_owner")
        .patch(f"/api/v1/contracts/{contract['id']}", {"markup_percent": "0"}, format="json")
        .status_code
        == 403
    )
    assert (
        world.client("am")
        .patch(f"/api/v1/contracts/{contract['id']}", {"markup_percent": "12"}, format="json")
        .json()["markup_percent"]
        == "12.0000"
    )
    with django_capture_on_commit_callbacks(execute=True):
        world.client("am").post(f"/api/v1/contracts/{contract['id']}/activate")
    refused = world.client("am").patch(f"/api/v1/contracts/{contract['id']}", {"markup_percent": "0"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "contract_not_draft"


def test_bad_tiers_and_overrides_are_400(world) -> None:
    body = CONTRACT | {
        "volume_tiers": [{"from_amount": "500", "percent": "1"}, {"from_amount": "100", "percent": "2"}],
        "rate_overrides": [{"model": "m", "input": "1", "output": "1"}, {"model": "M", "input": "2", "output": "2"}],
        "tax_percent": "106",
    }
    response = world.client("am").post("/api/v1/contracts", body, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"volume_tiers", "rate_overrides", "tax_percent"}
    assert not Contract.objects.exists()


def test_a_tenant_named_with_a_nul_character_is_not_found_not_a_500(world) -> None:
    # A body's string may carry a NUL, which PostgreSQL text cannot hold: no tenant is called that.
    for who in ("am", "platform"):
        response = world.client(who).post("/api/v1/contracts", CONTRACT | {"tenant": "alpha\x00"}, format="json")
        assert response.status_code == 404, who
        assert response.json()["error"]["code"] == "not_found"
    assert not Contract.objects.exists()

"""Single events find their rate card in what the process worked out for the previous one — and never a stale
card: a contract activated, a new price or a changed time zone decides the very next event."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from billing.contracts import contract_activate, contract_create
from metering.models import UsageEvent
from metering.rating import held_rate_cards
from metering.services import IngestScope, events_ingest
from tests.metering.conftest import add_price


def send_one(world, event_id: str) -> Decimal:  # type: ignore[no-untyped-def]
    event = {
        "event_id": event_id,
        "timestamp": (timezone.now() - dt.timedelta(minutes=1)).isoformat(),
        "model": "gpt-4o",
        "usage": {"input_tokens": 1_000_000, "output_tokens": 0},
    }
    result = events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=[event])
    assert result.accepted == 1, result.rejected
    return UsageEvent.objects.get(event_id=event_id).cost


def test_the_same_resolver_serves_event_after_event_while_nothing_changes(world, prices) -> None:
    first = held_rate_cards(world.alpha.pk, world.alpha.timezone)
    assert held_rate_cards(world.alpha.pk, world.alpha.timezone) is first
    assert held_rate_cards(world.alpha.pk, "Europe/Berlin") is not first
    assert held_rate_cards(world.bravo.pk, world.bravo.timezone) is not first


def test_a_contract_or_a_new_price_decides_the_next_event(world, prices) -> None:
    assert send_one(world, "before") == Decimal("2.5")  # gpt-4o input: 2.5 per 1M
    contract = contract_create(actor=None, tenant=world.alpha, starts_on=dt.date(2020, 1, 1), markup_percent=10)
    contract_activate(actor=None, contract=contract)
    assert send_one(world, "with-markup") == Decimal("2.75")
    add_price("gpt-4o", input="3", output="12", effective_from=timezone.now() - dt.timedelta(hours=1))
    assert send_one(world, "new-price") == Decimal("3.3")

"""On the hot ingest route a single event's budget increments travel in the request's one Redis round trip, ahead
of the write: the event is counted once when it is stored, and the increments come off again whenever it is not —
a repeat, a conflict, a correction (counted its own way), a refused request, a stale view of the budgets, a failed
write. Counters always end equal to what the stored events say."""

import datetime as dt
import sys

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from billing.budgets import budget_create, counter_key, counter_rebuild, local_day, period_bounds
from billing.models import Budget
from core import hotcache
from core.redis import redis_client
from metering import services as metering_services
from metering.models import UsageEvent

pytestmark = pytest.mark.django_db

AT = timezone.now()  # when this test's events happened: a minute before it began (the fixture below)


@pytest.fixture(autouse=True)
def _moment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys.modules[__name__], "AT", timezone.now() - dt.timedelta(minutes=1))


def event(event_id: str, tokens: int, **fields: object) -> dict:
    return {
        "event_id": event_id,
        "timestamp": AT.isoformat(),
        "model": "gpt-4o",
        "usage": {"input_tokens": tokens, "output_tokens": 0},
        **fields,
    }


def counter(budget: Budget) -> tuple[int, int]:
    """(cost in 10⁻¹⁰ USD, tokens) the budget's current counter holds."""
    start = _start(budget)
    cost, tokens = redis_client().hmget(counter_key(budget.pk, start), "cost", "tokens")
    return int(cost or 0), int(tokens or 0)


def recorded(budget: Budget) -> tuple[int, int]:
    """(cost, tokens) of the stored events in the budget's current period, from the rollups."""
    start = _start(budget)
    return counter_rebuild(budget, start, period_bounds(budget.period, start)[1])


def _start(budget: Budget) -> dt.date:
    day = local_day(AT, budget.tenant.timezone)
    return period_bounds(budget.period, day)[0]


def hincrby_batches(round_trips: list[list[tuple]]) -> list[list[str]]:
    return [[c[0] for c in batch] for batch in round_trips if any(c[0] == "HINCRBY" for c in batch)]


def test_an_accepted_event_is_counted_in_the_requests_one_round_trip(world, prices, round_trips) -> None:  # noqa: F811
    budget = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", event("warm", 1_000), format="json").status_code == 201  # loads and holds
    round_trips.clear()

    answer = client.post("/api/v1/events", event("counted", 4_000), format="json")

    assert answer.status_code == 201
    # rate limit, generation and the budget's two increments together; no round trip of their own after the write
    assert [[c[0] for c in batch] for batch in round_trips][0] == ["INCR", "GET", "HINCRBY", "HINCRBY"]
    assert len(hincrby_batches(round_trips)) == 1
    assert counter(budget)[1] == 5_000
    assert counter(budget) == recorded(budget)


@override_settings(METERLINE_RATE_LIMITS={"user": 6, "project_key": 6, "gateway": 6, "anonymous": 6})
def test_an_event_not_stored_leaves_the_counters_as_they_were(world, prices) -> None:  # noqa: F811
    budget = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", event("a", 1_000), format="json").status_code == 201
    before = counter(budget)
    assert before[1] == 1_000

    assert client.post("/api/v1/events", event("a", 1_000), format="json").status_code == 200  # a repeat
    assert counter(budget) == before
    assert client.post("/api/v1/events", event("a", 9_000), format="json").status_code == 409  # a conflict
    assert counter(budget) == before
    assert client.post("/api/v1/events", event("b", -5), format="json").status_code == 400  # rejected
    assert counter(budget) == before
    assert client.post("/api/v1/events", event("c", 2_000), format="json").status_code == 201
    assert client.post("/api/v1/events", event("d", 3_000), format="json").status_code == 201
    refused = client.post("/api/v1/events", event("e", 7_000), format="json")  # the seventh request this minute
    assert refused.status_code == 429
    assert counter(budget)[1] == 6_000
    assert counter(budget) == recorded(budget)
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == ["a", "c", "d"]


def test_a_corrected_estimate_counts_the_real_usage_once(world, prices, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    budget = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    estimate = {**event("est", 0), "usage": None, "request_chars": 40_000, "response_chars": 0}
    answer = client.post("/api/v1/events", estimate, format="json")
    assert answer.status_code == 201 and answer.json()["estimated"] == 1
    assert counter(budget)[1] == 10_000  # about four characters a token

    with django_capture_on_commit_callbacks(execute=True):  # a correction is counted once it is committed
        corrected = client.post("/api/v1/events", event("est", 2_500), format="json")

    assert corrected.status_code == 200 and corrected.json()["outcome"] == "corrected"
    assert counter(budget)[1] == 2_500
    assert counter(budget) == recorded(budget)


def test_a_failed_write_takes_the_increments_back(world, prices, monkeypatch) -> None:  # noqa: F811
    budget = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", event("kept", 1_000), format="json").status_code == 201
    before = counter(budget)

    def lost(*args: object, **kwargs: object) -> None:
        raise OperationalError("the server closed the connection unexpectedly")

    monkeypatch.setattr(metering_services, "_pg_insert_new", lost)
    client.raise_request_exception = False
    answer = client.post("/api/v1/events", event("lost", 4_000), format="json")

    assert answer.status_code == 500 and answer["Content-Type"] == "application/json"
    assert counter(budget) == before == recorded(budget)
    monkeypatch.undo()
    assert client.post("/api/v1/events", event("lost", 4_000), format="json").status_code == 201  # sent again
    assert counter(budget)[1] == 5_000


def test_a_budget_another_process_created_counts_the_very_next_event(
    world,
    prices,  # noqa: F811
    monkeypatch,
    django_capture_on_commit_callbacks,
) -> None:  # type: ignore[no-untyped-def]
    """The increments were worked out from the budgets this process held; the round trip shows a change made
    elsewhere, so they come off and the event is counted from the budgets as they now are — once each."""
    first = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", event("before", 1_000), format="json").status_code == 201
    with monkeypatch.context() as patched:  # as in another process: only the generation in Redis changes
        patched.setattr(hotcache, "hot_clear", lambda: None)
        second = budget_create(
            actor=None, tenant=world.alpha, name="tenant month", scope="tenant", period="month", limit_tokens=10**9
        )

    with django_capture_on_commit_callbacks(execute=True):  # counted once committed, as without a held view
        assert client.post("/api/v1/events", event("after", 2_000), format="json").status_code == 201

    assert counter(first)[1] == 3_000
    assert counter(first) == recorded(first)
    assert counter(second) == recorded(second)  # created by the event (3,000 tokens recorded, from the rollups)
    assert counter(second)[1] == 3_000


def test_increments_that_created_a_counter_and_came_off_leave_it_to_be_rebuilt(world, prices) -> None:  # noqa: F811
    """The counter had been lost (Redis restarted); a repeat's increments create it and come off again: the counter
    is marked stale, and the next read rebuilds it from the stored events rather than starting from nothing."""
    budget = world.daily_token_budget(10_000_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/events", event("stored", 6_000), format="json").status_code == 201
    key = counter_key(budget.pk, _start(budget))
    redis_client().delete(key)

    assert client.post("/api/v1/events", event("stored", 6_000), format="json").status_code == 200  # a repeat

    assert redis_client().hget(key, "stale") == b"1"
    check = client.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").json()
    assert [b["spent"] for b in check["budgets"] if b["id"] == budget.pk] == ["6000"]


@override_settings(METERLINE_RATE_LIMITS={"user": 1, "project_key": 1, "gateway": 1, "anonymous": 1})
def test_a_gateways_event_is_counted_after_its_write(
    world,
    prices,  # noqa: F811
    round_trips,
    django_assert_num_queries,
    django_capture_on_commit_callbacks,
) -> None:  # type: ignore[no-untyped-def]
    """A gateway token names the tenant and project in each event, which are read from the database only once the
    rate limit allows the request: its increments go after the write, in a round trip of their own."""
    from tenants.services import gateway_token_create

    budget = world.daily_token_budget(10_000_000)
    _token, secret = gateway_token_create(actor=None, name="edge")
    gateway = world.key_client(secret)
    body = event("via-gateway", 3_000, tenant=world.alpha.slug, project=world.alpha_project.slug)
    with django_capture_on_commit_callbacks(execute=True):
        assert gateway.post("/api/v1/events", body, format="json").status_code == 201
    assert counter(budget)[1] == 3_000 and counter(budget) == recorded(budget)
    assert hincrby_batches(round_trips) == [["HINCRBY", "HINCRBY"]]

    with django_assert_num_queries(0):  # refused before any look-up
        refused = gateway.post("/api/v1/events", {**body, "event_id": "second"}, format="json")
    assert refused.status_code == 429
    assert counter(budget)[1] == 3_000

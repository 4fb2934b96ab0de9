"""The quota check's hot path: one Redis round trip and no database query once a process holds the key and
the tenant's budgets; what a process holds is trusted only while the Redis generation is unchanged, so a change
made anywhere (another web process, the admin, a worker) decides the very next check; Redis down still answers."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from billing.budgets import counter_key, period_bounds
from billing.models import Budget
from core.hotcache import GENERATION_KEY
from core.redis import redis_client
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db

CHECK = {"model": "gpt-4o", "estimated_tokens": 1200}


def spend_tokens(budget: Budget, tokens: int) -> None:
    start, _end = period_bounds(budget.period, timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    redis_client().hset(counter_key(budget.pk, start), mapping={"cost": 0, "tokens": tokens})


def test_a_held_key_is_checked_in_one_round_trip_without_the_database(
    world, django_assert_num_queries, round_trips
) -> None:
    budget = world.daily_token_budget(10_000)
    spend_tokens(budget, 100)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").status_code == 200  # loads and holds
    round_trips.clear()
    with django_assert_num_queries(0):
        answer = client.post("/api/v1/quota/check", CHECK, format="json")
    assert answer.status_code == 200
    assert answer.json()["decision"] == "allow"
    assert [b["spent"] for b in answer.json()["budgets"]] == ["100"]
    assert len(round_trips) == 1
    names = [command[0] for command in round_trips[0]]
    assert names == ["INCR", "GET", "HMGET"]  # rate limit, generation, the one budget's counter


def test_a_key_revoked_elsewhere_is_refused_on_the_next_check(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").status_code == 200
    # another process revokes the key: the row changes, the shared entry goes and the generation is renewed
    ApiKey.objects.filter(pk=world.alpha_key.pk).update(revoked_at=timezone.now())
    cache.delete(f"cred:{world.alpha_key.prefix}")
    assert client.post("/api/v1/quota/check", CHECK, format="json").status_code == 200  # still held here…
    redis_client().set(GENERATION_KEY, "renewed-by-another-process")
    refused = client.post("/api/v1/quota/check", CHECK, format="json")
    assert refused.status_code == 401  # …until the generation says otherwise
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert "revoked" in refused.json()["error"]["message"]


def test_revoking_through_the_service_refuses_the_next_check_and_ingest(world) -> None:
    from tenants.services import api_key_revoke

    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").status_code == 200
    api_key_revoke(actor=world.users["alpha_owner"], api_key=world.alpha_key)
    assert client.post("/api/v1/quota/check", CHECK, format="json").status_code == 401
    event = {"event_id": "after-revoke", "timestamp": timezone.now().isoformat(), "model": "gpt-4o", "usage": {}}
    assert client.post("/api/v1/events", event, format="json").status_code == 401


def test_a_budget_created_elsewhere_decides_the_next_check(world) -> None:
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["budgets"] == []
    budget = world.daily_token_budget(1_000)  # the service renews the generation
    spend_tokens(budget, 1_000)
    blocked = client.post("/api/v1/quota/check", CHECK, format="json").json()
    assert blocked["decision"] == "block"
    assert [b["id"] for b in blocked["budgets"]] == [budget.pk]


def test_an_approved_raise_unblocks_the_next_check(world) -> None:
    from billing.budgets import raise_decide, raise_request

    budget = world.daily_token_budget(1_000)
    spend_tokens(budget, 1_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "block"
    today = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    asked = raise_request(
        actor=world.users["alpha_owner"], budget=budget, amount=Decimal(5_000), until=today, reason="launch"
    )
    raise_decide(actor=world.users["am"], raise_request=asked, approve=True)
    answer = client.post("/api/v1/quota/check", CHECK, format="json").json()
    assert answer["decision"] == "allow"
    assert answer["budgets"][0]["limit"] == "6000"


def test_the_check_answers_from_the_database_when_redis_is_down(world, redis_down) -> None:
    budget = world.daily_token_budget(100_000)
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "allow"

    redis_down()
    answer = client.post("/api/v1/quota/check", CHECK, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["decision"] == "allow"
    assert [b["id"] for b in answer.json()["budgets"]] == [budget.pk]  # counters rebuilt from the rollups


def test_ingest_stores_events_when_redis_is_down(world, prices, redis_down) -> None:
    from metering.models import UsageEvent

    world.daily_token_budget(100_000)

    redis_down()
    event = {
        "event_id": "while-redis-is-down",
        "timestamp": timezone.now().isoformat(),
        "model": "gpt-4o",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    stored = world.key_client(world.alpha_key_secret).post("/api/v1/events", event, format="json")
    assert stored.status_code == 201, stored.content
    assert UsageEvent.objects.filter(tenant=world.alpha, event_id="while-redis-is-down").count() == 1


def test_a_suspended_tenant_is_blocked_and_its_usage_still_metered(world) -> None:
    """Its account manager suspends the tenant: the next check blocks every key of it (held keys included — the
    change renews the generation); usage already spent is still accepted; resumed, checks allow again."""
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "allow"  # held now
    manager = world.client("am")
    assert manager.patch("/api/v1/tenants/alpha", {"status": "suspended"}, format="json").status_code == 200
    blocked = client.post("/api/v1/quota/check", CHECK, format="json").json()
    assert blocked["decision"] == "block" and "suspended" in blocked["reason"]
    assert blocked["model"] == "gpt-4o" and blocked["budgets"] == []
    moment = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    event = {"event_id": "after-suspension", "timestamp": moment, "model": "gpt-4o", "usage": {"input_tokens": 9}}
    assert client.post("/api/v1/events", event, format="json").status_code == 201
    assert world.client("am").patch("/api/v1/tenants/alpha", {"status": "active"}, format="json").status_code == 200
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "allow"
    bravo = world.key_client(world.bravo_key_secret)
    assert bravo.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "allow"


def test_a_suspended_tenants_pages_say_so(world) -> None:
    from tenants.models import Tenant

    Tenant.objects.filter(slug="alpha").update(status="suspended")
    page = world.portal("alpha_owner").get("/t/alpha/usage/").content.decode()
    assert "data-suspended" in page and "This tenant is suspended" in page
    assert "data-suspended" not in world.portal("bravo_owner").get("/t/bravo/usage/").content.decode()


def test_the_account_manager_suspends_and_resumes_in_the_portal(world) -> None:
    """A button on the tenant's page for its account manager; the tenant's own owner has none and is refused."""
    from core.models import AuditEntry
    from tenants.models import Tenant

    owner = world.portal("alpha_owner")
    assert "Suspend tenant" not in owner.get("/t/alpha/").content.decode()
    assert owner.post("/t/alpha/status/", {"status": "suspended"}).status_code == 403
    manager = world.portal("am")
    assert "Suspend tenant" in manager.get("/t/alpha/").content.decode()
    response = manager.post("/t/alpha/status/", {"status": "suspended"}, follow=True)
    assert "is suspended: quota checks now block its calls" in response.content.decode()
    assert Tenant.objects.get(slug="alpha").status == "suspended"
    client = world.key_client(world.alpha_key_secret)
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "block"
    assert "Resume tenant" in response.content.decode()
    manager.post("/t/alpha/status/", {"status": "active"})
    assert Tenant.objects.get(slug="alpha").status == "active"
    assert client.post("/api/v1/quota/check", CHECK, format="json").json()["decision"] == "allow"
    assert AuditEntry.objects.filter(object_type="tenants.tenant", action="update").count() == 2
    assert manager.post("/t/alpha/status/", {"status": "deleted"}).status_code == 302  # refused with a message
    assert Tenant.objects.get(slug="alpha").status == "active"

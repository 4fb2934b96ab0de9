"""Budgets (SPEC §6): real-time counters updated by ingestion (duplicates never count, corrections adjust),
rebuilt from rollups; thresholds fire once per period; the quota decision for gateways."""

import datetime as dt
from decimal import Decimal

import pytest
import redis
from django.utils import timezone

from billing.budgets import budget_states, counter_key, counter_rebuild, period_bounds
from billing.models import Budget, BudgetAlert, FxRate
from core.redis import redis_client
from metering.services import IngestScope, events_ingest
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db


def send(world, *events, key=None):  # type: ignore[no-untyped-def]
    scope = IngestScope(kind="project_key", api_key=key or world.alpha_key)
    return events_ingest(scope=scope, raw_events=list(events))


def ev(event_id: str, model: str = "gpt-4o", minutes_ago: int = 1, **usage: int) -> dict:
    moment = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return {"event_id": event_id, "timestamp": moment.isoformat(), "model": model, "usage": usage}


def make_budget(world, **body):  # type: ignore[no-untyped-def]
    payload = {"tenant": "alpha", "name": "b", "scope": "tenant", "period": "month", **body}
    response = world.client("alpha_admin").post("/api/v1/budgets", payload, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def usd(world):  # type: ignore[no-untyped-def]
    world.alpha.billing_currency = "USD"
    world.alpha.save()


def test_periods_follow_the_calendar() -> None:
    day = dt.date(2026, 11, 19)  # a Thursday
    assert period_bounds("day", day) == (day, day)
    assert period_bounds("week", day) == (dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert period_bounds("month", day) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert period_bounds("month", dt.date(2028, 2, 10)) == (dt.date(2028, 2, 1), dt.date(2028, 2, 29))


def test_counters_follow_ingestion_duplicates_and_corrections(
    world, prices, usd, django_capture_on_commit_callbacks
) -> None:
    budget = make_budget(world, limit_amount="10.00")
    assert (budget["spent"], budget["percent"], budget["currency"]) == ("0.00", "0.00", "USD")
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("a", input_tokens=1_000_000))  # 2.50 USD
        send(world, ev("a", input_tokens=1_000_000))  # a duplicate never counts twice
        send(world, {**ev("est"), "usage": None, "request_chars": 4_000_000, "response_chars": 0})
    # the estimate: 4,000,000 chars ≈ 1,000,000 tokens × 2.5 = 2.50 USD → 5.00 in all
    read = world.client("alpha_member").get(f"/api/v1/budgets/{budget['id']}").json()
    assert (read["spent"], read["percent"]) == ("5.00", "50.00")
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("est", input_tokens=400_000))  # the real usage replaces the estimate: 1.00
    read = world.client("alpha_member").get(f"/api/v1/budgets/{budget['id']}").json()
    assert read["spent"] == "3.50"
    # the counter equals what the rollups say
    model = Budget.objects.get(pk=budget["id"])
    start, end = period_bounds("month", timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    live = redis_client().hmget(counter_key(model.pk, start), "cost", "tokens")
    assert counter_rebuild(model, start, end) == (int(live[0]), int(live[1]))


def test_a_counter_created_by_an_increment_expires(world, prices, usd, django_capture_on_commit_callbacks) -> None:
    budget = make_budget(world, limit_amount="10.00")
    model = Budget.objects.get(pk=budget["id"])
    start, _end = period_bounds("month", timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    redis_client().delete(counter_key(model.pk, start))
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("first-of-period", input_tokens=1_000_000))
    assert redis_client().hmget(counter_key(model.pk, start), "cost")[0] is not None
    assert 0 < redis_client().ttl(counter_key(model.pk, start)) <= 40 * 24 * 3600
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("second", input_tokens=1_000_000))
    assert redis_client().ttl(counter_key(model.pk, start)) > 0


def test_money_budgets_convert_at_the_latest_rate(world, prices, django_capture_on_commit_callbacks) -> None:
    FxRate.objects.create(base="USD", quote="CNY", date=dt.date(2026, 1, 1), rate=Decimal("7"), source="manual")
    budget = make_budget(world, limit_amount="35.00")  # alpha bills in CNY
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("a", input_tokens=1_000_000))  # 2.50 USD × 7 = 17.50 CNY
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert (read["currency"], read["spent"], read["percent"]) == ("CNY", "17.50", "50.00")
    [alert] = BudgetAlert.objects.filter(budget_id=budget["id"])  # its top consumers in the budget's currency too
    key = {"api_key": world.alpha_key.prefix, "cost": "17.5000", "currency": "CNY"}
    assert alert.top_consumers["api_keys"] == [key]


def test_a_batch_crossing_several_thresholds_fires_each_once(
    world, prices, usd, django_capture_on_commit_callbacks
) -> None:
    budget = make_budget(world, limit_amount="10.00", thresholds=[50, 80, 95, 100])
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("x1", input_tokens=1_000_000))  # 2.50 → 25 %
        send(world, ev("x2", input_tokens=2_000_000), ev("x3", input_tokens=1_000_000, end_user="u-9"))  # 10.00 → 100 %
        send(world, ev("x4", input_tokens=400_000))  # 11.00 → 110 %: nothing new
    alerts = BudgetAlert.objects.filter(budget_id=budget["id"]).order_by("threshold")
    assert [(a.threshold, a.severity) for a in alerts] == [
        (50, "info"),
        (80, "warning"),
        (95, "high"),
        (100, "critical"),
    ]
    top = alerts[3].top_consumers
    assert {"end_users", "api_keys", "features"} <= set(top)


def test_an_alert_names_the_consumers_of_its_own_scope_and_says_where_to_look(
    world, prices, usd, django_capture_on_commit_callbacks
) -> None:
    """A project's budget names the project's top end users, keys and features — not the whole tenant's — and
    its chat message lists them with a link to the budgets page."""
    from billing.channels import text_of
    from tests.factories import api_key_for

    other_key, _secret = api_key_for(world.alpha_other_project)
    budget = make_budget(
        world, scope="project", scope_value=world.alpha_project.slug, limit_amount="1.00", thresholds=[100]
    )
    with django_capture_on_commit_callbacks(execute=True):
        send(
            world,
            {**ev("elsewhere", input_tokens=4_000_000), "end_user": "big-elsewhere", "feature": "other"},
            key=other_key,
        )  # 10 USD in the other project
        send(world, {**ev("here", input_tokens=400_000), "end_user": "loop-bot", "feature": "chat"})  # 1.00 USD
    [alert] = BudgetAlert.objects.filter(budget_id=budget["id"])
    top = alert.top_consumers
    assert [u["end_user"] for u in top["end_users"]] == ["loop-bot"]
    assert [f["feature"] for f in top["features"]] == ["chat"]
    assert [k["api_key"] for k in top["api_keys"]] == [world.alpha_key.prefix]
    from billing.channels import alert_payload

    text = text_of(alert_payload(alert))
    assert "loop-bot 1.00 USD" in text and "big-elsewhere" not in text
    assert text.rstrip().endswith("/t/alpha/budgets/")


def test_a_new_period_starts_fresh(world, prices, usd, django_capture_on_commit_callbacks) -> None:
    budget = make_budget(world, limit_tokens=1000, period="day", thresholds=[100])
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("old", minutes_ago=60 * 30, input_tokens=5000))  # yesterday (or earlier)
        send(world, ev("new", input_tokens=500))
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert (read["spent"], read["percent"], read["currency"]) == ("500", "50.00", "tokens")


def test_quota_check_allows_blocks_and_downgrades(world, prices, usd, django_capture_on_commit_callbacks) -> None:
    key_client = world.key_client(world.alpha_key_secret)
    allowed = key_client.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").json()
    assert (allowed["decision"], allowed["model"], allowed["budgets"]) == ("allow", "gpt-4o", [])
    make_budget(
        world,
        name="project cap",
        scope="project",
        scope_value="chatbot",
        limit_amount="2.00",
        action_at_limit="downgrade",
        downgrade_map={"gpt-4o": "gpt-4o-mini"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("q1", input_tokens=1_000_000))  # 2.50 ≥ 2.00
    downgrade = key_client.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").json()
    assert (downgrade["decision"], downgrade["model"]) == ("downgrade", "gpt-4o-mini")
    assert downgrade["budgets"][0]["spent"] == "2.5000" and downgrade["budgets"][0]["percent"] == "125.00"
    # The model as gateways and SDKs name it: another case, a dated snapshot, a provider/model route.
    for asked, offered in (
        ("GPT-4o", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o-mini"),
        ("openai/gpt-4o", "openai/gpt-4o-mini"),
    ):
        answer = key_client.post("/api/v1/quota/check", {"model": asked}, format="json").json()
        assert (answer["decision"], answer["model"]) == ("downgrade", offered), asked
    other = key_client.post("/api/v1/quota/check", {"model": "o3"}, format="json").json()
    assert (other["decision"], other["model"]) == ("allow", "o3")  # nothing cheaper named: allowed, as before
    make_budget(
        world,
        name="dev tokens",
        scope="environment",
        scope_value="production",
        limit_tokens=1_000_000,
        action_at_limit="block",
    )
    blocked = key_client.post("/api/v1/quota/check", {"model": "gpt-4o", "estimated_tokens": 10}, format="json").json()
    assert blocked["decision"] == "block" and "dev tokens" in blocked["reason"]
    # a gateway names the key; another tenant's slug with it is a 404; a revoked key is a 404
    gateway, secret = tenant_services.gateway_token_create(actor=None, name="edge")
    gw = world.key_client(secret)
    body = {"model": "gpt-4o", "api_key": world.alpha_key.prefix}
    assert gw.post("/api/v1/quota/check", body, format="json").json()["decision"] == "block"
    assert gw.post("/api/v1/quota/check", {**body, "tenant": "bravo"}, format="json").status_code == 404
    assert gw.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").status_code == 400
    tenant_services.api_key_revoke(actor=None, api_key=world.alpha_key)
    assert gw.post("/api/v1/quota/check", body, format="json").status_code == 404
    assert world.client("alpha_owner").post("/api/v1/quota/check", body, format="json").status_code == 403


def test_budget_api_roles_and_validation(world, prices, usd) -> None:
    bad = world.client("alpha_admin").post(
        "/api/v1/budgets",
        {
            "tenant": "alpha",
            "name": "x",
            "scope": "project",
            "scope_value": "nope",
            "period": "month",
            "limit_amount": "5",
        },
        format="json",
    )
    assert bad.status_code == 400 and "scope_value" in bad.json()["error"]["fields"]
    both = world.client("alpha_admin").post(
        "/api/v1/budgets",
        {"tenant": "alpha", "name": "x", "scope": "tenant", "period": "month", "limit_amount": "5", "limit_tokens": 9},
        format="json",
    )
    assert both.status_code == 400
    member = world.client("alpha_member").post(
        "/api/v1/budgets",
        {"tenant": "alpha", "name": "x", "scope": "tenant", "period": "day", "limit_tokens": 9},
        format="json",
    )
    assert member.status_code == 403
    budget = make_budget(world, limit_tokens=50_000, period="day", name="dev cap")
    assert (
        world.client("am").patch(f"/api/v1/budgets/{budget['id']}", {"limit_tokens": 60_000}, format="json").status_code
        == 200
    )
    assert world.client("bravo_owner").get(f"/api/v1/budgets/{budget['id']}").status_code == 404
    assert world.client("alpha_dev").get(f"/api/v1/budgets/{budget['id']}").status_code == 404
    listed = world.client("alpha_member").get("/api/v1/budgets").json()["results"]
    assert [b["name"] for b in listed] == ["dev cap"] and listed[0]["limit_tokens"] == 60_000
    assert budget_states([Budget.objects.get(pk=budget["id"])])[0].limit == 60_000


def test_redis_down_keeps_events_and_the_reconcile_rebuilds(
    world, prices, usd, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from billing import budgets as budget_module
    from billing.budgets import counters_reconcile
    from metering.models import UsageEvent

    budget = make_budget(world, limit_amount="10.00")

    def down(commands):  # type: ignore[no-untyped-def]
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(budget_module, "redis_run", down)
    with django_capture_on_commit_callbacks(execute=True):
        result = send(world, ev("while-down", input_tokens=2_000_000))
    assert result.accepted == 1 and UsageEvent.objects.filter(event_id="while-down").exists()
    monkeypatch.undo()
    # The read path rebuilds a counter flagged stale; when even the flag was lost (the same Redis was down)
    # and Redis came back empty, a later increment starts the counter from zero: it under-counts…
    model = Budget.objects.get(pk=budget["id"])
    start, _end = period_bounds("month", timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    redis_client().delete(counter_key(model.pk, start))
    redis_client().hset(counter_key(model.pk, start), mapping={"cost": 0, "tokens": 0})
    assert world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()["spent"] == "0.00"
    # …until the reconcile rebuilds it from the rollups
    assert counters_reconcile() == 1
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert read["spent"] == "5.00"


def test_budget_raise_request_approval_and_end(world, prices, usd, django_capture_on_commit_callbacks) -> None:
    from billing.models import BudgetRaiseRequest

    budget = make_budget(world, limit_amount="2.00", action_at_limit="block")
    with django_capture_on_commit_callbacks(execute=True):
        send(world, ev("r1", input_tokens=1_000_000))  # 2.50 ≥ 2.00: blocked
    key_client = world.key_client(world.alpha_key_secret)
    assert key_client.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").json()["decision"] == "block"
    until = (timezone.now() + dt.timedelta(days=2)).date().isoformat()
    body = {"budget": budget["id"], "amount": "3.00", "until": until, "reason": "launch week"}
    assert world.client("alpha_member").post("/api/v1/budget-raises", body, format="json").status_code == 403
    asked = world.client("alpha_admin").post("/api/v1/budget-raises", body, format="json")
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    raise_id = asked.json()["id"]
    assert world.client("alpha_admin").post(f"/api/v1/budget-raises/{raise_id}/approve").status_code == 403
    assert world.client("am_other").post(f"/api/v1/budget-raises/{raise_id}/approve").status_code == 404
    approved = world.client("am").post(f"/api/v1/budget-raises/{raise_id}/approve", {"note": "ok"}, format="json")
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "am-alice"
    assert world.client("am").post(f"/api/v1/budget-raises/{raise_id}/reject").status_code == 409
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert read["percent"] == "50.00"  # 2.50 of 2.00 + 3.00
    assert key_client.post("/api/v1/quota/check", {"model": "gpt-4o"}, format="json").json()["decision"] == "allow"
    # the raise ends with its date: after it, the limit is the budget's own again
    from billing.budgets import raised_amount

    model = Budget.objects.get(pk=budget["id"])
    raise_obj = BudgetRaiseRequest.objects.get(pk=raise_id)
    assert raised_amount(model, raise_obj.period_start, today=raise_obj.until) == Decimal("3.00")
    assert raised_amount(model, raise_obj.period_start, today=raise_obj.until + dt.timedelta(days=1)) == 0
    assert raise_obj.until <= period_bounds("month", raise_obj.period_start)[1]


def test_counters_and_alerts_follow_re_rating(world, prices, usd, django_capture_on_commit_callbacks) -> None:
    """Events priced later — an unpriced model's price arriving, a price change entered late — move the budgets
    they count toward as ingestion does: the counter at once (not at the next reconcile) and the thresholds the new
    cost crosses, which a later event could no longer fire (the counter would already be past them)."""
    from metering.prices import price_add

    budget = make_budget(world, limit_amount="10.00", thresholds=[50, 100])
    with django_capture_on_commit_callbacks(execute=True):
        send(
            world,
            ev("n1", model="novel-llm", input_tokens=1_000_000),
            ev("n2", model="novel-llm", input_tokens=1_000_000),
        )
    assert world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()["spent"] == "0.00"  # unpriced
    with django_capture_on_commit_callbacks(execute=True):
        price_add(
            actor=None,
            provider="acme-ai",
            model="novel-llm",
            prices={"input": Decimal(3), "output": Decimal(3)},
            effective_from=timezone.now() - dt.timedelta(days=1),
        )
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert (read["spent"], read["percent"]) == ("6.00", "60.00")
    assert list(BudgetAlert.objects.filter(budget_id=budget["id"]).values_list("threshold", flat=True)) == [50]
    with django_capture_on_commit_callbacks(execute=True):  # the same model dearer since an hour before its events
        price_add(
            actor=None,
            provider="acme-ai",
            model="novel-llm",
            prices={"input": Decimal(6), "output": Decimal(6)},
            effective_from=timezone.now() - dt.timedelta(hours=1),
        )
    read = world.client("alpha_owner").get(f"/api/v1/budgets/{budget['id']}").json()
    assert (read["spent"], read["percent"]) == ("12.00", "120.00")
    fired = BudgetAlert.objects.filter(budget_id=budget["id"]).order_by("threshold")
    assert list(fired.values_list("threshold", flat=True)) == [50, 100]
    model = Budget.objects.get(pk=budget["id"])
    start, end = period_bounds("month", timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    live = redis_client().hmget(counter_key(model.pk, start), "cost", "tokens")
    assert counter_rebuild(model, start, end) == (int(live[0]), int(live[1]))

"""Portal pages for budgets (gauges, alerts, anomalies) and alert channels (with a test send)."""

import pytest
from django.core import mail

from billing.models import Budget, NotificationChannel

pytestmark = pytest.mark.django_db


def test_admins_create_budgets_members_read_them(world, prices) -> None:
    admin = world.portal("alpha_admin")
    created = admin.post(
        "/t/alpha/budgets/",
        {
            "name": "Dev tokens",
            "scope": "environment",
            "scope_value": "development",
            "period": "day",
            "limit_tokens": "50000",
            "thresholds": "50, 80, 100",
            "action_at_limit": "block",
            "downgrade_map": "",
        },
    )
    assert created.status_code == 302, created.content.decode()[:3000]
    budget = Budget.objects.get(name="Dev tokens")
    assert (budget.limit_tokens, budget.thresholds, budget.action_at_limit) == (50_000, [50, 80, 100], "block")
    page = world.portal("alpha_member").get("/t/alpha/budgets/").content.decode()
    assert "Dev tokens" in page and "<meter" in page and "New budget" not in page
    bad = admin.post(
        "/t/alpha/budgets/",
        {
            "name": "x",
            "scope": "project",
            "scope_value": "nope",
            "period": "month",
            "limit_amount": "5",
            "thresholds": "50",
            "action_at_limit": "notify",
        },
    )
    assert bad.status_code == 200 and "No project" in bad.content.decode()
    assert world.portal("alpha_member").post("/t/alpha/budgets/", {"name": "x"}).status_code == 403
    assert world.portal("alpha_dev").get("/t/alpha/budgets/").status_code == 403


def test_a_budget_made_in_the_portal_sends_its_alerts_to_the_channels_ticked(world, prices) -> None:
    ops = NotificationChannel.objects.create(tenant=world.alpha, name="Ops", kind="email", target="ops@alpha.example")
    NotificationChannel.objects.create(
        tenant=world.alpha, name="Old hook", kind="webhook", target="https://hooks.example/x", enabled=False
    )
    NotificationChannel.objects.create(tenant=world.bravo, name="Bravo mail", kind="email", target="b@bravo.example")
    admin = world.portal("alpha_admin")
    page = admin.get("/t/alpha/budgets/").content.decode()
    # the tenant's channels in use are offered, ticked; one turned off and another tenant's are not
    assert f'name="channels" value="{ops.pk}"' in page and "checked" in page.split(f'value="{ops.pk}"')[1][:40]
    assert "Old hook" not in page.split("New budget")[1] and "Bravo mail" not in page
    body = {
        "name": "Cap",
        "scope": "tenant",
        "period": "month",
        "limit_amount": "100",
        "thresholds": "80, 100",
        "action_at_limit": "notify",
        "downgrade_map": "",
    }
    assert admin.post("/t/alpha/budgets/", {**body, "channels": [ops.pk]}).status_code == 302
    assert list(Budget.objects.get(name="Cap").channels.all()) == [ops]
    assert admin.post("/t/alpha/budgets/", {**body, "name": "Quiet"}).status_code == 302  # none ticked
    assert not Budget.objects.get(name="Quiet").channels.exists()
    bravo = NotificationChannel.objects.get(name="Bravo mail")
    refused = admin.post("/t/alpha/budgets/", {**body, "name": "Sneaky", "channels": [bravo.pk]})
    assert refused.status_code == 200 and not Budget.objects.filter(name="Sneaky").exists()
    listing = admin.get("/t/alpha/budgets/").content.decode()
    assert "Alerts to" in listing and "this page only" in listing


def test_channels_page_adds_a_channel_and_sends_a_test(world) -> None:
    admin = world.portal("alpha_admin")
    added = admin.post("/t/alpha/channels/", {"name": "Ops", "kind": "email", "target": "ops@alpha.example"})
    assert added.status_code == 302
    channel = NotificationChannel.objects.get(tenant=world.alpha, name="Ops")
    sent = admin.post(f"/t/alpha/channels/{channel.pk}/test/", follow=True).content.decode()
    assert "Test message sent" in sent and mail.outbox[-1].to == ["ops@alpha.example"]
    wrong = admin.post("/t/alpha/channels/", {"name": "Hook", "kind": "webhook", "target": "not a url"})
    assert wrong.status_code == 200 and "http(s) URL" in wrong.content.decode()
    assert world.portal("alpha_member").post(f"/t/alpha/channels/{channel.pk}/test/").status_code == 403


def test_a_channel_is_turned_off_and_on_and_removed_in_the_portal(world, prices) -> None:
    from billing.budgets import budget_create
    from billing.channels import deliveries_queue
    from core.models import AuditEntry

    admin = world.portal("alpha_admin")
    admin.post("/t/alpha/channels/", {"name": "Ops", "kind": "email", "target": "ops@alpha.example"})
    channel = NotificationChannel.objects.get(tenant=world.alpha, name="Ops")
    budget = budget_create(actor=None, tenant=world.alpha, name="Cap", scope="tenant", period="month", limit_amount=5)
    budget.channels.add(channel)
    page = admin.get("/t/alpha/channels/").content.decode()
    assert "used by 1 budget" in page and "The budget that sends alerts to it will no longer do so." in page

    page = admin.post(f"/t/alpha/channels/{channel.pk}/", {"action": "off"}, follow=True).content.decode()
    channel.refresh_from_db()
    assert channel.enabled is False and "is off" in page and ">Turn on<" in page
    assert deliveries_queue(channels=[channel], payload={"type": "test"}, subject="test") == []  # nothing goes out
    admin.post(f"/t/alpha/channels/{channel.pk}/", {"action": "on"})
    channel.refresh_from_db()
    assert channel.enabled is True

    # only those who set channels, and only their tenant's
    assert world.portal("alpha_member").post(f"/t/alpha/channels/{channel.pk}/", {"action": "off"}).status_code == 403
    assert world.portal("bravo_owner").post(f"/t/alpha/channels/{channel.pk}/", {"action": "remove"}).status_code == 404
    assert world.portal("bravo_owner").post(f"/t/bravo/channels/{channel.pk}/", {"action": "remove"}).status_code == 404
    assert admin.post(f"/t/alpha/channels/{channel.pk}/", {"action": "explode"}).status_code == 302
    assert NotificationChannel.objects.filter(pk=channel.pk).exists()

    page = admin.post(f"/t/alpha/channels/{channel.pk}/", {"action": "remove"}, follow=True).content.decode()
    assert "Channel Ops removed." in page
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert list(budget.channels.all()) == []
    actions = list(
        AuditEntry.objects.filter(object_type__icontains="notificationchannel", object_id=str(channel.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["create", "update", "update", "delete"]


def test_the_account_manager_decides_raises_and_sees_tenants_spend(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    import datetime as dt

    from django.utils import timezone

    from billing.budgets import budget_create, raise_request
    from billing.models import BudgetRaiseRequest
    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    budget = budget_create(actor=None, tenant=world.alpha, name="Cap", scope="tenant", period="month", limit_amount=5)
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[
                {
                    "event_id": "s1",
                    "timestamp": timezone.now().isoformat(),
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 1_000_000},
                }
            ],
        )
    asked = raise_request(
        actor=world.users["alpha_admin"],
        budget=budget,
        amount=5,
        until=timezone.now().date() + dt.timedelta(days=1),
        reason="demo day",
    )
    manager = world.portal("am")
    page = manager.get("/t/alpha/budgets/").content.decode()
    assert "demo day" in page and 'value="approve"' in page
    assert (
        world.portal("alpha_admin")
        .post(f"/t/alpha/budget-raises/{asked.pk}/decide/", {"action": "approve"})
        .status_code
        == 403
    )
    decided = manager.post(f"/t/alpha/budget-raises/{asked.pk}/decide/", {"action": "approve"}, follow=True)
    assert "Raise Approved" in decided.content.decode()
    assert BudgetRaiseRequest.objects.get(pk=asked.pk).status == "approved"
    tenants = manager.get("/staff/tenants/").content.decode()
    # 1,000,000 × 2.5 = 2.50 USD this month; 2.50 of 5 + 5 raised = 25 %
    assert "2.50" in tenants and "25%" in tenants


def test_a_budgets_period_reads_as_a_period_in_chinese(world, prices) -> None:
    from billing.budgets import budget_create

    budget_create(actor=None, tenant=world.alpha, name="Cap", scope="tenant", period="month", limit_amount=5)
    page = world.portal("alpha_admin").get("/t/alpha/budgets/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    row = page[page.index("<td>Cap") :]
    assert "每月" in row[: row.index("</tr>")]  # per month, not 月份 (the month of a bill)
    assert '<option value="day">每日</option>' in page


def test_a_budget_is_changed_and_paused_in_the_portal(world, prices, django_capture_on_commit_callbacks) -> None:
    from billing.budgets import budget_create

    ops = NotificationChannel.objects.create(tenant=world.alpha, name="Ops", kind="email", target="ops@alpha.example")
    budget = budget_create(
        actor=None,
        tenant=world.alpha,
        name="Cap",
        scope="tenant",
        period="month",
        limit_amount=300,
        thresholds=[50, 80, 95, 100],
        channels=[ops],
    )
    admin = world.portal("alpha_admin")
    listing = admin.get("/t/alpha/budgets/").content.decode()
    assert f'href="/t/alpha/budgets/{budget.pk}/edit/"' in listing
    form = admin.get(f"/t/alpha/budgets/{budget.pk}/edit/").context["form"]
    assert form.initial["limit_amount"] == "300" and form.initial["thresholds"] == "50, 80, 95, 100"
    assert form.initial["channels"] == [ops] and form.initial["active"] is True
    body = {
        "name": "Token cap",
        "scope": "project",
        "scope_value": world.alpha_project.slug,
        "period": "day",
        "limit_amount": "",
        "limit_tokens": "250000",
        "thresholds": "90, 100",
        "action_at_limit": "downgrade",
        "downgrade_map": "gpt-4o gpt-4o-mini",
        "active": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        saved = admin.post(f"/t/alpha/budgets/{budget.pk}/edit/", body)
    assert saved.status_code == 302
    budget.refresh_from_db()
    assert (budget.name, budget.scope, budget.scope_value, budget.period) == ("Token cap", "project", "chatbot", "day")
    assert (budget.limit_amount, budget.limit_tokens, budget.thresholds) == (None, 250_000, [90, 100])
    assert budget.downgrade_map == {"gpt-4o": "gpt-4o-mini"} and budget.active is False
    assert list(budget.channels.all()) == []  # none ticked: unattached
    assert "Paused" in admin.get("/t/alpha/budgets/").content.decode()
    # both limits at once, or a scope that names nothing, are refused on the form and change nothing
    both = admin.post(f"/t/alpha/budgets/{budget.pk}/edit/", {**body, "limit_amount": "10"})
    assert both.status_code == 200 and "not both" in both.content.decode()
    nowhere = admin.post(f"/t/alpha/budgets/{budget.pk}/edit/", {**body, "scope_value": "no-such-project"})
    assert nowhere.status_code == 200
    budget.refresh_from_db()
    assert (budget.limit_tokens, budget.scope_value) == (250_000, "chatbot")
    # members read budgets but do not change them; another tenant's budget is not there
    assert world.portal("alpha_member").get(f"/t/alpha/budgets/{budget.pk}/edit/").status_code == 403
    assert world.portal("bravo_owner").get(f"/t/alpha/budgets/{budget.pk}/edit/").status_code == 404
    assert world.portal("bravo_owner").get(f"/t/bravo/budgets/{budget.pk}/edit/").status_code == 404


def test_the_latest_alerts_say_who_spent_and_token_limits_read_grouped(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    """An alert on the budgets page names its top end user and feature — where to look first — and a token
    budget's spend and limit read with thousands separators."""
    import datetime as dt

    from django.utils import timezone

    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    body = {"tenant": "alpha", "name": "Token cap", "scope": "tenant", "period": "month", "limit_tokens": 50_000}
    assert world.client("alpha_admin").post("/api/v1/budgets", body, format="json").status_code == 201
    when = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[
                {"event_id": "t1", "timestamp": when, "model": "gpt-4o", "usage": {"input_tokens": 60_000}}
                | {"end_user": "loop-bot", "feature": "summarise"}
            ],
        )
    page = world.portal("alpha_member").get("/t/alpha/budgets/").content.decode()
    alerts = page.split('id="alerts"')[1].split("</section>")[0]
    assert "Token cap" in alerts and "Top end user: loop-bot · feature: summarise" in alerts
    assert "60,000 tokens" in page and "50,000 tokens" in page

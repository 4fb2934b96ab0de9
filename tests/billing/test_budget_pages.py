"""Portal pages for budgets (gauges, alerts, anomalies) and alert channels (with a test send)."""

import pytest
from django.core import mail
from django.test import Client

from billing.models import Budget, NotificationChannel

pytestmark = pytest.mark.django_db


def portal(world, name: str) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(world.users[name])
    return client


def test_admins_create_budgets_members_read_them(world, prices) -> None:
    admin = portal(world, "alpha_admin")
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
    page = portal(world, "alpha_member").get("/t/alpha/budgets/").content.decode()
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
    assert portal(world, "alpha_member").post("/t/alpha/budgets/", {"name": "x"}).status_code == 403
    assert portal(world, "alpha_dev").get("/t/alpha/budgets/").status_code == 403


def test_channels_page_adds_a_channel_and_sends_a_test(world) -> None:
    admin = portal(world, "alpha_admin")
    added = admin.post("/t/alpha/channels/", {"name": "Ops", "kind": "email", "target": "ops@alpha.example"})
    assert added.status_code == 302
    channel = NotificationChannel.objects.get(tenant=world.alpha, name="Ops")
    sent = admin.post(f"/t/alpha/channels/{channel.pk}/test/", follow=True).content.decode()
    assert "Test message sent" in sent and mail.outbox[-1].to == ["ops@alpha.example"]
    wrong = admin.post("/t/alpha/channels/", {"name": "Hook", "kind": "webhook", "target": "not a url"})
    assert wrong.status_code == 200 and "http(s) URL" in wrong.content.decode()
    assert portal(world, "alpha_member").post(f"/t/alpha/channels/{channel.pk}/test/").status_code == 403

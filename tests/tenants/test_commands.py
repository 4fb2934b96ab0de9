from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from core.models import AuditEntry
from tenants.models import ApiKey, Membership, Tenant
from tests.factories import ProjectFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_tenant_makes_the_tenant_and_its_owner() -> None:
    out = StringIO()
    call_command(
        "create_tenant",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--country",
        "CN",
        "--currency",
        "CNY",
        "--timezone",
        "Asia/Shanghai",
        "--owner",
        "alice",
        "--owner-email",
        "alice@acme.example",
        stdout=out,
    )
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.billing_currency, tenant.timezone) == ("CNY", "Asia/Shanghai")
    assert Membership.objects.get(tenant=tenant).role == "owner"
    assert "Created tenant acme" in out.getvalue()


def test_create_tenant_refuses_bad_values_clearly() -> None:
    with pytest.raises(CommandError, match="billing_currency"):
        call_command("create_tenant", "--slug", "acme", "--name", "Acme", "--country", "CN", "--currency", "XYZ")
    assert not Tenant.objects.exists()


def test_create_api_key_prints_a_working_key_once() -> None:
    project = ProjectFactory(tenant=TenantFactory(slug="acme"), slug="chatbot")
    out = StringIO()
    call_command("create_api_key", "--tenant", "acme", "--project", "chatbot", "--name", "gw", stdout=out)
    secret = out.getvalue().strip()
    key = ApiKey.objects.get(project=project)
    assert secret.startswith(key.prefix + "_")
    assert secret[len(key.prefix) + 1 :] not in key.secret_hash


def test_create_api_key_for_an_unknown_project_fails() -> None:
    TenantFactory(slug="acme")
    with pytest.raises(CommandError, match="No project"):
        call_command("create_api_key", "--tenant", "acme", "--project", "nope", "--name", "gw")


@pytest.mark.long
def test_seed_demo_loads_tenants_people_and_keys_and_can_run_twice() -> None:
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    assert set(Tenant.objects.values_list("slug", flat=True)) >= {"acme", "globex", "initech", "umbrella"}
    assert Tenant.objects.get(slug="meterline-lab").is_internal
    assert ApiKey.objects.filter(tenant__slug="acme").count() == 3
    # A key that sent the demo's usage reads as one in use since before it, last used at its latest event.
    from metering.models import UsageEvent

    key = ApiKey.objects.get(tenant__slug="acme", project__slug="chatbot")
    events = UsageEvent.objects.filter(api_key=key)
    assert key.last_used_at == events.latest("occurred_at").occurred_at
    assert key.created_at < events.earliest("occurred_at").occurred_at
    # Each budget's alerts go to its tenant's finance mailbox.
    from billing.models import Budget

    assert not Budget.objects.filter(channels=None).exists()
    client = Client()
    assert client.login(username="acme-owner", password="meterline-demo")
    assert client.get("/t/acme/").status_code == 200
    # Seeding twice keeps every staff role as defined: only admin is a superuser (staff had become ones).
    from django.contrib.auth import get_user_model

    superusers = set(get_user_model().objects.filter(is_superuser=True).values_list("username", flat=True))
    assert superusers == {"admin"}
    assert get_user_model().objects.get(username="am").is_staff
    assert client.login(username="am", password="meterline-demo")
    assert client.get("/staff/prices/").status_code == 403  # the price book is the platform admins'
    # Finance finds the two planted differences in the demo's provider statement, and nothing else.
    from metering.models import ProviderStatement
    from metering.reconciliation import reconcile

    [statement] = ProviderStatement.objects.all()
    flagged = {(row.model, row.flag) for row in reconcile(statement).flagged}
    assert flagged == {("gpt-4o", "tokens"), ("gpt-4o-audio-preview", "missing_metered")}


def test_changes_made_in_django_admin_are_audited() -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    tenant = TenantFactory(slug="acme", name="Acme")
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/",
        {
            "slug": "acme",
            "name": "Acme Renamed",
            "legal_name": tenant.legal_name,
            "tax_id": "",
            "address": "",
            "country": "CN",
            "billing_currency": "CNY",
            "timezone": "Asia/Shanghai",
            "billing_emails": "[]",
            "status": "active",
            "account_manager": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.get(object_type="tenants.tenant", action="update")
    assert entry.changes["name"] == {"before": "Acme", "after": "Acme Renamed"}
    assert entry.actor == admin

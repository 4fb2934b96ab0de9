"""Tenant isolation, by construction: every URL pattern of the project is walked with the outsider's
credentials (tenant Bravo) and the first tenant's (Alpha's) object ids.

- A pattern that names an object must answer 404 to the outsider (exactly as a missing id), or 405
  for methods it does not take — never 200/403, which would confirm that the object exists.
- A collection (no object in the URL) must not show any of Alpha's data to the outsider.
- A new URL pattern that is neither covered here nor listed as public makes this test fail.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

# Patterns that carry no tenant data (login, language switch, schema, docs).
PUBLIC = {
    "schema",
    "api-docs",
    "login",
    "logout",
    "password_reset_confirm",
    "password_reset_complete",
    "set_language",
    "javascript-catalog",
    "api:auth-token",
}
# Django admin: staff only; a tenant user is sent to the admin login, whatever the id.
STAFF_ADMIN_NAMESPACE = "admin"
# Provider-wide staff resources: the outsider (a tenant user) is refused outright.
STAFF_ONLY = {
    "api:gatewaytoken-list",
    "api:gatewaytoken-detail",
    "api:gatewaytoken-revoke",
    "api:price-unpriced",
    "api:bill-close",
    "api:providerstatement-list",
    "api:providerstatement-detail",
    "api:providerstatement-export",
}
# Staff portal pages: a tenant user is refused (403) whatever they send.
STAFF_PAGES = {
    "portal:price-book",
    "portal:price-new",
    "portal:price-aliases",
    "portal:price-book-import",
    "portal:unpriced",
    "portal:unpriced-rerate",
    "portal:finance-bills",
    "portal:finance-bills-close",
    "portal:fx-rates",
    "portal:finance-invoices",
    "portal:gateway-tokens",
    "portal:finance-export",
    "portal:reconciliation",
    "portal:reconciliation-report",
}

# Ingestion endpoints: the tenant and project are named in the body; naming another tenant's is an
# event rejection (tested below), never a write into it.
INGEST = {"api:events", "api:integrations-litellm", "api:quota-check"}

# Tenant named in the body of a computation (no stored object): naming another tenant is a 404.
TENANT_IN_BODY = {"api:estimate"}

# The price book is provider-wide reference data, readable by every credential (not tenant data).
PROVIDER_WIDE = {"api:price-list", "api:price-detail", "api:fxrate-list", "api:fxrate-detail"}

# Collections: listed for the outsider, who must see none of Alpha's data.
COLLECTIONS = {
    "api:tenant-list",
    "api:department-list",
    "api:project-list",
    "api:member-list",
    "api:apikey-list",
    "api:auditentry-list",
    "api:auth-me",
    "api:usage",
    "api:contract-list",
    "api:usage-events",
    "api:usage-export",
    "api:usage-exports",
    "api:insights",
    "api:bill-list",
    "api:bill-current",
    "api:invoice-list",
    "api:budget-list",
    "api:channel-list",
    "api:alert-list",
    "api:budgetraise-list",
    "api:anomaly-list",
    "portal:home",
    "portal:staff-tenants",
}

# Object patterns: how to name Alpha's object in each.
OBJECT_KWARGS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "api:tenant-detail": lambda w: {"slug": w.alpha.slug},
    "api:department-detail": lambda w: {"pk": w.alpha_department.pk},
    "api:project-detail": lambda w: {"pk": w.alpha_project.pk},
    "api:member-detail": lambda w: {"pk": w.memberships["alpha_member"].pk},
    "api:apikey-detail": lambda w: {"pk": w.alpha_key.pk},
    "api:apikey-revoke": lambda w: {"pk": w.alpha_key.pk},
    "portal:tenant": lambda w: {"tenant": w.alpha.slug},
    "portal:tenant-status": lambda w: {"tenant": w.alpha.slug},
    "portal:members": lambda w: {"tenant": w.alpha.slug},
    "portal:member-change": lambda w: {"tenant": w.alpha.slug, "pk": w.memberships["alpha_member"].pk},
    "portal:projects": lambda w: {"tenant": w.alpha.slug},
    "portal:project": lambda w: {"tenant": w.alpha.slug, "project": w.alpha_project.slug},
    "portal:api-key-revoke": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_key.pk},
    "portal:usage": lambda w: {"tenant": w.alpha.slug},
    "api:contract-detail": lambda w: {"pk": w.alpha_contract.pk},
    "api:contract-activate": lambda w: {"pk": w.alpha_contract.pk},
    "portal:usage-events": lambda w: {"tenant": w.alpha.slug},
    "portal:usage-exports": lambda w: {"tenant": w.alpha.slug},
    "portal:usage-export": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_export.pk},
    "portal:usage-export-download": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_export.pk},
    "api:usage-export-job": lambda w: {"pk": w.alpha_export.pk},
    "api:usage-export-download": lambda w: {"pk": w.alpha_export.pk},
    "api:bill-detail": lambda w: {"pk": w.alpha_bill.pk},
    "api:invoice-detail": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-submit": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-approve": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-reject": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-payments": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-credit-notes": lambda w: {"pk": w.alpha_invoice.pk},
    "api:invoice-pdf": lambda w: {"pk": w.alpha_invoice.pk},
    "api:budget-detail": lambda w: {"pk": w.alpha_budget.pk},
    "api:channel-detail": lambda w: {"pk": w.alpha_channel.pk},
    "api:channel-test": lambda w: {"pk": w.alpha_channel.pk},
    "api:alert-detail": lambda w: {"pk": w.alpha_alert.pk},
    "api:budgetraise-detail": lambda w: {"pk": w.alpha_raise.pk},
    "api:anomaly-detail": lambda w: {"pk": w.alpha_anomaly.pk},
    "api:anomaly-acknowledge": lambda w: {"pk": w.alpha_anomaly.pk},
    "api:budgetraise-approve": lambda w: {"pk": w.alpha_raise.pk},
    "api:budgetraise-reject": lambda w: {"pk": w.alpha_raise.pk},
    "portal:invoices": lambda w: {"tenant": w.alpha.slug},
    "portal:invoice": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_invoice.pk},
    "portal:invoice-action": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_invoice.pk},
    "portal:invoice-pdf": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_invoice.pk},
    "portal:credit-note-pdf": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_credit_note.pk},
    "portal:budgets": lambda w: {"tenant": w.alpha.slug},
    "portal:channels": lambda w: {"tenant": w.alpha.slug},
    "portal:budget-raise-decide": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_raise.pk},
    "portal:budget-edit": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_budget.pk},
    "portal:channel-test": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_channel.pk},
    "portal:channel-change": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_channel.pk},
    "portal:bills": lambda w: {"tenant": w.alpha.slug},
    "portal:bill": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_bill.pk},
    "portal:contracts": lambda w: {"tenant": w.alpha.slug},
    "portal:estimate": lambda w: {"tenant": w.alpha.slug},
    "portal:insights": lambda w: {"tenant": w.alpha.slug},
    "portal:contract": lambda w: {"tenant": w.alpha.slug, "pk": w.alpha_contract.pk},
}

METHODS = ["get", "post", "put", "patch", "delete"]


def _walk(patterns: list, namespace: str = "", prefix: str = "") -> Iterator[tuple[str, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            yield from _walk(
                entry.url_patterns, f"{namespace}:{ns}".strip(":") if ns else namespace, prefix + str(entry.pattern)
            )
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
            yield name, prefix + str(entry.pattern)


def all_patterns() -> list[tuple[str, str]]:
    return list(_walk(get_resolver().url_patterns))


def alpha_markers(world: Any) -> list[str]:
    return [
        world.alpha.name,
        world.alpha_project.name,
        world.alpha_key.prefix,
        world.alpha_department.code,
        "alpha-owner",
        world.alpha_bill.number,
        world.alpha_budget.name,
        world.alpha_channel.target,
        f'"budget_name":"{world.alpha_alert.budget.name}"',
    ]


def test_every_url_pattern_is_classified() -> None:
    known = (
        PUBLIC | STAFF_ONLY | STAFF_PAGES | COLLECTIONS | INGEST | PROVIDER_WIDE | TENANT_IN_BODY | set(OBJECT_KWARGS)
    )
    unclassified = [
        (name, route)
        for name, route in all_patterns()
        if name not in known and not name.startswith(STAFF_ADMIN_NAMESPACE + ":") and not route.startswith("admin/")
    ]
    assert unclassified == [], "Add these URL patterns to the isolation test: " + repr(unclassified)


def test_the_classification_has_no_stale_entries() -> None:
    names = {name for name, _route in all_patterns()}
    classified = (
        COLLECTIONS | set(OBJECT_KWARGS) | STAFF_ONLY | STAFF_PAGES | PUBLIC | INGEST | PROVIDER_WIDE | TENANT_IN_BODY
    )
    assert classified - names == set()


def _outsider_clients(world: Any) -> dict[str, Any]:
    portal = Client()
    portal.force_login(world.users["bravo_owner"])
    return {
        "token": world.client("bravo_owner"),
        "key": world.key_client(world.bravo_key_secret),
        "portal": portal,
    }


def _call(client: Any, method: str, url: str) -> Any:
    if hasattr(client, "credentials"):  # APIClient
        return getattr(client, method)(url, {}, format="json")
    return getattr(client, method)(url)


@pytest.mark.parametrize("name", sorted(OBJECT_KWARGS))
def test_the_outsider_gets_404_for_alphas_objects(world: Any, name: str) -> None:
    url = reverse(name, kwargs=OBJECT_KWARGS[name](world))
    clients = _outsider_clients(world)
    chosen = ["portal"] if name.startswith("portal:") else ["token"]
    for label in chosen:
        statuses = {method: _call(clients[label], method, url).status_code for method in METHODS}
        assert set(statuses.values()) <= {404, 405}, (label, url, statuses)
        assert 404 in statuses.values(), (label, url, statuses)
    if name.startswith("api:"):
        # A project key of the outsider learns nothing either.
        statuses = {m: _call(clients["key"], m, url).status_code for m in METHODS}
        assert set(statuses.values()) <= {403, 404, 405}, statuses


def test_alphas_own_users_reach_the_same_objects(world: Any) -> None:
    """The 404s above are isolation, not broken URLs: Alpha's owner reads every one of them."""
    portal = Client()
    portal.force_login(world.users["alpha_owner"])
    api = world.client("alpha_owner")
    for name, kwargs in OBJECT_KWARGS.items():
        url = reverse(name, kwargs=kwargs(world))
        client = portal if name.startswith("portal:") else api
        statuses = {m: _call(client, m, url).status_code for m in ("get", "post")}
        # 403 and 409 count as reached: the object was found, the action is another role's (e.g. an account
        # manager's) or not possible in its state (a draft invoice has no PDF yet).
        assert any(s in (200, 201, 302, 403, 409) for s in statuses.values()), (url, statuses)


@pytest.mark.parametrize("name", sorted(COLLECTIONS))
def test_the_outsider_sees_none_of_alphas_data_in_collections(world: Any, name: str) -> None:
    url = reverse(name)
    clients = _outsider_clients(world)
    client = clients["portal"] if name.startswith("portal:") else clients["token"]
    response = client.get(url, follow=name.startswith("portal:"))
    assert response.status_code in (200, 400, 403, 409), (url, response.status_code)
    body = response.content.decode()
    for marker in alpha_markers(world):
        assert marker not in body, (url, marker)
    if name.startswith("api:"):
        # Naming Alpha explicitly is a 404 (or is ignored), never Alpha's data.
        named = client.get(url, {"tenant": "alpha"})  # lists refuse parameters they do not take (core.filters)
        assert named.status_code in (200, 404), (url, named.status_code)
        for marker in alpha_markers(world):
            assert marker not in named.content.decode(), (url, marker)


@pytest.mark.parametrize("name", sorted(STAFF_ONLY))
def test_staff_only_resources_refuse_tenant_users(world: Any, name: str) -> None:
    from tenants import services

    token, _secret = services.gateway_token_create(actor=None, name="edge")
    url = reverse(name, kwargs={"pk": token.pk} if name.endswith(("-detail", "-revoke", "-export")) else {})
    client = _outsider_clients(world)["token"]
    for method in METHODS:
        assert _call(client, method, url).status_code in (403, 405)


def test_django_admin_sends_tenant_users_to_the_admin_login(world: Any) -> None:
    client = _outsider_clients(world)["portal"]
    response = client.get(f"/admin/tenants/tenant/{world.alpha.pk}/change/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_outsider_cannot_write_usage_into_alpha(world: Any) -> None:
    from metering.models import UsageEvent

    body = {
        "event_id": "x-1",
        "timestamp": "2026-11-01T00:00:00Z",
        "model": "gpt-4o",
        "tenant": "alpha",
        "project": "chatbot",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    for client in (world.client("bravo_owner"), world.key_client(world.bravo_key_secret)):
        response = client.post(reverse("api:events"), {"events": [body]}, format="json")
        assert response.status_code == 200
        assert response.json()["accepted"] == 0
        assert sorted(response.json()["rejected"][0]["errors"]) == ["tenant"]
    assert not UsageEvent.objects.filter(tenant=world.alpha).exists()


@pytest.mark.parametrize("name", sorted(STAFF_PAGES))
def test_staff_pages_refuse_tenant_users(world: Any, name: str) -> None:
    client = _outsider_clients(world)["portal"]
    url = reverse(name, kwargs={"pk": 1} if name.endswith(("-report", "-aliases")) else {})
    for method in ("get", "post"):
        assert getattr(client, method)(url).status_code in (403, 405)


@pytest.mark.parametrize("name", sorted(TENANT_IN_BODY))
def test_naming_alpha_in_a_body_is_a_404(world: Any, name: str) -> None:
    response = world.client("bravo_owner").post(reverse(name), {"tenant": "alpha"}, format="json")
    assert response.status_code == 404, response.content
    assert all(marker not in response.content.decode() for marker in alpha_markers(world))

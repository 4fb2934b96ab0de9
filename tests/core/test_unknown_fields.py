"""A write body naming a field the endpoint does not have is refused with the field named (SPEC §11: a clear error,
never a silent drop — a misspelt `thresholds` would otherwise leave the defaults in place), and nothing is written;
read-only fields echoed back from a read are ignored."""

import pytest

from billing.models import Budget, NotificationChannel
from tenants.models import Project

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("who", "path", "body", "unknown"),
    [
        (
            "alpha_admin",
            "/api/v1/budgets",
            {"tenant": "alpha", "name": "b", "scope": "tenant", "period": "month", "limit_amount": "5"}
            | {"threshold": [10]},
            "threshold",
        ),
        (
            "alpha_admin",
            "/api/v1/channels",
            {"tenant": "alpha", "name": "ops", "kind": "email", "target": "ops@alpha.example", "enable": False},
            "enable",
        ),
        (
            "alpha_admin",
            "/api/v1/projects",
            {"tenant": "alpha", "slug": "p2", "name": "P2", "departmnt": "CS-1"},
            "departmnt",
        ),
        (
            "finance",
            "/api/v1/fx-rates",
            {"base": "USD", "quote": "EUR", "date": "2026-11-02", "rate": "0.9", "sorce": "x"},
            "sorce",
        ),
        (
            "alpha_admin",
            "/api/v1/api-keys",
            {"tenant": "alpha", "project": "chatbot", "name": "k", "expires": "2027-01-01"},
            "expires",
        ),
    ],
)
def test_an_unknown_field_is_refused_and_nothing_is_written(world, who, path, body, unknown) -> None:
    before = (Budget.objects.count(), NotificationChannel.objects.count(), Project.objects.count())
    response = world.client(who).post(path, body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["fields"][unknown] == ["Unknown field."], error
    assert (Budget.objects.count(), NotificationChannel.objects.count(), Project.objects.count()) == before


def test_an_update_names_unknown_fields_beside_bad_ones_and_ignores_read_only_echoes(world) -> None:
    admin = world.client("alpha_admin")
    body = {"tenant": "alpha", "name": "cap", "scope": "tenant", "period": "month", "limit_amount": "5.00"}
    created = admin.post("/api/v1/budgets", body, format="json").json()
    misspelt = admin.patch(
        f"/api/v1/budgets/{created['id']}", {"limit_ammount": "9", "thresholds": ["x"]}, format="json"
    )
    assert misspelt.status_code == 400
    assert set(misspelt.json()["error"]["fields"]) == {"limit_ammount", "thresholds.0"}
    assert Budget.objects.get(pk=created["id"]).limit_amount == 5
    echoed = admin.patch(f"/api/v1/budgets/{created['id']}", created | {"limit_amount": "6.00"}, format="json")
    assert echoed.status_code == 200, echoed.json()  # `id`, `spent`, `percent`… as read: known, not written
    assert echoed.json()["limit_amount"] == "6.00"


def _lists() -> list[tuple[str, list[str]]]:
    """Every list of the API (a collection path the schema documents with query parameters) and its parameters."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        names = [p["name"] for p in get.get("parameters", []) if p["in"] == "query"]
        if names:
            found.append((path, names))
    return found


def test_every_list_refuses_a_parameter_it_does_not_take_and_takes_those_it_documents(world) -> None:
    """A misspelt filter (`?statuss=overdue`, `?tennant=beta`) would answer everything as if it had filtered: every
    list of the API refuses it, naming it, and takes each parameter its schema documents."""
    client = world.client("superuser")
    lists = _lists()
    assert {"/api/v1/invoices", "/api/v1/budgets", "/api/v1/channels", "/api/v1/prices", "/api/v1/usage"} <= {
        path for path, _ in lists
    }
    for path, names in lists:
        refused = client.get(path, {"tenant": "alpha", "statuss": "overdue"})
        assert refused.status_code == 400, (path, refused.status_code)
        assert refused.json()["error"]["fields"] == {"statuss": ["Unknown parameter."]}, path
        for name in names:
            answer = client.get(path, {"tenant": "alpha", name: "1"})
            assert "Unknown parameter." not in answer.content.decode(), (path, name)


def test_channels_and_raises_are_listed_for_the_tenant_named(world) -> None:
    """SPEC §9: a tenant is named by its slug in filters — the channel and raise lists ignored `?tenant=`."""
    from tenants.models import Membership, Role

    NotificationChannel.objects.create(tenant=world.alpha, name="alpha ops", kind="email", target="a@alpha.example")
    NotificationChannel.objects.create(tenant=world.bravo, name="bravo ops", kind="email", target="b@bravo.example")
    Membership.objects.create(user=world.users["alpha_owner"], tenant=world.bravo, role=Role.OWNER)
    client = world.client("alpha_owner")
    for slug, name in (("alpha", "alpha ops"), ("bravo", "bravo ops")):
        listed = client.get("/api/v1/channels", {"tenant": slug}).json()["results"]
        assert [c["name"] for c in listed] == [name]
    assert client.get("/api/v1/budget-raises", {"tenant": "bravo"}).json()["results"] == []
    assert world.client("bravo_owner").get("/api/v1/channels", {"tenant": "alpha"}).status_code == 404


def test_a_resource_read_and_sent_back_whole_names_no_unknown_field(world) -> None:
    """Clients often PATCH what they read: every field a read answers is known to the write (read-only ones are
    ignored), for each resource that takes a PATCH."""
    channel = NotificationChannel.objects.create(tenant=world.alpha, name="ops", kind="email", target="a@alpha.example")
    staff, admin = world.client("am"), world.client("alpha_admin")
    member = world.alpha.memberships.get(user=world.users["alpha_member"])
    contract = staff.post(
        "/api/v1/contracts", {"tenant": "alpha", "starts_on": "2026-12-01", "markup_percent": "5"}, format="json"
    ).json()
    for client, path in (
        (admin, f"/api/v1/channels/{channel.pk}"),
        (admin, f"/api/v1/projects/{world.alpha_project.pk}"),
        (admin, f"/api/v1/departments/{world.alpha_department.pk}"),
        (admin, f"/api/v1/budgets/{world.alpha_budget.pk}"),
        (world.client("alpha_owner"), f"/api/v1/members/{member.pk}"),
        (staff, f"/api/v1/contracts/{contract['id']}"),
        (staff, "/api/v1/tenants/alpha"),
    ):
        read = client.get(path).json()
        sent = client.patch(path, read, format="json")
        assert "Unknown field." not in sent.content.decode(), (path, sent.json())

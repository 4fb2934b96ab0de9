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

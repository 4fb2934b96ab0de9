"""Shared fixtures. Every test world has two tenants: Alpha (the one under test) and Bravo, the outsider
whose users must never see Alpha's objects."""

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core import deferred
from core.hotcache import hot_clear
from tenants import services
from tenants.models import ApiKey, Department, Membership, Project, Role, Tenant
from tenants.roles import ACCOUNT_MANAGERS, FINANCE, PLATFORM_ADMINS
from tests.factories import MembershipFactory, ProjectFactory, TenantFactory, UserFactory, api_key_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that run for minutes go first, each followed by a short one: a parallel worker is handed its
    next two tests at a time (pytest-xdist's `load` scheduling, one test per hand-out after the first), so that
    every worker starts on a long test and takes the next one when it is done, and the short tests fill in
    around them — the workers finish together."""
    long = [item for item in items if item.get_closest_marker("long") is not None]
    short = [item for item in items if item.get_closest_marker("long") is None]
    ordered: list[pytest.Item] = []
    for index, item in enumerate(long):
        ordered += [item, *short[index : index + 1]]
    items[:] = ordered + short[len(long) :]


BOUNDARY_MARGIN_SECONDS = 20  # longer than a test of budgets or usage runs


@pytest.fixture(autouse=True)
def _clear_of_a_period_boundary() -> None:
    """Budget periods (day, week, month) turn at the tenants' local midnight (the test tenants are in
    Asia/Shanghai, 16:00 UTC): a test that sends events and reads their period across it sees the new period begin
    half way (two did, in a run at 15:59–16:00 UTC). A test starting within the margin waits until the boundary has
    passed; what it asserts is unchanged."""
    now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=now.tzinfo)
    left = (midnight - now).total_seconds()
    if left < BOUNDARY_MARGIN_SECONDS:
        time.sleep(left + 0.5)


@pytest.fixture(autouse=True)
def _clean_cache() -> None:
    """Rate-limit and login counters live in Redis: each test starts from zero, and so do the records the hot
    paths hold in the process — also the work a hot request called without a server left for its response."""
    cache.clear()
    hot_clear()
    deferred._local.queue = None


@dataclass
class World:
    alpha: Tenant
    bravo: Tenant
    alpha_department: Department
    alpha_project: Project
    alpha_other_project: Project
    bravo_project: Project
    alpha_key: ApiKey
    alpha_key_secret: str
    bravo_key: ApiKey
    bravo_key_secret: str
    users: dict[str, Any]
    memberships: dict[str, Membership]

    @property
    def alpha_contract(self) -> Any:
        """A draft contract of Alpha (made on first use)."""
        from billing.contracts import contract_create
        from billing.models import Contract

        existing = Contract.objects.filter(tenant=self.alpha).first()
        return existing or contract_create(
            actor=None, tenant=self.alpha, starts_on="2026-01-01", billing_currency="CNY"
        )

    @property
    def alpha_bill(self) -> Any:
        """A closed October bill of Alpha (made on first use)."""
        import datetime as dt

        from django.utils import timezone

        from billing.models import Bill

        return Bill.objects.get_or_create(
            tenant=self.alpha,
            period=dt.date(2026, 10, 1),
            group_key="",
            defaults={
                "number": "BILL-alpha-202610",
                "currency": "CNY",
                "fx_rate": 7,
                "usage_subtotal": 100,
                "net": 100,
                "tax": 6,
                "total": 106,
                "closed_at": timezone.now(),
            },
        )[0]

    @property
    def alpha_invoice(self) -> Any:
        """The issued invoice of Alpha's October bill (made on first use, issued straight in the table)."""
        import datetime as dt

        from invoices.models import Invoice
        from invoices.services import invoice_create_for_bill

        bill = self.alpha_bill
        invoice = Invoice.objects.filter(bill=bill).first()
        if invoice is None:
            invoice = invoice_create_for_bill(bill)
            Invoice.objects.filter(pk=invoice.pk).update(
                number="INV-2026-900001",
                status="issued",
                issue_date=dt.date(2026, 11, 3),
                due_date=dt.date(2026, 12, 3),
            )
            invoice.refresh_from_db()
        return invoice

    @property
    def alpha_credit_note(self) -> Any:
        """A credit note on Alpha's invoice (made on first use, straight in the table)."""
        import datetime as dt

        from invoices.models import CreditNote

        invoice = self.alpha_invoice
        return CreditNote.objects.filter(invoice=invoice).first() or CreditNote.objects.create(
            invoice=invoice, number="CN-2026-900001", amount=1, tax=0, reason="test", issue_date=dt.date(2026, 11, 1)
        )

    @property
    def alpha_budget(self) -> Any:
        """A monthly token budget on Alpha's chatbot project (made on first use)."""
        from billing.budgets import budget_create
        from billing.models import Budget

        return Budget.objects.filter(tenant=self.alpha).first() or budget_create(
            actor=None,
            tenant=self.alpha,
            name="Alpha chatbot cap",
            scope="project",
            scope_value="chatbot",
            period="month",
            limit_tokens=1_000_000,
        )

    @property
    def alpha_channel(self) -> Any:
        from billing.models import NotificationChannel

        return NotificationChannel.objects.filter(tenant=self.alpha).first() or NotificationChannel.objects.create(
            tenant=self.alpha, name="Alpha ops", kind="email", target="ops@alpha.example"
        )

    @property
    def alpha_anomaly(self) -> Any:
        import datetime as dt

        from metering.models import Anomaly

        start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
        return Anomaly.objects.filter(tenant=self.alpha).first() or Anomaly.objects.create(
            tenant=self.alpha,
            kind="night_usage",
            scope="tenant",
            window_start=start,
            window_end=start + dt.timedelta(hours=5),
            observed=40,
            expected=0,
            ratio=999,
            unit="requests",
        )

    @property
    def alpha_raise(self) -> Any:
        import datetime as dt

        from billing.models import BudgetRaiseRequest

        budget = self.alpha_budget
        return BudgetRaiseRequest.objects.filter(budget=budget).first() or BudgetRaiseRequest.objects.create(
            budget=budget, period_start=dt.date(2026, 11, 1), amount=1000, until=dt.date(2026, 11, 30), reason="launch"
        )

    @property
    def alpha_alert(self) -> Any:
        import datetime as dt

        from billing.models import BudgetAlert

        budget = self.alpha_budget
        return BudgetAlert.objects.filter(budget=budget).first() or BudgetAlert.objects.create(
            budget=budget,
            period_start=dt.date(2026, 11, 1),
            threshold=50,
            severity="info",
            spent=1,
            limit=2,
            percent=50,
        )

    @property
    def alpha_export(self) -> Any:
        """A finished background usage export of Alpha's owner."""
        from metering.models import UsageExport

        return UsageExport.objects.filter(tenant=self.alpha).first() or UsageExport.objects.create(
            tenant=self.alpha,
            requested_by=self.users["alpha_owner"],
            format="csv",
            query={"start": "2026-11-01", "end": "2026-11-20", "filters": {}, "project_ids": None},
            status="ready",
            rows_total=1,
            rows_done=1,
            filename="usage-alpha-20261101-20261120.csv",
            content=b"event_id\nalpha-secret-row\n",
            size=26,
        )

    def client(self, username: str | None = None) -> APIClient:
        """An API client authenticated with a personal token of that user (or anonymous)."""
        client = APIClient()
        if username is not None:
            _token, secret = services.personal_token_create(user=self.users[username])
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    def portal(self, username: str) -> Any:
        """A browser-less portal client logged in as that user."""
        from django.test import Client

        client = Client()
        client.force_login(self.users[username])
        return client

    def daily_token_budget(self, limit: int, **fields: Any) -> Any:
        """A blocking daily token budget on Alpha's chatbot project."""
        from billing.budgets import budget_create

        return budget_create(
            actor=None,
            tenant=self.alpha,
            name="Chatbot daily tokens",
            scope="project",
            scope_value=self.alpha_project.slug,
            period="day",
            limit_tokens=limit,
            action_at_limit="block",
            **fields,
        )

    def key_client(self, secret: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client


@pytest.fixture
def world(db: Any) -> World:
    manager = UserFactory(username="am-alice", staff_groups=[ACCOUNT_MANAGERS])
    other_manager = UserFactory(username="am-oscar", staff_groups=[ACCOUNT_MANAGERS])
    alpha = TenantFactory(slug="alpha", name="Alpha Secret Co", account_manager=manager)
    bravo = TenantFactory(slug="bravo", name="Bravo Ltd", account_manager=other_manager)
    department = alpha.departments.create(name="Support", code="CS-1")
    alpha_project = ProjectFactory(tenant=alpha, slug="chatbot", name="Alpha Chatbot", department=department)
    alpha_other = ProjectFactory(tenant=alpha, slug="research", name="Alpha Research")
    bravo_project = ProjectFactory(tenant=bravo, slug="search", name="Bravo Search")
    alpha_key, alpha_secret = api_key_for(alpha_project)
    bravo_key, bravo_secret = api_key_for(bravo_project)

    users = {
        "am": manager,
        "am_other": other_manager,
        "finance": UserFactory(username="fin", staff_groups=[FINANCE]),
        "platform": UserFactory(username="plat", staff_groups=[PLATFORM_ADMINS]),
        "superuser": UserFactory(username="root", is_superuser=True, is_staff=True),
    }
    memberships = {}
    for name, tenant, role in [
        ("alpha_owner", alpha, Role.OWNER),
        ("alpha_admin", alpha, Role.ADMIN),
        ("alpha_member", alpha, Role.MEMBER),
        ("alpha_dev", alpha, Role.DEVELOPER),
        ("bravo_owner", bravo, Role.OWNER),
        ("bravo_admin", bravo, Role.ADMIN),
    ]:
        user = UserFactory(username=name.replace("_", "-"))
        users[name] = user
        memberships[name] = MembershipFactory(user=user, tenant=tenant, role=role)
    memberships["alpha_dev"].projects.set([alpha_project])

    return World(
        alpha=alpha,
        bravo=bravo,
        alpha_department=department,
        alpha_project=alpha_project,
        alpha_other_project=alpha_other,
        bravo_project=bravo_project,
        alpha_key=alpha_key,
        alpha_key_secret=alpha_secret,
        bravo_key=bravo_key,
        bravo_key_secret=bravo_secret,
        users=users,
        memberships=memberships,
    )

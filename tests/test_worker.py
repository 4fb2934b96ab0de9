"""A real Celery worker process, on the Redis broker, runs a real task end to end against the test
database: adding a new member emails the set-password link from the worker."""

import os
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app as celery_app
from tenants import services
from tenants.models import Role
from tests.factories import TenantFactory
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)
from tests.subprocesses import start, stop

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):  # type: ignore[no-untyped-def]
    mail_dir = tmp_path / "mail"
    queue = f"test-{os.getpid()}"
    process = start(
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_DEFAULT_QUEUE=queue,  # the tasks it queues itself (an alert's messages) come back to it
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    )
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {}  # this worker takes every task, long ones included, from its own queue
    try:
        yield mail_dir
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_default_queue = "default"
        celery_app.conf.task_routes = routes
        print(stop(process))


def test_a_real_worker_sends_the_invitation_email(worker) -> None:
    tenant = TenantFactory(slug="delta")
    membership = services.member_add(
        actor=None, tenant=tenant, username="newcomer", email="newcomer@delta.example", role=Role.MEMBER
    )
    deadline = time.monotonic() + 60
    messages: list[Path] = []
    while time.monotonic() < deadline:
        messages = list(worker.glob("*.log")) if worker.exists() else []
        if messages:
            break
        time.sleep(0.2)
    assert len(messages) == 1, "the worker did not send the invitation within 60 s"
    body = messages[0].read_text()
    assert "To: newcomer@delta.example" in body
    assert "/accounts/reset/" in body
    assert membership.tenant.name in body


def test_a_real_worker_renders_and_emails_the_issued_invoice(worker, world, prices) -> None:  # noqa: F811
    """Approval commits, the worker renders the bilingual PDF, stores it and mails it with the PDF attached;
    the API answers 409 until then and the PDF after."""
    import datetime as dt
    from decimal import Decimal

    from billing.bills import month_close, period_parse
    from invoices import services as invoice_services
    from invoices.models import Invoice
    from metering.services import IngestScope, events_ingest
    from tenants.roles import FINANCE
    from tests.factories import UserFactory

    world.alpha.billing_currency = "USD"
    world.alpha.billing_emails = ["ap@alpha.example"]
    world.alpha.save()
    when = dt.datetime(2026, 10, 15, 2, tzinfo=dt.UTC)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": "w1", "timestamp": when.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": 10**6}}
        ],
        now=when,
    )
    [bill] = month_close(
        tenant=world.alpha, period=period_parse("2026-10"), now=dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    ).bills
    approver = UserFactory(username="fin-b", staff_groups=[FINANCE])
    invoice_services.invoice_submit(actor=world.users["finance"], invoice=bill.invoice)
    invoice = invoice_services.invoice_approve(actor=approver, invoice=bill.invoice)
    owner = world.client("alpha_owner")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Invoice.objects.get(pk=invoice.pk).pdf_ready:
        time.sleep(0.2)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.pdf_ready, "the worker did not render the PDF within 60 s"
    assert stored.total == Decimal("2.50")
    pdf = owner.get(f"/api/v1/invoices/{invoice.pk}/pdf")
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(worker.glob("*.log")):
        time.sleep(0.2)
    [message] = list(worker.glob("*.log"))
    body = message.read_text()
    assert "To: ap@alpha.example" in body and f'filename="{invoice.number}.pdf"' in body


def test_a_real_worker_builds_a_background_export(worker, world, prices) -> None:  # noqa: F811
    """The API answers 202 at once; the worker builds the file and the requester downloads it."""
    import datetime as dt

    from django.utils import timezone

    from metering.services import IngestScope, events_ingest

    when = timezone.now() - dt.timedelta(hours=1)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": f"x{i}", "timestamp": when.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": i + 1}}
            for i in range(250)
        ],
    )
    owner = world.client("alpha_owner")
    started = owner.post("/api/v1/usage/exports", {"format": "xlsx"}, format="json")
    assert started.status_code == 202 and started.json()["rows_total"] == 250
    url = f"/api/v1/usage/exports/{started.json()['id']}"
    deadline = time.monotonic() + 60
    state = started.json()
    while time.monotonic() < deadline and state["status"] in ("queued", "running"):
        time.sleep(0.2)
        state = owner.get(url).json()
    assert (state["status"], state["rows_done"], state["percent"]) == ("ready", 250, 100), state
    file = owner.get(url + "/download")
    assert file.status_code == 200 and file.content[:2] == b"PK"  # an XLSX (zip) file


def test_a_real_worker_folds_the_rollup_deltas_and_vacuums_their_table(worker, world, prices) -> None:  # noqa: F811
    """What beat sends every second and every minute: the flush folds the pending deltas into the rollups, and the
    vacuum (which cannot run inside a transaction) runs in the worker's own session."""
    import datetime as dt

    from django.utils import timezone

    from metering.models import UsageRollup
    from metering.services import IngestScope, events_ingest
    from metering.tasks import rollup_deltas_vacuum_task, rollups_flush_task
    from metering.verification import rollups_verify

    def last_vacuum() -> object:
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'metering_rollupdelta'")
            return cursor.fetchone()[0]

    when = timezone.now() - dt.timedelta(minutes=10)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": f"f{i}", "timestamp": when.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": 10}}
            for i in range(40)
        ],
    )
    before = last_vacuum()
    rollups_flush_task.delay()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not UsageRollup.objects.filter(tenant=world.alpha, grain="day").exists():
        time.sleep(0.2)
    [day] = UsageRollup.objects.filter(tenant=world.alpha, grain="day")
    assert (day.requests, day.input_tokens) == (40, 400)
    rollup_deltas_vacuum_task.delay()
    while time.monotonic() < deadline and last_vacuum() == before:
        time.sleep(0.2)
    assert last_vacuum() != before, "the worker did not vacuum the deltas table within 60 s"
    assert rollups_verify() == []


def test_a_real_worker_names_an_alerts_top_consumers_and_mails_it(worker, world, prices) -> None:  # noqa: F811
    """The ingest that crosses a budget's threshold stores the alert; the worker names the period's top consumers
    and sends the channel's message with them."""
    from django.utils import timezone

    from billing.models import BudgetAlert, NotificationChannel
    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    mail = NotificationChannel.objects.create(tenant=world.alpha, name="ops", kind="email", target="ops@alpha.example")
    body = {"tenant": "alpha", "name": "cap", "scope": "tenant", "period": "month", "limit_amount": "1.00"}
    created = world.client("alpha_admin").post(
        "/api/v1/budgets", body | {"thresholds": [100], "channels": [mail.pk]}, format="json"
    )
    assert created.status_code == 201, created.content
    usage = {"timestamp": timezone.now().isoformat(), "model": "gpt-4o", "end_user": "night-loop"}
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{**usage, "event_id": "cross", "usage": {"input_tokens": 400_000}}],  # 1.00 USD
    )
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline and "-" * 79 not in text:  # the backend's line after a whole message
        time.sleep(0.2)
        text = "".join(message.read_text() for message in worker.glob("*.log"))
    assert "To: ops@alpha.example" in text and "night-loop" in text, text
    [alert] = BudgetAlert.objects.filter(budget_id=created.json()["id"])
    assert [u["end_user"] for u in alert.top_consumers["end_users"]] == ["night-loop"]

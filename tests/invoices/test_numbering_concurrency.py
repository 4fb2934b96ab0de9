"""20 finance users approve 20 invoices at the same moment (20 real PostgreSQL connections): the numbers are
INV-<year>-000001 … 000020, each once, no gaps."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Bill
from invoices import services
from invoices.models import Invoice
from tenants.roles import FINANCE
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_concurrent_approvals_take_numbers_one_to_twenty(world) -> None:
    submitter = world.users["finance"]
    approvers = [UserFactory(username=f"approver-{n}", staff_groups=[FINANCE]) for n in range(20)]
    invoices = []
    for n in range(20):
        tenant = TenantFactory(slug=f"buyer-{n}")
        bill = Bill.objects.create(
            tenant=tenant,
            number=f"BILL-buyer-{n}-202610",
            period=dt.date(2026, 10, 1),
            currency="CNY",
            fx_rate=Decimal("7"),
            usage_subtotal=Decimal(100 + n),
            net=Decimal(100 + n),
            tax=Decimal(6),
            total=Decimal(106 + n),
            closed_at=timezone.now(),
        )
        invoice = services.invoice_create_for_bill(bill)
        services.invoice_submit(actor=submitter, invoice=invoice)
        invoices.append(invoice)
    barrier = threading.Barrier(20)
    errors: list[Exception] = []

    def approve(invoice: Invoice, approver) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            services.invoice_approve(actor=approver, invoice=invoice)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    # Each approval renders its invoice's PDF in its thread (tasks run eagerly here): renders in one process take
    # turns on its fonts — before they did, one in four runs of this test stalled in the font code for minutes.
    threads = [
        threading.Thread(target=approve, args=pair, daemon=True) for pair in zip(invoices, approvers, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [thread for thread in threads if thread.is_alive()], "an approval did not finish within two minutes"
    assert errors == []
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    year = timezone.now().year
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 21)]

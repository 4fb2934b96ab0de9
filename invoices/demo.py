"""Demo invoices from the closed demo bills: paid, partly paid, overdue, credited, pending approval and draft."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model

from billing.money import quantize_money
from invoices import services
from invoices.models import Invoice


def seed() -> list[str]:
    users = get_user_model().objects
    am, finance, finance2 = users.get(username="am"), users.get(username="finance"), users.get(username="finance2")
    if Invoice.objects.exclude(number__isnull=True).exists():
        return []
    drafts = list(Invoice.objects.select_related("tenant").order_by("period", "tenant__slug"))
    periods = sorted({invoice.period for invoice in drafts})
    done = []
    for invoice in drafts:
        slug, index = invoice.tenant.slug, periods.index(invoice.period)
        latest = index == len(periods) - 1
        if latest and slug == "globex":
            continue  # a draft waiting to be submitted
        services.invoice_submit(actor=am, invoice=invoice)
        if latest and slug == "acme":
            done.append(f"{slug} {invoice.period:%Y-%m}: pending approval")
            continue  # in finance's approval queue
        # issued on the third of the following month
        issued_on = (invoice.period + dt.timedelta(days=32)).replace(day=3)
        invoice = services.invoice_approve(actor=finance2, invoice=invoice, issued_on=issued_on)
        state = "issued"
        if index == 0 or (index == 1 and slug in ("globex", "acme")):
            whole = slug != "acme" or index == 0
            amount = invoice.total if whole else quantize_money(invoice.total / 2, invoice.currency)
            if amount > 0:  # a short demo history can leave a month with nothing to pay
                services.payment_record(
                    actor=finance,
                    invoice=invoice,
                    amount=amount,
                    paid_on=issued_on + dt.timedelta(days=12),
                    reference=f"BANK-{invoice.number}",
                )
                state = "paid" if amount == invoice.total else "partly paid"
        if slug == "umbrella" and index == 1:
            credit = min(Decimal(5000), quantize_money(invoice.total / 2, invoice.currency))
            if credit > 0:
                services.credit_note_create(
                    actor=finance,
                    invoice=invoice,
                    amount=credit,
                    reason="Service credit for the 2026-09 translation outage / 服务中断补偿",
                    issued_on=issued_on + dt.timedelta(days=5),
                )
                state = "credited in part"
        if slug == "initech" and index == 1:
            state = "overdue"  # 14-day terms, never paid
        done.append(f"{slug} {invoice.period:%Y-%m}: {invoice.number} {state}")
    return done

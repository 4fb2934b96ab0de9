"""Invoice lifecycle (SPEC §8): every transition and refusal, four-eyes, numbering, immutability in the
database, payments, credit notes and PDFs."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core import mail
from django.db import DatabaseError, connection, transaction
from pypdf import PdfReader

from invoices import services
from invoices.models import Invoice, NumberSeries

pytestmark = pytest.mark.django_db

# The October bill: input 1,000,000 × 2.5 / 10^6 = 2.5 USD × 7.123456 = 17.80864 → 17.81;
# output 100,000 × 10 / 10^6 = 1 USD → 7.12; net 24.93; VAT 6 % = 1.4958 → 1.50; total 26.43
TOTAL = Decimal("26.43")


def issue(world, invoice, *, submitter="am", approver="finance", capture=None):  # type: ignore[no-untyped-def]
    services.invoice_submit(actor=world.users[submitter], invoice=invoice)
    return services.invoice_approve(actor=world.users[approver], invoice=invoice)


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_closed_bill_has_a_draft_invoice_with_a_frozen_snapshot(world, invoice) -> None:
    assert (invoice.status, invoice.number, invoice.total, invoice.currency) == ("draft", None, TOTAL, "CNY")
    assert invoice.buyer["legal_name"] == "北京阿尔法科技有限公司" and invoice.seller["tax_id"]
    assert [line.amount for line in invoice.lines.order_by("position")] == [Decimal("17.81"), Decimal("7.12")]


def test_submit_approve_numbers_and_pdf(world, invoice, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        issued = issue(world, invoice)
    issued.refresh_from_db()
    year = issued.issue_date.year
    assert issued.number == f"INV-{year}-000001" and issued.status == "issued"
    assert issued.due_date == issued.issue_date + dt.timedelta(days=30)
    assert issued.bill.status == "invoiced"
    assert issued.pdf_ready
    text = text_of(bytes(issued.pdf))
    for expected in (
        issued.number,
        "北京阿尔法科技有限公司",
        issued.seller["legal_name"].split()[0],
        "26.43",
        "1.50",
        "7.123456",
        "发票",
        "合计",
        "增值税",
        "gpt-4o · Input 输入",
        "1,000,000",  # tokens grouped by thousands
    ):
        assert expected in text, expected
    assert "· input" not in text  # a bucket by its label, not its code
    [message] = mail.outbox
    assert message.to == ["ap@alpha.example"] and message.attachments[0][0] == f"{issued.number}.pdf"


def test_refusals(world, invoice) -> None:
    with pytest.raises(services.InvoiceRuleViolation) as refused:
        services.invoice_approve(actor=world.users["finance"], invoice=invoice)
    assert (refused.value.status, refused.value.code) == (409, "invalid_state")
    with pytest.raises(services.InvoiceRuleViolation) as refused:
        services.invoice_submit(actor=world.users["alpha_owner"], invoice=invoice)
    assert refused.value.status == 403
    with pytest.raises(services.InvoiceRuleViolation) as refused:
        services.invoice_submit(actor=world.users["am_other"], invoice=invoice)  # not Alpha's manager
    assert refused.value.status == 403
    services.invoice_submit(actor=world.users["finance"], invoice=invoice)
    with pytest.raises(services.InvoiceRuleViolation) as refused:  # four-eyes
        services.invoice_approve(actor=world.users["finance"], invoice=invoice)
    assert (refused.value.status, refused.value.code) == (403, "four_eyes")
    with pytest.raises(services.InvoiceRuleViolation) as refused:  # account managers do not approve
        services.invoice_approve(actor=world.users["am"], invoice=invoice)
    assert refused.value.status == 403
    with pytest.raises(services.InvoiceRuleViolation):
        services.invoice_reject(actor=world.users["finance2"], invoice=invoice, reason="  ")
    rejected = services.invoice_reject(actor=world.users["finance2"], invoice=invoice, reason="wrong PO number")
    assert (rejected.status, rejected.rejection_reason, rejected.number) == ("draft", "wrong PO number", None)
    with pytest.raises(services.InvoiceRuleViolation):
        services.payment_record(
            actor=world.users["finance"], invoice=invoice, amount=Decimal(1), paid_on=dt.date.today(), reference="x"
        )


def test_four_eyes_can_be_turned_off(world, invoice, settings) -> None:
    settings.METERLINE_FOUR_EYES = False
    assert issue(world, invoice, submitter="finance", approver="finance").status == "issued"


def test_payments_partial_full_and_overpayment(world, invoice) -> None:
    issue(world, invoice)
    finance = world.users["finance"]
    services.payment_record(
        actor=finance, invoice=invoice, amount=Decimal("20"), paid_on=dt.date(2026, 12, 1), reference="T1"
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.outstanding) == ("issued", Decimal(20), Decimal("6.43"))
    with pytest.raises(services.InvoiceRuleViolation) as refused:
        services.payment_record(
            actor=finance, invoice=invoice, amount=Decimal("6.44"), paid_on=dt.date(2026, 12, 2), reference="T2"
        )
    assert refused.value.code == "overpayment" and "6.43" in refused.value.message
    with pytest.raises(services.InvoiceRuleViolation) as refused:
        services.payment_record(
            actor=finance, invoice=invoice, amount=Decimal("0.001"), paid_on=dt.date(2026, 12, 2), reference="T2"
        )
    assert refused.value.code == "invalid_amount"
    for nonsense in (dt.date(9999, 12, 31), dt.date(1, 1, 1)):
        with pytest.raises(services.InvoiceRuleViolation) as refused:
            services.payment_record(actor=finance, invoice=invoice, amount=Decimal(1), paid_on=nonsense, reference="T")
        assert refused.value.code == "invalid_date" and refused.value.status == 400
    services.payment_record(
        actor=finance, invoice=invoice, amount=Decimal("6.43"), paid_on=dt.date(2026, 12, 2), reference="T2"
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.payments.count() == 2


def test_a_payment_sent_twice_is_recorded_once(world, invoice) -> None:
    """A retry after a timeout, or the form sent twice: the same amount, day and reference is refused (409)."""
    from rest_framework.test import APIClient

    issue(world, invoice)
    client = APIClient()
    client.force_authenticate(world.users["finance"])
    body = {"amount": "5.00", "paid_on": "2026-12-01", "reference": "BANK-7781"}
    first = client.post(f"/api/v1/invoices/{invoice.pk}/payments", body, format="json")
    again = client.post(f"/api/v1/invoices/{invoice.pk}/payments", body, format="json")
    assert first.status_code == 201
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_payment"
    assert "already recorded" in again.json()["error"]["message"]
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal(5) and invoice.payments.count() == 1
    # Another installment: a different day, amount or reference is a payment of its own.
    for other in ({"paid_on": "2026-12-02"}, {"amount": "6.00"}, {"reference": "BANK-7782"}):
        assert client.post(f"/api/v1/invoices/{invoice.pk}/payments", body | other, format="json").status_code == 201
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal(21) and invoice.payments.count() == 4
    # the retry of a payment larger than what is now outstanding, and of the one that settled the invoice
    assert (
        client.post(f"/api/v1/invoices/{invoice.pk}/payments", body | {"amount": "6.00"}, format="json").json()[
            "error"
        ]["code"]
        == "duplicate_payment"
    )
    last = body | {"amount": "5.43", "reference": "BANK-7790"}
    assert client.post(f"/api/v1/invoices/{invoice.pk}/payments", last, format="json").status_code == 201
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    again = client.post(f"/api/v1/invoices/{invoice.pk}/payments", last, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_payment"


def test_credit_notes_partial_and_full(world, invoice, django_capture_on_commit_callbacks) -> None:
    issue(world, invoice)
    finance = world.users["finance"]
    with django_capture_on_commit_callbacks(execute=True):
        partial = services.credit_note_create(
            actor=finance, invoice=invoice, reason="goodwill", amount=Decimal("10.60")
        )
    year = partial.issue_date.year
    # the tax share of a gross 10.60 at 6 %: 10.60 × 0.06 / 1.06 = 0.60
    assert (partial.number, partial.tax, partial.full) == (f"CN-{year}-000001", Decimal("0.60"), False)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.outstanding) == ("issued", Decimal("15.83"))
    partial.refresh_from_db()
    note_text = text_of(bytes(partial.pdf))
    assert (
        partial.number in note_text and invoice.number in note_text and "红字发票" in note_text and "10.60" in note_text
    )
    full = services.credit_note_create(actor=finance, invoice=invoice, reason="duplicate invoice")
    assert (full.number, full.amount, full.full) == (f"CN-{year}-000002", Decimal("15.83"), True)
    invoice.refresh_from_db()
    assert invoice.status == "void" and invoice.outstanding == 0
    with pytest.raises(services.InvoiceRuleViolation):
        services.credit_note_create(actor=finance, invoice=invoice, reason="again")


def test_a_credit_note_sent_twice_is_issued_once(world, invoice) -> None:
    """The same partial credit sent again (a retry, a form sent twice) takes no second number of the series."""
    from rest_framework.test import APIClient

    issue(world, invoice)
    client = APIClient()
    client.force_authenticate(world.users["finance"])
    body = {"amount": "2.12", "reason": "two failed requests"}
    first = client.post(f"/api/v1/invoices/{invoice.pk}/credit-notes", body, format="json")
    again = client.post(f"/api/v1/invoices/{invoice.pk}/credit-notes", body, format="json")
    assert first.status_code == 201
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_credit_note"
    invoice.refresh_from_db()
    assert invoice.amount_credited == Decimal("2.12") and invoice.credit_notes.count() == 1
    other = client.post(f"/api/v1/invoices/{invoice.pk}/credit-notes", body | {"reason": "a third"}, format="json")
    assert other.status_code == 201
    assert sorted(invoice.credit_notes.values_list("number", flat=True))[-1].endswith("000002")
    # a full credit note (no amount) sent again once it voided the invoice: told it is already issued
    full = {"reason": "issued in error"}
    assert client.post(f"/api/v1/invoices/{invoice.pk}/credit-notes", full, format="json").status_code == 201
    repeated = client.post(f"/api/v1/invoices/{invoice.pk}/credit-notes", full, format="json")
    assert repeated.status_code == 409 and repeated.json()["error"]["code"] == "duplicate_credit_note"
    assert invoice.credit_notes.count() == 3


def test_the_database_refuses_changes_to_an_issued_invoice(world, invoice) -> None:
    issue(world, invoice)
    for statement in (
        "UPDATE invoices_invoice SET total = total + 1 WHERE id = %s",
        "UPDATE invoices_invoice SET number = 'INV-1999-000001' WHERE id = %s",
        "DELETE FROM invoices_invoice WHERE id = %s",
        "UPDATE invoices_invoiceline SET amount = 0 WHERE invoice_id = %s",
    ):
        with pytest.raises(DatabaseError, match="issued"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [invoice.pk])
    # status and payment fields still move
    with connection.cursor() as cursor:
        cursor.execute("UPDATE invoices_invoice SET reminded_at = now() WHERE id = %s", [invoice.pk])
    invoice.refresh_from_db()
    assert invoice.total == TOTAL and invoice.reminded_at is not None


def test_an_approval_that_fails_after_taking_a_number_leaves_no_gap(world, invoice, monkeypatch) -> None:
    services.invoice_submit(actor=world.users["am"], invoice=invoice)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("crash after the number was taken")

    monkeypatch.setattr(services, "audit_record", broken)
    with pytest.raises(RuntimeError):
        services.invoice_approve(actor=world.users["finance"], invoice=invoice)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == ("pending_approval", None)
    assert not NumberSeries.objects.filter(series="INV", last__gt=0).exists()
    monkeypatch.undo()
    approved = services.invoice_approve(actor=world.users["finance"], invoice=invoice)
    assert approved.number.endswith("-000001")


def test_overdue_invoices_are_reminded_once_a_week(world, invoice) -> None:
    invoice = issue(world, invoice)
    mail.outbox.clear()
    later = dt.datetime.combine(invoice.due_date + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    assert list(services.invoices_overdue(later.date())) == [Invoice.objects.get(pk=invoice.pk)]
    assert services.overdue_reminders_send(now=later) == 1
    assert "Overdue" in mail.outbox[0].subject and invoice.number in mail.outbox[0].subject
    assert services.overdue_reminders_send(now=later + dt.timedelta(days=1)) == 0
    assert services.overdue_reminders_send(now=later + dt.timedelta(days=8)) == 1


def test_the_pdf_states_the_tax_rate_once(world, invoice) -> None:
    from invoices.pdf import _tax_caption

    invoice.tax_percent = Decimal("6.0000")
    expected = {
        "增值税 6%": "增值税 6%",
        "VAT 6 %": "VAT 6 %",
        "增值税": "增值税 · 6%",
        "": "Tax 税 · 6%",
        "增值税 16%": "增值税 16% · 6%",  # another rate in the label is not this one
        "VAT 0.6%": "VAT 0.6% · 6%",
    }
    for label, caption in expected.items():
        invoice.tax_label = label
        assert _tax_caption(invoice) == caption


def test_a_usual_months_invoice_fits_on_one_page(world, prices) -> None:
    """Five models with input, cached input and output over two projects — fifteen lines and ten by-project rows,
    a usual month — print on one A4 page, payment instructions included."""
    from invoices.pdf import html_to_document, invoice_html
    from tests.billing.test_bills import close, event, send
    from tests.factories import api_key_for
    from tests.invoices.conftest import alpha_invoices_in_cny
    from tests.metering.conftest import add_price

    alpha_invoices_in_cny(world)
    add_price("gpt-4o-mini", input="0.15", cached_input="0.075", output="0.6")
    add_price("gemini-2.5-flash", input="0.3", cached_input="0.075", output="2.5")
    research_key, _secret = api_key_for(world.alpha_other_project)
    models = ["gpt-4o", "claude-sonnet-4", "o3", "gpt-4o-mini", "gemini-2.5-flash"]
    for n, model in enumerate(models):
        usage = {"input_tokens": 1_000_000 + n, "cached_input_tokens": 100_000, "output_tokens": 300_000}
        send(world, event(f"c-{model}", model, **usage))
        send(world, event(f"r-{model}", model, **usage), key=research_key)
    [bill] = close(world).bills
    usual = bill.invoice
    assert usual.lines.count() == 15 and len(bill.by_project) == 10
    assert len(html_to_document(invoice_html(usual)).pages) == 1

"""Portal pages for invoices: tenants read and download; finance approves (four-eyes), records payments,
issues credit notes and exports for accounting."""

import io

import pytest
from openpyxl import load_workbook

from invoices.tasks import invoice_render

pytestmark = pytest.mark.django_db


def act(client, invoice, **data):  # type: ignore[no-untyped-def]
    return client.post(f"/t/alpha/invoices/{invoice.pk}/action/", data, follow=True)


def test_finance_approves_records_a_payment_and_credits_in_the_portal(world, invoice) -> None:
    am, finance, finance2 = world.portal("am"), world.portal("finance"), world.portal("finance2")
    assert "Submitted for approval" in act(am, invoice, action="submit").content.decode()
    queue = finance.get("/staff/invoices/").content.decode()
    assert "Approval queue" in queue and "BILL-alpha-202610" in queue
    own = act(am, invoice, action="approve")
    assert own.status_code == 403  # account managers do not approve
    issued = act(finance2, invoice, action="approve").content.decode()
    invoice.refresh_from_db()
    assert invoice.number and f"invoice {invoice.number} is issued" in issued
    invoice_render(invoice.pk)
    paid = act(finance, invoice, action="payment", amount="6.43", paid_on="2026-12-01", reference="BANK-1")
    assert "Payment recorded" in paid.content.decode()
    too_much = act(finance, invoice, action="payment", amount="100", paid_on="2026-12-01", reference="BANK-2")
    assert "Overpayment" in too_much.content.decode()
    credited = act(finance, invoice, action="credit_note", amount="1.06", reason="goodwill").content.decode()
    assert "Credit note CN-" in credited
    # the tenant reads it and downloads the PDF
    owner = world.portal("alpha_owner")
    listing = owner.get("/t/alpha/invoices/").content.decode()
    assert invoice.number in listing and "Download" in listing
    pdf = owner.get(f"/t/alpha/invoices/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    assert owner.post(f"/t/alpha/invoices/{invoice.pk}/action/", {"action": "payment"}).status_code == 403
    assert world.portal("alpha_dev").get("/t/alpha/invoices/").status_code == 403
    # exports for accounting
    csv = finance.get("/staff/invoices/export/", {"kind": "invoices", "format": "csv"}).content.decode()
    assert invoice.number in csv and "26.43" in csv and "北京阿尔法科技有限公司" in csv
    xlsx = finance.get("/staff/invoices/export/", {"kind": "payments", "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("invoice", "tenant") and rows[1][0] == invoice.number
    notes = finance.get("/staff/invoices/export/", {"kind": "credit_notes", "format": "csv"}).content.decode()
    assert "goodwill" in notes
    assert finance.get("/staff/invoices/export/", {"kind": "x"}).status_code == 400


def test_tenants_do_not_see_drafts(world, invoice) -> None:
    owner = world.portal("alpha_owner")
    assert "No invoices yet" in owner.get("/t/alpha/invoices/").content.decode()
    assert owner.get(f"/t/alpha/invoices/{invoice.pk}/").status_code == 404


def test_the_reviewer_sees_the_invoice_beside_its_bill(world, invoice) -> None:
    act(world.portal("am"), invoice, action="submit")
    page = world.portal("finance2").get(f"/t/alpha/invoices/{invoice.pk}/")
    beside = page.context["beside"]
    assert [label for label, *_rest in beside] == ["Currency", "Exchange rate", "Lines", "Net", "Tax", "Total"]
    assert all(same for *_values, same in beside)
    html = page.content.decode()
    assert "Beside the bill" in html and "Differs" not in html and invoice.bill.number in html
    act(world.portal("finance2"), invoice, action="approve")
    tenant_view = world.portal("alpha_owner").get(f"/t/alpha/invoices/{invoice.pk}/")
    assert tenant_view.status_code == 200 and "Beside the bill" not in tenant_view.content.decode()

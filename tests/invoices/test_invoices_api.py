"""/api/v1/invoices (SPEC §8) over HTTP: shapes, transitions, refusals in the error shape, the PDF."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_whole_lifecycle_over_the_api(world, invoice, django_capture_on_commit_callbacks) -> None:
    url = f"/api/v1/invoices/{invoice.pk}"
    owner, am, finance, finance2 = (world.client(u) for u in ("alpha_owner", "am", "finance", "finance2"))
    body = owner.get(url).json()
    assert {k: body[k] for k in ("number", "status", "bill", "tenant", "period", "currency", "total", "pdf_ready")} == {
        "number": None,
        "status": "draft",
        "bill": invoice.bill_id,
        "tenant": "alpha",
        "period": "2026-10",
        "currency": "CNY",
        "total": "26.43",
        "pdf_ready": False,
    }
    assert body["fx_rate"] == "7.123456" and body["lines"][0]["amount"] == "17.81"
    not_issued = owner.get(f"{url}/pdf")
    assert not_issued.status_code == 409 and not_issued.json()["error"]["code"] == "not_issued"
    assert owner.post(f"{url}/submit").status_code == 403
    assert am.post(f"{url}/submit").json()["status"] == "pending_approval"
    again = am.post(f"{url}/submit")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    rejected = finance.post(f"{url}/reject", {"reason": "PO missing"}, format="json").json()
    assert (rejected["status"], rejected["rejection_reason"]) == ("draft", "PO missing")
    assert finance.post(f"{url}/reject", {}, format="json").status_code == 400  # a reason is required
    assert finance.post(f"{url}/reject", {"reason": "x"}, format="json").status_code == 409  # not pending
    finance.post(f"{url}/submit")
    own = finance.post(f"{url}/approve")
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes"
    issued = finance2.post(f"{url}/approve").json()
    assert issued["status"] == "issued" and issued["number"].startswith("INV-")
    rendering = owner.get(f"{url}/pdf")  # the render task has not run yet
    assert rendering.status_code == 409 and rendering.json()["error"]["code"] == "pdf_rendering"
    from invoices.tasks import invoice_render

    invoice_render(invoice.pk)
    pdf = owner.get(f"{url}/pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
    paid = finance.post(
        f"{url}/payments", {"amount": "10.00", "paid_on": "2026-12-01", "reference": "W1"}, format="json"
    )
    assert paid.status_code == 201 and paid.json()["amount"] == "10.00"
    over = finance.post(f"{url}/payments", {"amount": "100", "paid_on": "2026-12-01", "reference": "W2"}, format="json")
    assert over.status_code == 409 and over.json()["error"]["code"] == "overpayment"
    far = finance.post(f"{url}/payments", {"amount": "1", "paid_on": "9999-12-31", "reference": "W3"}, format="json")
    assert far.status_code == 400 and far.json()["error"]["code"] == "invalid_date"
    assert set(far.json()["error"]["fields"]) == {"paid_on"}
    assert (
        owner.post(
            f"{url}/payments", {"amount": "1", "paid_on": "2026-12-01", "reference": "x"}, format="json"
        ).status_code
        == 403
    )
    # A full credit note reverses the whole invoice (it is void); the 10.00 already paid is owed back
    # to the customer, shown as a negative outstanding amount.
    note = finance.post(f"{url}/credit-notes", {"reason": "cancelled"}, format="json")
    assert note.status_code == 201 and note.json()["full"] is True and note.json()["amount"] == "26.43"
    final = owner.get(url).json()
    assert (final["status"], final["amount_paid"], final["amount_credited"], final["outstanding"]) == (
        "void",
        "10.00",
        "26.43",
        "-10.00",
    )
    listing = finance.get("/api/v1/invoices", {"status": "void", "tenant": "alpha"}).json()
    assert [i["id"] for i in listing["results"]] == [invoice.pk]
    assert finance.get("/api/v1/invoices", {"status": "lost"}).status_code == 400
    assert world.client("alpha_dev").get(url).status_code == 404
    assert world.client("bravo_owner").get(url).status_code == 404

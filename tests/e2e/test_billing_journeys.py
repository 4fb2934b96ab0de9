"""Browser journeys (Debian's Chromium) over the billing portal: finance approves an invoice someone else
submitted and records a payment; an account manager sets up a tenant's contract and budget; a tenant admin adds a
webhook channel and sends a test to a live receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect

from invoices import services as invoice_services
from tests.e2e.conftest import ARTIFACTS
from tests.invoices.conftest import invoice  # noqa: F401  (a closed October bill with its draft invoice)
from tests.metering.conftest import prices  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit].primary")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.wait_for_load_state()


def test_finance_approves_an_invoice_submitted_by_someone_else_and_records_a_payment(
    world,
    invoice,  # noqa: F811  (the fixture imported above)
    live_server,
    browser_page,
) -> None:
    invoice_services.invoice_submit(actor=world.users["am"], invoice=invoice)
    page = browser_page
    log_in(page, live_server, "fin")
    page.click("text=All invoices")
    page.click("text=Review")
    expect(page.locator("body")).to_contain_text("Submitted by am-alice")
    page.click("text=Approve and issue")
    expect(page.locator("h1")).to_contain_text("Issued")
    heading = page.locator("h1").inner_text()
    assert heading.startswith("INV-") and "Issued" in heading
    number = heading.split()[0]
    page.fill("input[name=reference]", "BANK-2026-12-01")
    page.fill("input[name=amount]", "26.43")
    page.click("text=Record payment")
    expect(page.locator("body")).to_contain_text("Payment recorded")
    expect(page.locator("h1")).to_contain_text("Paid")
    page.screenshot(path=str(ARTIFACTS / "finance-invoice-paid.png"), full_page=True)
    invoice.refresh_from_db()
    assert (invoice.number, invoice.status) == (number, "paid")


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_account_manager_sets_up_a_tenant_and_the_admin_adds_a_webhook(
    world,
    prices,  # noqa: F811  (the fixture imported above)
    live_server,
    browser_page,
) -> None:
    page = browser_page
    log_in(page, live_server, "am-alice")
    page.click("nav.mainnav >> text=My tenants")
    page.fill("#id_slug", "delta")
    page.fill("#id_name", "Delta Labs")
    page.fill("#id_legal_name", "Delta Labs GmbH")
    page.fill("#id_country", "DE")
    page.fill("#id_billing_currency", "EUR")
    page.fill("#id_timezone", "Europe/Berlin")
    page.click("form >> text=Create")
    page.wait_for_url(f"{live_server.url}/t/delta/")
    # a contract with a rate override, activated
    page.click("nav.mainnav >> text=Contracts")
    page.fill("#id_starts_on", "2026-12-01")
    page.fill("#id_billing_currency", "EUR")
    page.fill("#id_tax_percent", "19")
    page.fill("#id_tax_label", "MwSt. 19%")
    page.fill("#id_rate_overrides", "gpt-4o input=2 output=8")
    page.click("text=Create draft")
    expect(page.locator("body")).to_contain_text("Draft contract C-delta-001 created")
    page.click("text=Activate this contract")
    expect(page.locator("body")).to_contain_text("is active")
    assert "gpt-4o" in page.content()
    # a budget
    page.click("nav.mainnav >> text=Budgets")
    page.fill("#id_name", "Delta monthly")
    page.select_option("#id_period", "month")
    page.fill("#id_limit_amount", "500")
    page.click("text=Create budget")
    expect(page.locator("body")).to_contain_text("Budget created")
    assert "Delta monthly" in page.content()
    page.screenshot(path=str(ARTIFACTS / "account-manager-budget.png"), full_page=True)

    # the tenant admin of Alpha: an API key (secret once) and a webhook channel with a test message
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.context.clear_cookies()  # signed out
        log_in(page, live_server, "alpha-admin")
        page.click("text=Projects & keys")
        page.click("text=Alpha Chatbot")
        page.fill("#id_name", "gateway key")
        page.click("text=Create key")
        assert page.locator("#new-key-value").inner_text().startswith("mlk_")
        page.goto(f"{live_server.url}/t/alpha/channels/")
        page.fill("#id_name", "Ops webhook")
        page.select_option("#id_kind", "webhook")
        page.fill("#id_target", f"http://127.0.0.1:{server.server_port}/meterline")
        page.fill("#id_secret", "whsec-e2e")
        page.click("text=Add channel")
        page.wait_for_load_state()
        page.click("text=Send test")
        expect(page.locator("body")).to_contain_text("Test message sent")
        page.screenshot(path=str(ARTIFACTS / "tenant-admin-webhook-test.png"), full_page=True)
    finally:
        server.shutdown()
    assert json.loads(_Receiver.bodies[-1])["type"] == "test"


def test_a_customer_reads_the_dashboard_drills_to_events_exports_and_downloads_the_invoice(
    world,
    invoice,  # noqa: F811  (the fixture imported above)
    live_server,
    browser_page,
) -> None:
    import io

    from django.utils import timezone
    from openpyxl import load_workbook

    from invoices.tasks import invoice_render
    from metering.services import IngestScope, events_ingest

    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": f"now-{n}",
                "timestamp": timezone.now().isoformat(),
                "model": "gpt-4o",
                "feature": "chat",
                "usage": {"input_tokens": 10_000 * (n + 1), "output_tokens": 500},
            }
            for n in range(3)
        ],
    )
    invoice_services.invoice_submit(actor=world.users["am"], invoice=invoice)
    invoice_services.invoice_approve(actor=world.users["finance2"], invoice=invoice)
    invoice_render(invoice.pk)
    invoice.refresh_from_db()

    page = browser_page
    log_in(page, live_server, "alpha-owner")
    assert "Month to date" in page.content() and "By model" in page.content()
    page.screenshot(path=str(ARTIFACTS / "customer-dashboard.png"), full_page=True)
    page.click("#dash-model >> xpath=.. >> text=gpt-4o")
    expect(page.locator("h1")).to_have_text("Usage events")
    assert "now-2" in page.content()
    with page.expect_download() as download_info:
        page.click("text=Export XLSX")
    workbook = load_workbook(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    assert {"Summary", "Detailed"} <= set(workbook.sheetnames)
    page.click("nav.mainnav >> text=Invoices")
    expect(page.locator("h1")).to_have_text("Invoices")
    expect(page.locator("body")).to_contain_text(invoice.number)
    with page.expect_download() as pdf_info:
        page.click("text=Download")
    assert Path(pdf_info.value.path()).read_bytes()[:4] == b"%PDF"
    assert pdf_info.value.suggested_filename == f"{invoice.number}.pdf"


@pytest.mark.parametrize(
    "path",
    [
        "/t/alpha/",
        "/t/alpha/bills/",
        "/t/alpha/budgets/",
        "/t/alpha/invoices/",
        "/t/alpha/usage/",
        "/t/alpha/estimate/",
    ],
)
def test_pages_fit_a_phone_width_screen(world, prices, live_server, browser_page, path) -> None:  # noqa: F811
    from django.utils import timezone

    from metering.services import IngestScope, events_ingest

    usage = {"input_tokens": 1234567, "output_tokens": 234567}
    events_ingest(  # a row in every table, with wide numbers
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": "phone-1", "timestamp": timezone.now().isoformat(), "model": "gpt-4o", "usage": usage}
        ],
    )
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, "alpha-owner")
    page.goto(live_server.url + path)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{path} is {overflow}px wider than a 390px screen"
    if path == "/t/alpha/":
        page.screenshot(path=str(ARTIFACTS / "phone-dashboard.png"), full_page=True)

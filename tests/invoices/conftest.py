import datetime as dt
from decimal import Decimal

import pytest

from tenants.roles import FINANCE
from tests.factories import UserFactory
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture, shared)


def alpha_invoices_in_cny(world) -> None:  # type: ignore[no-untyped-def]
    """Alpha's buyer details, a CNY contract with VAT 6 % from January and the October rate (7.123456)."""
    from billing.contracts import contract_activate, contract_create
    from billing.models import FxRate

    world.alpha.tax_id = "91110000ALPHA0001X"
    world.alpha.address = "1 Alpha Road, Beijing"
    world.alpha.billing_emails = ["ap@alpha.example"]
    world.alpha.legal_name = "北京阿尔法科技有限公司"
    world.alpha.save()
    contract = contract_create(
        actor=None,
        tenant=world.alpha,
        starts_on=dt.date(2026, 1, 1),
        billing_currency="CNY",
        tax_percent=Decimal("6"),
        tax_label="增值税 6%",
        invoice_type="vat_special",
        payment_terms_days=30,
    )
    contract_activate(actor=None, contract=contract)
    FxRate.objects.create(base="USD", quote="CNY", date=dt.date(2026, 10, 30), rate=Decimal("7.123456"), source="ecb")


@pytest.fixture
def invoice(world, prices):  # type: ignore[no-untyped-def]  # noqa: F811
    """The draft invoice of Alpha's closed October bill: CNY, VAT 6 %, 1,000,000 gpt-4o input tokens."""
    from tests.billing.test_bills import close, event, send

    alpha_invoices_in_cny(world)
    send(world, event("g", "gpt-4o", input_tokens=1_000_000, output_tokens=100_000))
    [bill] = close(world).bills
    world.users["finance2"] = UserFactory(username="fin2", staff_groups=[FINANCE])
    return bill.invoice

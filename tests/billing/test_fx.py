"""FX rates: ECB history as USD cross rates via EUR (6 dp), idempotent import, the rate in force."""

import datetime as dt
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.fx import fx_rate_in_force, shipped_ecb_file
from billing.models import FxRate

pytestmark = pytest.mark.django_db


def _ecb_row(day: str) -> dict[str, str]:
    with zipfile.ZipFile(shipped_ecb_file()) as archive:
        lines = archive.read("eurofxref-hist.csv").decode().splitlines()
    header = lines[0].split(",")
    row = next(line for line in lines if line.startswith(day)).split(",")
    return dict(zip(header, row, strict=False))


def test_the_shipped_ecb_history_imports_as_usd_cross_rates_and_twice_is_harmless() -> None:
    out = StringIO()
    call_command("import_fx_rates", "--source", "ecb", "--since", "2026-10-01", stdout=out)
    first = FxRate.objects.count()
    assert first > 300
    call_command("import_fx_rates", "--source", "ecb", "--since", "2026-10-01", stdout=out)
    assert FxRate.objects.count() == first
    row = _ecb_row("2026-10-30")
    eur_usd, eur_cny, eur_jpy = Decimal(row["USD"]), Decimal(row["CNY"]), Decimal(row["JPY"])
    q = Decimal("0.000001")
    assert FxRate.objects.get(quote="CNY", date="2026-10-30").rate == (eur_cny / eur_usd).quantize(q, ROUND_HALF_UP)
    assert FxRate.objects.get(quote="JPY", date="2026-10-30").rate == (eur_jpy / eur_usd).quantize(q, ROUND_HALF_UP)
    assert FxRate.objects.get(quote="EUR", date="2026-10-30").rate == (1 / eur_usd).quantize(q, ROUND_HALF_UP)
    assert set(FxRate.objects.values_list("base", "source").distinct()) == {("USD", "ecb")}


def test_the_rate_in_force_on_a_weekend_is_fridays() -> None:
    FxRate.objects.create(base="USD", quote="CNY", date=dt.date(2026, 10, 30), rate=Decimal("7.123456"), source="ecb")
    FxRate.objects.create(base="USD", quote="CNY", date=dt.date(2026, 10, 29), rate=Decimal("7.100000"), source="ecb")
    saturday = dt.date(2026, 10, 31)
    assert fx_rate_in_force(base="USD", quote="CNY", on=saturday).rate == Decimal("7.123456")
    assert fx_rate_in_force(base="USD", quote="CNY", on=dt.date(2026, 11, 9), max_age_days=7) is None
    assert fx_rate_in_force(base="USD", quote="USD", on=saturday) == Decimal(1)


def test_the_api_answers_the_rate_in_force_and_only_finance_adds(world) -> None:
    FxRate.objects.create(base="USD", quote="CNY", date=dt.date(2026, 10, 30), rate=Decimal("7.123456"), source="ecb")
    rows = world.client("alpha_member").get("/api/v1/fx-rates", {"quote": "cny", "date": "2026-11-01"}).json()
    assert [(r["quote"], r["date"], r["rate"]) for r in rows["results"]] == [("CNY", "2026-10-30", "7.123456")]
    body = {"base": "USD", "quote": "CNY", "date": "2026-11-02", "rate": "7.2"}
    assert world.client("alpha_owner").post("/api/v1/fx-rates", body, format="json").status_code == 403
    created = world.client("finance").post("/api/v1/fx-rates", body, format="json")
    assert created.status_code == 201 and created.json()["source"] == "manual"
    again = world.client("finance").post("/api/v1/fx-rates", body, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "fx_rate_exists"
    bad = world.client("finance").post("/api/v1/fx-rates", body | {"quote": "XYZ", "date": "soon"}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"quote", "date"}

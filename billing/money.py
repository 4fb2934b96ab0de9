"""Money helpers: ISO 4217 minor units (from Babel's CLDR data) and the one rounding rule of SPEC §7."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel.numbers import get_currency_precision


@cache
def minor_units(currency: str) -> int:
    """Digits after the decimal point: JPY 0, USD/CNY/EUR 2, KWD 3."""
    return int(get_currency_precision(currency))


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """round_half_up to the currency's minor unit (0.5 away from zero)."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def money_str(amount: Decimal, currency: str) -> str:
    """A JSON amount with exactly the currency's minor digits: "1234.50", JPY "5000"."""
    return f"{quantize_money(amount, currency):.{minor_units(currency)}f}"

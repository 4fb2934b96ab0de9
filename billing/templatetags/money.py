"""{{ amount|money:currency }}: an amount with its currency, formatted for the page's language (Babel/CLDR)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, format_decimal
from django import template
from django.utils.translation import get_language, to_locale

from billing.money import quantize_money

register = template.Library()


def _locale() -> str:
    locale = to_locale(get_language() or "en")
    return {"zh_Hans": "zh_Hans_CN"}.get(locale, locale)


@register.filter
def money(amount: Any, currency: str) -> str:
    if amount in (None, ""):
        return "—"
    value = quantize_money(Decimal(str(amount)), currency)  # shown to the currency's minor unit
    return format_currency(value, currency, locale=_locale(), format_type="standard", decimal_quantization=True)


@register.filter
def tokens(value: Any) -> str:
    if value in (None, ""):
        return "—"
    return format_decimal(int(value), locale=_locale())


@register.filter
def price(value: Any) -> str:
    """A price per 1M tokens exactly as stored (never rounded), with at least two decimals: 0.075, 2.50, 15.00."""
    if value in (None, ""):
        return "—"
    exact = Decimal(str(value)).normalize()
    decimals = max(2, -exact.as_tuple().exponent)  # type: ignore[operator]
    return format_decimal(exact, format="#,##0." + "0" * decimals, locale=_locale(), decimal_quantization=False)

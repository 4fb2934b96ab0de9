import zoneinfo
from functools import cache

from babel import Locale
from babel.numbers import list_currencies
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

slug_validator = RegexValidator(r"^[a-z0-9-]{2,40}\Z", _("Use 2–40 lowercase letters, digits or hyphens."))


@cache
def _countries() -> frozenset[str]:
    return frozenset(str(code) for code in Locale("en").territories if len(str(code)) == 2 and str(code).isalpha())


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_country(value: str) -> None:
    if value not in _countries():
        raise ValidationError(_("%(value)s is not an ISO 3166-1 country code."), params={"value": value})


def validate_currency(value: str) -> None:
    if value not in _currencies():
        raise ValidationError(_("%(value)s is not an ISO 4217 currency code."), params={"value": value})


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value})

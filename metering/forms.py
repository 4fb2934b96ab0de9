"""Forms of the platform admin's price book pages."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.forms import decimal_for_field
from metering.events import parse_timestamp
from metering.models import ModelPrice, price_aliases
from metering.prices import PRICE_FIELDS


def _price_field(label: Any, *, required: bool) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=required, min_value=Decimal(0), max_digits=20, decimal_places=8, localize=False
    )


def _aliases_parse(text: str) -> list[str]:
    aliases = list(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if len(aliases) > 50:
        raise forms.ValidationError(_("At most 50 aliases."))
    if any(len(a) > 200 for a in aliases):
        raise forms.ValidationError(_("An alias has at most 200 characters."))
    price_aliases(aliases)
    return aliases


_ALIASES_HELP = _("Other names events use for it, comma-separated; * matches any text, e.g. gpt-4o-2024-*")


class PriceForm(forms.Form):
    """A new effective-dated price row (USD per 1M tokens); the row in force until then ends where it starts.
    Rating charges tokens only (SPEC §5.4), so a per-request price is not asked for here."""

    provider = forms.CharField(label=_("Provider"), max_length=100, help_text=_("e.g. openai, anthropic, google"))
    model = forms.CharField(label=_("Model"), max_length=200)
    aliases = forms.CharField(
        label=_("Aliases"),
        required=False,
        max_length=2000,
        help_text=_ALIASES_HELP,
    )
    effective_from = forms.DateTimeField(
        label=_("In force from"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_(
            "Events from this moment on are priced with it, those already stored too (billed months keep theirs); "
            "earlier ones keep their price."
        ),
    )
    input = _price_field(_("Input"), required=True)
    cached_input = _price_field(_("Cached input (empty: the input price)"), required=False)
    cache_write = _price_field(_("Cache write (empty: the input price)"), required=False)
    output = _price_field(_("Output"), required=True)
    reasoning = _price_field(_("Reasoning (empty: the output price)"), required=False)

    def clean_provider(self) -> str:
        return self.cleaned_data["provider"].strip()

    def clean_model(self) -> str:
        return self.cleaned_data["model"].strip()

    def clean_aliases(self) -> list[str]:
        return _aliases_parse(self.cleaned_data["aliases"])

    @property
    def prices(self) -> dict[str, Decimal | None]:
        return {name: self.cleaned_data.get(name) for name in PRICE_FIELDS if name in self.fields}

    @classmethod
    def initial_from(cls, params: Any, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """The form's start: the prices in force for a (provider, model) when one is named (a changed price is a
        new row), else what the link gave (the unpriced queue names the model and its first event)."""
        now = now or timezone.now()
        initial: dict[str, Any] = {"effective_from": timezone.localtime(now).replace(second=0, microsecond=0)}
        model, provider = params.get("model", "").strip()[:200], params.get("provider", "").strip()[:100]
        if model:
            initial["model"] = model
        if provider:
            initial["provider"] = provider
        current = (
            ModelPrice.objects.filter(model=model, provider=provider, effective_from__lte=now)
            .order_by("-effective_from")
            .first()
            if model and provider
            else None
        )
        if current is not None:
            initial["aliases"] = ", ".join(current.aliases)
            for name in PRICE_FIELDS:
                value = getattr(current, name)
                if value is not None and name in cls.base_fields:
                    initial[name] = decimal_for_field(value)
        since = parse_timestamp(params.get("from"))
        if since is not None:
            # The last hours of year 9999 in UTC are past it in the reader's zone: no initial time then.
            with contextlib.suppress(OverflowError):
                initial["effective_from"] = timezone.localtime(since).replace(second=0, microsecond=0)
        return initial


class AliasesForm(forms.Form):
    """The other names a price row answers to (the only part of a price that changes in place)."""

    aliases = forms.CharField(label=_("Aliases"), required=False, max_length=2000, help_text=_ALIASES_HELP)

    def clean_aliases(self) -> list[str]:
        return _aliases_parse(self.cleaned_data["aliases"])

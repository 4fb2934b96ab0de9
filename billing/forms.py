"""Portal forms: contracts (validated by the same serializer as the API) and FX rates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.bills import period_parse
from billing.models import Contract
from core.forms import decimal_for_field
from tenants.validators import validate_currency

OVERRIDE_BUCKETS = ("input", "output", "cached_input", "cache_write", "reasoning")


def tiers_text(tiers: list[dict]) -> str:
    return "\n".join(f"{tier['from_amount']} {tier['percent']}" for tier in tiers or [])


def overrides_text(overrides: list[dict]) -> str:
    lines = []
    for item in overrides or []:
        prices = " ".join(f"{name}={item[name]}" for name in OVERRIDE_BUCKETS if item.get(name) not in (None, ""))
        lines.append(f"{item['model']} {prices}")
    return "\n".join(lines)


class ContractForm(forms.Form):
    starts_on = forms.DateField(label=_("Starts on"), widget=forms.DateInput(attrs={"type": "date"}))
    billing_currency = forms.CharField(label=_("Billing currency"), max_length=3)
    markup_percent = forms.DecimalField(label=_("Markup %"), initial=0, decimal_places=4)
    discount_percent = forms.DecimalField(label=_("Discount %"), initial=0, decimal_places=4)
    volume_tiers = forms.CharField(
        label=_("Volume tiers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "10000 3\n50000 5"}),
        help_text=_("One per line: from amount (billing currency) and percent, ascending. Graduated."),
    )
    rate_overrides = forms.CharField(
        label=_("Rate overrides"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "gpt-4o input=2 output=8 cached_input=1"}),
        help_text=_(
            "One model per line with its prices per 1M tokens in USD: input= and output= required; "
            "cached_input=, cache_write=, reasoning= optional. An override replaces the book price and the markup."
        ),
    )
    minimum_monthly_commitment = forms.DecimalField(label=_("Minimum monthly commitment"), initial=0, decimal_places=4)
    payment_terms_days = forms.IntegerField(label=_("Payment terms (days)"), initial=30, min_value=0, max_value=365)
    tax_percent = forms.DecimalField(label=_("Tax %"), initial=0, decimal_places=4)
    tax_label = forms.CharField(label=_("Tax label"), required=False, max_length=60)
    tax_inclusive = forms.BooleanField(label=_("Prices include tax"), required=False)
    invoice_type = forms.ChoiceField(label=_("Invoice type"), choices=Contract.InvoiceType.choices)
    invoice_split = forms.ChoiceField(label=_("Bills"), choices=Contract.InvoiceSplit.choices)
    late_event_grace_hours = forms.IntegerField(
        label=_("Late-event grace (hours)"), initial=72, min_value=0, max_value=24 * 30
    )

    def clean_volume_tiers(self) -> list[dict]:
        tiers = []
        for number, line in enumerate(self.cleaned_data["volume_tiers"].splitlines(), start=1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            if len(parts) != 2:
                raise forms.ValidationError(_("Line %(n)s: an amount and a percent.") % {"n": number})
            tiers.append({"from_amount": parts[0], "percent": parts[1]})
        return tiers

    def clean_rate_overrides(self) -> list[dict]:
        overrides = []
        for number, line in enumerate(self.cleaned_data["rate_overrides"].splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            item: dict[str, Any] = {"model": parts[0]}
            for part in parts[1:]:
                name, _sep, value = part.partition("=")
                if name not in OVERRIDE_BUCKETS or not value:
                    raise forms.ValidationError(
                        _("Line %(n)s: prices as name=value with name one of %(names)s.")
                        % {"n": number, "names": ", ".join(OVERRIDE_BUCKETS)}
                    )
                item[name] = value
            overrides.append(item)
        return overrides

    def api_data(self) -> dict[str, Any]:
        return {key: value for key, value in self.cleaned_data.items()}

    @classmethod
    def initial_from(cls, contract: Contract) -> dict[str, Any]:
        data = {name: getattr(contract, name) for name in cls.base_fields}
        for name, value in data.items():
            if isinstance(value, Decimal):
                data[name] = decimal_for_field(value)
        data["volume_tiers"] = tiers_text(contract.volume_tiers)
        data["rate_overrides"] = overrides_text(contract.rate_overrides)
        return data


class FxRateForm(forms.Form):
    quote = forms.CharField(label=_("Currency"), max_length=3, help_text=_("1 USD = rate × this currency"))
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    rate = forms.DecimalField(
        label=_("Rate"), max_digits=24, min_value=Decimal("0.000001"), help_text=_("Stored rounded to 6 decimals.")
    )

    def clean_quote(self) -> str:
        quote = self.cleaned_data["quote"].upper()
        validate_currency(quote)
        if quote == "USD":
            raise forms.ValidationError(_("Rates are from USD to another currency."))
        return quote


class CloseMonthForm(forms.Form):
    period = forms.RegexField(label=_("Month"), regex=r"^\d{4}-(0[1-9]|1[0-2])$", help_text="YYYY-MM")
    tenant = forms.CharField(label=_("Tenant"), required=False, help_text=_("slug; empty for every tenant"))

    def clean_period(self) -> str:
        period = self.cleaned_data["period"]
        try:
            period_parse(period)
        except ValueError:
            raise forms.ValidationError(_("A month as YYYY-MM, 2000–2100.")) from None
        return period


class BudgetForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    scope = forms.ChoiceField(label=_("Scope"), choices=[])
    scope_value = forms.CharField(
        label=_("Scope value"),
        required=False,
        help_text=_("Department code, project slug, key prefix, environment or end user; empty for the tenant."),
    )
    period = forms.ChoiceField(label=_("Period"), choices=[])
    limit_amount = forms.DecimalField(label=_("Limit (billing currency)"), required=False, min_value=Decimal("0.01"))
    limit_tokens = forms.IntegerField(label=_("Or a limit in tokens"), required=False, min_value=1)
    thresholds = forms.CharField(label=_("Alert thresholds (%)"), initial="50, 80, 95, 100")
    action_at_limit = forms.ChoiceField(label=_("At the limit"), choices=[])
    downgrade_map = forms.CharField(
        label=_("Downgrade map"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "gpt-4o gpt-4o-mini"}),
        help_text=_("One pair per line: model and the cheaper model to use instead."),
    )
    channels: Any = forms.ModelMultipleChoiceField(
        label=_("Send alerts to"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Alerts always show here and on the dashboard; channels are set up under Alert channels."),
    )

    def __init__(self, *args: Any, tenant: Any, all_channels: bool = False, **kwargs: Any) -> None:
        from billing.models import Budget, NotificationChannel

        super().__init__(*args, **kwargs)
        channels: Any = self.fields["channels"]
        offered = NotificationChannel.objects.filter(tenant=tenant).order_by("name")
        channels.queryset = offered if all_channels else offered.filter(enabled=True)
        if not self.is_bound and "channels" not in self.initial:
            channels.initial = list(channels.queryset)  # a new budget alerts every channel in use unless unticked
        for name, choices in (
            ("scope", Budget.Scope.choices),
            ("period", Budget.Period.choices),
            ("action_at_limit", Budget.Action.choices),
        ):
            field: Any = self.fields[name]
            field.choices = choices

    def clean_thresholds(self) -> list[int]:
        try:
            return [int(part) for part in self.cleaned_data["thresholds"].replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError(_("Whole percents separated by commas.")) from None

    def clean_downgrade_map(self) -> dict[str, str]:
        mapping = {}
        for line in self.cleaned_data["downgrade_map"].splitlines():
            parts = line.replace("→", " ").replace("->", " ").split()
            if not parts:
                continue
            if len(parts) != 2:
                raise forms.ValidationError(_("Each line: a model and its cheaper replacement."))
            mapping[parts[0]] = parts[1]
        return mapping


class BudgetEditForm(BudgetForm):
    active = forms.BooleanField(label=_("Active (counted, alerting and enforced)"), required=False, initial=True)

    @classmethod
    def initial_for(cls, budget: Any) -> dict[str, Any]:
        return {
            "name": budget.name,
            "scope": budget.scope,
            "scope_value": budget.scope_value,
            "period": budget.period,
            "limit_amount": decimal_for_field(budget.limit_amount) if budget.limit_amount is not None else None,
            "limit_tokens": budget.limit_tokens,
            "thresholds": ", ".join(str(t) for t in budget.thresholds),
            "action_at_limit": budget.action_at_limit,
            "downgrade_map": "\n".join(f"{model} {cheaper}" for model, cheaper in budget.downgrade_map.items()),
            "channels": list(budget.channels.all()),
            "active": budget.active,
        }


class ChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=[])
    target = forms.CharField(label=_("Email address or URL"), max_length=500)
    secret = forms.CharField(label=_("Signing secret"), required=False, max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from billing.models import NotificationChannel

        super().__init__(*args, **kwargs)
        kind: Any = self.fields["kind"]
        kind.choices = NotificationChannel.Kind.choices

"""The cost estimator (pre-sales): traffic, average tokens and a model mix → the month's tokens and the bill
they would make in the tenant's currency — at the tenant's rate card and contract terms, through the same
computation as a real bill (SPEC §7 steps 2–8)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from billing.bill_math import BillTotals, Terms, UsageGroup, bill_compute
from billing.bills import BillBlocked, FxChoice, bill_terms, billing_contract, current_period, fx_for_preview
from billing.contracts import contracts_in_force
from billing.models import Contract
from metering.rating import RateCard, RateCardResolver

SECONDS_PER_DAY = 86_400
MAX_REQUESTS_PER_DAY = Decimal(10) ** 10
MAX_TOKENS = 10_000_000


class EstimateInvalid(Exception):
    def __init__(self, code: str, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields


@dataclass(frozen=True)
class MixItem:
    model: str
    share_percent: Decimal


@dataclass(frozen=True)
class Traffic:
    requests_per_day: Decimal
    input_tokens: int  # average per request, uncached input
    output_tokens: int  # average per request, reasoning included
    mix: tuple[MixItem, ...]
    cached_input_tokens: int = 0  # average per request read from the provider's prompt cache
    reasoning_tokens: int = 0  # part of the output
    days: int = 30


@dataclass
class ModelEstimate:
    model: str
    share_percent: Decimal
    requests: int
    tokens: dict[str, int]
    card: RateCard
    cost_usd: Decimal


@dataclass
class Estimate:
    traffic: Traffic
    currency: str
    terms: Terms
    fx: FxChoice
    contract: Contract | None
    models: list[ModelEstimate] = field(default_factory=list)
    totals: BillTotals = field(default_factory=BillTotals)

    @property
    def tokens(self) -> dict[str, int]:
        summed: dict[str, int] = {}
        for model in self.models:
            for bucket, count in model.tokens.items():
                summed[bucket] = summed.get(bucket, 0) + count
        summed["total"] = sum(v for k, v in summed.items() if k != "reasoning")
        return summed

    @property
    def requests(self) -> int:
        return sum(m.requests for m in self.models)


def traffic_parse(data: dict[str, Any]) -> Traffic:
    """Validate the estimator's input (API body or portal form); every problem at once, by field."""
    errors: dict[str, list[str]] = {}

    def number(name: str, *, integer: bool = False, minimum: Decimal = Decimal(0)) -> Decimal | None:
        raw = data.get(name)
        if raw in (None, ""):
            return None
        try:
            value = Decimal(str(raw).strip())
        except ArithmeticError:
            errors[name] = ["A number."]
            return None
        if not value.is_finite() or value < minimum or (integer and value != value.to_integral_value()):
            errors[name] = [f"A{' whole' if integer else ''} number of at least {minimum}."]
            return None
        return value

    per_second = number("requests_per_second")
    per_day = number("requests_per_day")
    if per_second is not None and per_day is not None:
        errors["requests_per_day"] = ["Give requests_per_second or requests_per_day, not both."]
    elif per_second is None and per_day is None and "requests_per_second" not in errors:
        errors.setdefault("requests_per_day", ["Required: requests_per_second or requests_per_day."])
    rate = per_day if per_day is not None else (per_second or Decimal(0)) * SECONDS_PER_DAY
    if rate > MAX_REQUESTS_PER_DAY:
        errors["requests_per_day"] = ["At most 10,000,000,000 requests a day."]
    tokens = {}
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
        value = number(name, integer=True)
        if value is not None and value > MAX_TOKENS:
            errors[name] = [f"At most {MAX_TOKENS:,} tokens per request."]
        tokens[name] = int(value or 0)
    for name in ("input_tokens", "output_tokens"):
        if data.get(name) in (None, "") and name not in errors:
            errors[name] = ["Required: average tokens per request."]
    if tokens["reasoning_tokens"] > tokens["output_tokens"] and "reasoning_tokens" not in errors:
        errors["reasoning_tokens"] = ["Part of the output: at most output_tokens."]
    days = number("days", integer=True, minimum=Decimal(1))
    if days is not None and days > 366:
        errors["days"] = ["At most 366 days."]
    mix: list[MixItem] = []
    raw_mix = data.get("mix")
    if not isinstance(raw_mix, list) or not raw_mix:
        errors["mix"] = ['Required: a list of {"model", "share"} (shares in percent, adding up to 100).']
    else:
        for index, item in enumerate(raw_mix):
            model = str(item.get("model", "")).strip() if isinstance(item, dict) else ""
            try:
                share = Decimal(str(item.get("share", "")).strip()) if isinstance(item, dict) else Decimal(-1)
            except ArithmeticError:
                share = Decimal(-1)
            if not model or len(model) > 200 or not share.is_finite() or not 0 < share <= 100:
                errors[f"mix[{index}]"] = ["A model name and a share between 0 and 100 (percent)."]
                continue
            mix.append(MixItem(model, share))
        if mix and len(mix) == len(raw_mix) and sum(m.share_percent for m in mix) != 100:
            errors["mix"] = [f"The shares add up to {sum(m.share_percent for m in mix)}, not 100."]
        if len({m.model.lower() for m in mix}) != len(mix):
            errors["mix"] = ["Each model once."]
    if errors:
        raise EstimateInvalid("invalid", "The estimate has invalid fields.", errors)
    return Traffic(
        requests_per_day=rate,
        input_tokens=tokens["input_tokens"],
        output_tokens=tokens["output_tokens"],
        cached_input_tokens=tokens["cached_input_tokens"],
        reasoning_tokens=tokens["reasoning_tokens"],
        mix=tuple(mix),
        days=int(days or 30),
    )


def estimate(tenant: Any, traffic: Traffic, *, now: dt.datetime | None = None) -> Estimate:
    """The month the traffic would make for this tenant: its rate card (contract override, or book price ×
    markup), its contract's discount, tiers, commitment and tax, converted at today's rate."""
    now = now or timezone.now()
    contract = billing_contract(contracts_in_force(tenant.pk), current_period(tenant, now))
    currency = contract.billing_currency if contract else tenant.billing_currency
    try:
        fx = fx_for_preview(currency, now.date())
    except BillBlocked as exc:
        raise EstimateInvalid(exc.code, exc.message, {}) from exc
    resolver = RateCardResolver(tenant.pk, tenant.timezone)
    result = Estimate(traffic, currency, bill_terms(contract, currency, fx), fx, contract)
    unpriced: list[str] = []
    groups: list[UsageGroup] = []
    total_requests = traffic.requests_per_day * traffic.days
    for item in traffic.mix:
        card = resolver.card(model=item.model, provider="", at=now)
        if card is None:
            unpriced.append(item.model)
            continue
        requests = int((total_requests * item.share_percent / 100).to_integral_value(rounding=ROUND_HALF_UP))
        tokens = {
            "input": requests * traffic.input_tokens,
            "cached_input": requests * traffic.cached_input_tokens,
            "output": requests * traffic.output_tokens,
            "reasoning": requests * traffic.reasoning_tokens,
        }
        model_groups = _groups(item.model, card, tokens)
        groups.extend(model_groups)
        cost = sum((g.quantity * g.unit_price for g in model_groups), Decimal(0)) / 1_000_000
        result.models.append(ModelEstimate(item.model, item.share_percent, requests, tokens, card, cost))
    if unpriced:
        raise EstimateInvalid(
            "unpriced_model",
            f"No price for {', '.join(unpriced)}: choose a model of the price book.",
            {"mix": [f"Unknown model: {model}." for model in unpriced]},
        )
    result.totals = bill_compute(groups, result.terms)
    return result


def _groups(model: str, card: RateCard, tokens: dict[str, int]) -> list[UsageGroup]:
    """As a bill groups usage: reasoning is a line of its own only where the model prices it apart."""
    output = tokens["output"]
    groups = [
        UsageGroup(model=model, bucket="input", unit_price=card.input, quantity=tokens["input"]),
        UsageGroup(model=model, bucket="cached_input", unit_price=card.cached_input, quantity=tokens["cached_input"]),
    ]
    if card.reasoning_priced_apart:
        output -= tokens["reasoning"]
        groups.append(
            UsageGroup(model=model, bucket="reasoning", unit_price=card.reasoning, quantity=tokens["reasoning"])
        )
    groups.append(UsageGroup(model=model, bucket="output", unit_price=card.output, quantity=output))
    return groups


def estimate_json(result: Estimate) -> dict[str, Any]:
    """The estimate as the API answers it: amounts as strings with the currency's minor digits."""
    from billing.money import money_str
    from billing.serializers import line_json

    currency = result.currency
    contract = result.contract
    return {
        "tenant": None,
        "currency": currency,
        "fx_rate": f"{result.fx.rate:.6f}",
        "fx_rate_date": result.fx.date.isoformat() if result.fx.date else None,
        "contract": contract.number if contract else None,
        "days": result.traffic.days,
        "requests_per_day": format(result.traffic.requests_per_day.normalize(), "f"),
        "requests": result.requests,
        "tokens": result.tokens,
        "models": [
            {
                "model": m.model,
                "share": format(m.share_percent.normalize(), "f"),
                "requests": m.requests,
                "tokens": m.tokens,
                "prices_per_million_usd": {
                    "input": format(m.card.input.normalize(), "f"),
                    "cached_input": format(m.card.cached_input.normalize(), "f"),
                    "output": format(m.card.output.normalize(), "f"),
                    "reasoning": format(m.card.reasoning.normalize(), "f"),
                },
                "cost_usd": f"{m.cost_usd:.6f}",
            }
            for m in result.models
        ],
        "lines": [line_json(line, currency, project=None, period="") for line in result.totals.lines],
        "usage_subtotal": money_str(result.totals.usage_subtotal, currency),
        "net": money_str(result.totals.net, currency),
        "tax_percent": format(result.terms.tax_percent.normalize(), "f"),
        "tax_label": contract.tax_label if contract else "",
        "tax_inclusive": result.terms.tax_inclusive,
        "tax": money_str(result.totals.tax, currency),
        "total": money_str(result.totals.total, currency),
    }


def traffic_from_usage(tenant: Any, models: list[str], *, days: int = 30, rows: int = 5) -> dict[str, Any] | None:
    """The estimator's form filled from the tenant's own last `days` days (in its time zone): requests per day,
    average tokens per request and the model mix by requests — each model as the price book names it, among
    `models` (the book's models in force), the `rows` most used. None without usage to start from."""
    from zoneinfo import ZoneInfo

    from metering.pricebook import price_book
    from metering.selectors import UsageQuery, usage_aggregate

    today = timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
    query = UsageQuery(tenant=tenant, start=today - dt.timedelta(days=days - 1), end=today, group_by=["model"])
    offered, now = set(models), timezone.now()
    by_model: dict[str, int] = {}
    totals = dict.fromkeys(("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"), 0)
    for row in usage_aggregate(query)["rows"]:
        book = price_book.lookup(model=row["model"] or "", at=now)
        if book is None or book.model not in offered or not row["requests"]:
            continue
        by_model[book.model] = by_model.get(book.model, 0) + row["requests"]
        for name in totals:
            totals[name] += row[name]
    requests = totals.pop("requests")
    if not requests:
        return None
    top = sorted(by_model.items(), key=lambda item: (-item[1], item[0]))[:rows]
    kept = sum(count for _model, count in top)
    # Whole percents adding up to 100: each model's floor, the rest to the largest remainders.
    exact = [(model, Decimal(count) * 100 / kept) for model, count in top]
    shares = {model: int(share) for model, share in exact}
    for model, _share in sorted(exact, key=lambda item: -(item[1] - int(item[1])))[: 100 - sum(shares.values())]:
        shares[model] += 1
    average = {name: str(round(Decimal(total) / requests)) for name, total in totals.items()}
    return {
        "requests": str(max(1, round(Decimal(requests) / days))),
        "unit": "day",
        "days": str(days),
        **average,
        "mix": [{"model": model, "share": str(shares[model])} for model, _count in top if shares[model]],
    }

"""Cost optimisation suggestions from a tenant's own usage of one month and the price book, each with the
money (USD at the tenant's contract prices, before discount and tax) it would have saved that month:

- model: a feature's traffic on a model moved to the next cheaper model of the same provider;
- caching: a prompt template sent again and again with little of its input read from the provider's cache;
- outlier: a prompt template whose tokens per request are far above the tenant's other templates."""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
import zoneinfo
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from metering.models import ModelPrice, UsageRollup
from metering.rating import MILLION, RateCard, RateCardResolver, tokens_cost
from metering.selectors import events_in_days

MIN_REQUESTS = 20  # fewer calls than this in a month say too little
MIN_SAVING_USD = Decimal("0.50")
CACHE_MIN_PROMPT = 1024  # providers cache prompts from about this size
CACHE_LOW_SHARE = Decimal("0.2")  # below this share of input read from the cache, caching is worth a look
CACHEABLE_SHARE = Decimal("0.5")  # assumed stable prefix of a template's prompt
OUTLIER_FACTOR = Decimal(3)
CACHE_SECONDS = 3600
PAST_MONTH_CACHE_SECONDS = 7 * 86400


@dataclass
class Suggestion:
    kind: str  # model | caching | outlier
    model: str
    requests: int
    current_cost: Decimal
    projected_cost: Decimal
    feature: str = ""
    prompt_template: str = ""
    suggested_model: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def saving(self) -> Decimal:
        return self.current_cost - self.projected_cost

    @property
    def saving_percent(self) -> Decimal:
        if not self.current_cost:
            return Decimal(0)
        return (self.saving * 100 / self.current_cost).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class _Sums:
    requests: int
    input: int
    cached_input: int
    cache_write: int
    output: int
    reasoning: int
    cost: Decimal

    @property
    def prompt(self) -> int:
        return self.input + self.cached_input + self.cache_write

    def priced(self, card: RateCard) -> Decimal:
        return tokens_cost(
            card,
            input=self.input,
            cached_input=self.cached_input,
            cache_write=self.cache_write,
            output=self.output,
            reasoning=self.reasoning,
        )


def month_bounds(period: dt.date) -> tuple[dt.date, dt.date]:
    start = period.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following - dt.timedelta(days=1)


def last_month(tenant: Any, now: dt.datetime) -> dt.date:
    local = now.astimezone(zoneinfo.ZoneInfo(tenant.timezone)).date().replace(day=1)
    return (local - dt.timedelta(days=1)).replace(day=1)


def _grouped(rows: Any, *dims: str) -> dict[tuple[str, ...], _Sums]:
    result = {}
    for row in rows.values(*dims).annotate(
        n=Count("id"),
        i=Sum("input_tokens"),
        c=Sum("cached_input_tokens"),
        w=Sum("cache_write_tokens"),
        o=Sum("output_tokens"),
        r=Sum("reasoning_tokens"),
        cost_sum=Sum("cost"),
    ):
        result[tuple(row[d] or "" for d in dims)] = _Sums(
            row["n"],
            row["i"] or 0,
            row["c"] or 0,
            row["w"] or 0,
            row["o"] or 0,
            row["r"] or 0,
            row["cost_sum"] or Decimal(0),
        )
    return result


def _step_down(provider: str, model: str, at: dt.datetime, preferred: dict[str, str]) -> str | None:
    """The cheaper model of the same provider to suggest: the one the tenant's own budgets downgrade to,
    else a cheaper sibling of the same family (gpt-4o → gpt-4o-mini), else the dearest model cheaper for
    both input and output. Models that price reasoning apart are not offered: their hidden reasoning
    tokens make them no cheaper in practice."""
    from metering.pricebook import price_book

    book = price_book.lookup(model=model, provider=provider or None, at=at)  # a snapshot or routed name: its model
    if book is None:
        return None
    live = ModelPrice.objects.filter(provider=book.provider, effective_from__lte=at).filter(
        Q(effective_to__isnull=True) | Q(effective_to__gt=at)
    )
    current = live.filter(model=book.model).first()
    if current is None:
        return None
    cheaper = [
        row
        for row in live.filter(input__lt=current.input, output__lt=current.output).exclude(model=book.model)
        if row.reasoning is None or row.reasoning == row.output
    ]
    names = {row.model for row in cheaper}
    for name in (model.lower(), book.model.lower()):
        if preferred.get(name) in names:
            return preferred[name]
    siblings = sorted((row for row in cheaper if row.model.startswith(book.model + "-")), key=lambda r: -r.output)
    ranked = siblings or sorted(cheaper, key=lambda r: (-r.output, -r.input, r.model))
    return ranked[0].model if ranked else None


def _downgrades(tenant: Any) -> dict[str, str]:
    """model → cheaper model, as the tenant's active budgets downgrade them."""
    from billing.models import Budget

    mapping: dict[str, str] = {}
    for downgrade_map in Budget.objects.filter(tenant=tenant, active=True).values_list("downgrade_map", flat=True):
        for source, target in (downgrade_map or {}).items():
            mapping.setdefault(str(source).lower(), str(target))
    return mapping


def suggestions(
    tenant: Any,
    period: dt.date,
    *,
    project_ids: list[int] | None = None,
    use_cache: bool = True,
    now: dt.datetime | None = None,
) -> list[Suggestion]:
    """The month's suggestions, largest saving first. They read the month's events (seconds for a tenant with
    millions): the open month's are kept an hour; a past month's until its usage, the price book or the tenant's
    downgrades change (a week at most), so the page's default — last month — reads them about once."""
    key = f"insights:{tenant.pk}:{period:%Y%m}:{','.join(map(str, project_ids)) if project_ids is not None else '*'}"
    timeout = CACHE_SECONDS
    if period <= last_month(tenant, now or timezone.now()):
        key += ":" + _fingerprint(tenant, period, project_ids)
        timeout = PAST_MONTH_CACHE_SECONDS
    if use_cache and (found := cache.get(key)) is not None:
        return found
    result = _compute(tenant, period, project_ids)
    cache.set(key, result, timeout)
    return result


def _fingerprint(tenant: Any, period: dt.date, project_ids: list[int] | None) -> str:
    """What a past month's suggestions depend on besides the code: its usage (from the daily rollups, with pending
    deltas folded in — a late event, a correction or a re-rating changes them), the price book's version and the
    tenant's downgrades."""
    from metering.pricebook import book_version
    from metering.services import rollups_flush

    rollups_flush()
    start, end = month_bounds(period)
    rows = UsageRollup.objects.filter(tenant_id=tenant.pk, grain=UsageRollup.Grain.DAY, day__gte=start, day__lte=end)
    if project_ids is not None:
        rows = rows.filter(project_id__in=project_ids)
    sums = rows.aggregate(
        requests=Sum("requests"),
        errors=Sum("errors"),
        cost=Sum("cost"),
        tokens=Sum(F("input_tokens") + F("cached_input_tokens") + F("cache_write_tokens") + F("output_tokens")),
        reasoning=Sum("reasoning_tokens"),
    )
    parts = (sorted(sums.items()), book_version(), sorted(_downgrades(tenant).items()))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def _compute(tenant: Any, period: dt.date, project_ids: list[int] | None) -> list[Suggestion]:
    start, end = month_bounds(period)
    events = events_in_days(tenant, start, end).filter(rating_status="priced", status="success")
    if project_ids is not None:
        events = events.filter(project_id__in=project_ids)
    at = dt.datetime.combine(end, dt.time(12), tzinfo=zoneinfo.ZoneInfo(tenant.timezone))
    resolver = RateCardResolver(tenant.pk, tenant.timezone)
    found: list[Suggestion] = []
    found += _model_moves(_grouped(events, "feature", "provider", "model"), resolver, at, _downgrades(tenant))
    by_template = _grouped(events.exclude(prompt_template=""), "prompt_template", "provider", "model")
    found += _caching(by_template, resolver, at)
    found += _outliers(by_template)
    found = [s for s in found if s.saving >= MIN_SAVING_USD]
    return sorted(found, key=lambda s: (-s.saving, s.kind, s.feature, s.prompt_template, s.model))


def _model_moves(
    groups: dict[tuple[str, ...], _Sums], resolver: RateCardResolver, at: dt.datetime, preferred: dict[str, str]
) -> list[Suggestion]:
    found = []
    for (feature, provider, model), sums in groups.items():
        if sums.requests < MIN_REQUESTS:
            continue
        cheaper = _step_down(provider, model, at, preferred)
        card = resolver.card(model=cheaper, provider=provider, at=at) if cheaper else None
        if cheaper is None or card is None:
            continue
        found.append(
            Suggestion(
                kind="model",
                feature=feature,
                model=model,
                suggested_model=cheaper,
                requests=sums.requests,
                current_cost=sums.cost,
                projected_cost=sums.priced(card),
                details={"provider": provider},
            )
        )
    return found


def _caching(groups: dict[tuple[str, ...], _Sums], resolver: RateCardResolver, at: dt.datetime) -> list[Suggestion]:
    found = []
    for (template, provider, model), sums in groups.items():
        if sums.requests < MIN_REQUESTS or not sums.prompt:
            continue
        average_prompt = sums.prompt // sums.requests
        cached_share = Decimal(sums.cached_input) / sums.prompt
        card = resolver.card(model=model, provider=provider, at=at)
        if average_prompt < CACHE_MIN_PROMPT or cached_share >= CACHE_LOW_SHARE or card is None:
            continue
        if card.cached_input >= card.input:
            continue
        # Every call after the first could read the stable part of the prompt from the cache.
        movable = Decimal(sums.input) * CACHEABLE_SHARE * (sums.requests - 1) / sums.requests
        saving = movable * (card.input - card.cached_input) / MILLION
        found.append(
            Suggestion(
                kind="caching",
                prompt_template=template,
                model=model,
                requests=sums.requests,
                current_cost=sums.cost,
                projected_cost=sums.cost - saving,
                details={
                    "average_prompt_tokens": average_prompt,
                    "cached_share_percent": str((cached_share * 100).quantize(Decimal("0.1"))),
                    "assumed_cacheable_percent": str(CACHEABLE_SHARE * 100),
                },
            )
        )
    return found


def _outliers(groups: dict[tuple[str, ...], _Sums]) -> list[Suggestion]:
    per_template: dict[str, list[_Sums]] = {}
    for (template, _provider, _model), sums in groups.items():
        per_template.setdefault(template, []).append(sums)
    sizes = {}
    for template, parts in per_template.items():
        requests = sum(p.requests for p in parts)
        if requests >= MIN_REQUESTS:
            sizes[template] = Decimal(sum(p.prompt + p.output for p in parts)) / requests
    if len(sizes) < 3:
        return []
    typical = Decimal(statistics.median(sizes.values()))
    found = []
    for (template, _provider, model), sums in groups.items():
        size = sizes.get(template)
        if size is None or not typical or size < typical * OUTLIER_FACTOR:
            continue
        found.append(
            Suggestion(
                kind="outlier",
                prompt_template=template,
                model=model,
                requests=sums.requests,
                current_cost=sums.cost,
                projected_cost=sums.cost * typical / size,  # cost scales with tokens at the same prices
                details={
                    "tokens_per_request": int(size),
                    "typical_tokens_per_request": int(typical),
                    "ratio": str((size / typical).quantize(Decimal("0.1"))),
                },
            )
        )
    return found


def suggestion_json(suggestion: Suggestion) -> dict[str, Any]:
    data = asdict(suggestion)
    for name in ("current_cost", "projected_cost"):
        data[name] = f"{data[name]:.4f}"
    data["saving"] = f"{suggestion.saving:.4f}"
    data["saving_percent"] = str(suggestion.saving_percent)
    return data

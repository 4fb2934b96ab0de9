"""Rating (SPEC §5.4): an event's cost at the tenant's rate card, exact in Decimal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import threading
import zoneinfo
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from metering.adapters import Buckets
from metering.models import ModelPrice
from metering.pricebook import PriceRow, price_book

if TYPE_CHECKING:
    from billing.contracts import ContractTerms

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("1E-10")


@dataclass(frozen=True)
class RateCard:
    """Per-1M-token prices for one model as charged to one tenant, empty buckets already filled in:
    cached_input and cache_write fall back to input, reasoning to output."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    reasoning_priced_apart: bool
    price_id: int | None
    provider: str

    @functools.cached_property
    def whole_prices(self) -> tuple[int, int, int, int, int] | None:
        """The five prices in 10⁻⁸ USD per 1M tokens when each is a whole number of those (book prices
        carry 8 decimals; a markup may add more, and then None): costs are then whole-number arithmetic."""
        scaled = []
        for price in (self.input, self.cached_input, self.cache_write, self.output, self.reasoning):
            units = price.scaleb(8)
            if units != units.to_integral_value() or units < 0:
                return None
            scaled.append(int(units))
        return scaled[0], scaled[1], scaled[2], scaled[3], scaled[4]

    @classmethod
    def from_prices(
        cls,
        *,
        input: Decimal,
        output: Decimal,
        cached_input: Decimal | None = None,
        cache_write: Decimal | None = None,
        reasoning: Decimal | None = None,
        multiplier: Decimal = Decimal(1),
        price_id: int | None = None,
        provider: str = "",
    ) -> RateCard:
        cached = input if cached_input is None else cached_input
        write = input if cache_write is None else cache_write
        reason = output if reasoning is None else reasoning
        return cls(
            input=input * multiplier,
            cached_input=cached * multiplier,
            cache_write=write * multiplier,
            output=output * multiplier,
            reasoning=reason * multiplier,
            reasoning_priced_apart=reasoning is not None and reasoning != output,
            price_id=price_id,
            provider=provider,
        )


def tokens_cost(
    card: RateCard, *, input: int, cached_input: int, cache_write: int, output: int, reasoning: int
) -> Decimal:
    """Σ bucket × price ÷ 1,000,000, exact (output includes reasoning, priced apart when the card does)."""
    return (
        input * card.input
        + cached_input * card.cached_input
        + cache_write * card.cache_write
        + (output - reasoning) * card.output
        + reasoning * card.reasoning
    ) / MILLION


def event_cost(card: RateCard, buckets: Buckets) -> Decimal:
    """cost = Σ bucket × price ÷ 1,000,000, stored at 10 dp (half up)."""
    whole = card.whole_prices
    if whole is not None:
        # Σ tokens × price in 10⁻⁸ USD per 1M tokens = 10⁻¹⁴ USD; 10,000 of those make one 10⁻¹⁰ USD.
        units_14 = (
            buckets.input_tokens * whole[0]
            + buckets.cached_input_tokens * whole[1]
            + buckets.cache_write_tokens * whole[2]
            + (buckets.output_tokens - buckets.reasoning_tokens) * whole[3]
            + buckets.reasoning_tokens * whole[4]
        )
        if units_14 >= 0:
            units, rest = divmod(units_14, 10_000)
            return Decimal(units + (rest >= 5_000)).scaleb(-10)
    total = tokens_cost(
        card,
        input=buckets.input_tokens,
        cached_input=buckets.cached_input_tokens,
        cache_write=buckets.cache_write_tokens,
        output=buckets.output_tokens,
        reasoning=buckets.reasoning_tokens,
    )
    return total.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def book_card(row: PriceRow | ModelPrice, *, markup_percent: Decimal = Decimal(0)) -> RateCard:
    return RateCard.from_prices(
        input=row.input,
        output=row.output,
        cached_input=row.cached_input,
        cache_write=row.cache_write,
        reasoning=row.reasoning,
        multiplier=1 + markup_percent / 100,
        price_id=row.id,
        provider=row.provider,
    )


# (id of a price-book row, markup) → (that row, its card): every ingest call of a tenant prices from the same few
# rows, so each card (and its whole-number prices) is built once per process and price-book version.
_BOOK_CARDS: dict[tuple[int, Decimal], tuple[PriceRow, RateCard]] = {}


def _held_book_card(row: PriceRow, markup_percent: Decimal) -> RateCard:
    held = _BOOK_CARDS.get((id(row), markup_percent))
    if held is not None and held[0] is row:
        return held[1]
    if len(_BOOK_CARDS) >= 10_000:
        _BOOK_CARDS.clear()
    card = book_card(row, markup_percent=markup_percent)
    _BOOK_CARDS[(id(row), markup_percent)] = (row, card)
    return card


@functools.lru_cache(maxsize=1024)
def _local_day_bounds(zone: zoneinfo.ZoneInfo, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a local day, in UTC."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    return start, end


class RateCardResolver:
    """Rate cards for one tenant (SPEC §5.4): the contract in force on the event's day (in the tenant's time
    zone) — its rate override for the model is the whole card, otherwise book prices × (1 + markup / 100);
    with no contract, book prices."""

    def __init__(self, tenant_id: int, timezone_name: str = "UTC") -> None:
        from billing.contracts import contract_terms

        self.tenant_id = tenant_id
        self.zone = zoneinfo.ZoneInfo(timezone_name)
        self.terms = contract_terms(tenant_id)
        # (model, provider) → (start, end, card): the card answers every instant in [start, end) — within one
        # local day (contracts change by day) and between the price book's effective dates.
        self._spans: dict[tuple[str, str], tuple[dt.datetime, dt.datetime, RateCard | None]] = {}

    def card(self, *, model: str, provider: str, at: dt.datetime) -> RateCard | None:
        span = self._spans.get((model, provider))
        if span is not None and span[0] <= at < span[1]:
            return span[2]
        day = at.astimezone(self.zone).date()
        day_start, day_end = _local_day_bounds(self.zone, day)
        terms = next((t for t in self.terms if t.covers(day)), None)
        card = override_card(terms, model=model, provider=provider)
        start, end = day_start, day_end
        if card is None or not provider:
            # The book prices the model, or (under a contract's override) names its provider when the event did not.
            row, row_start, row_end = price_book.lookup_span(model=model, provider=provider or None, at=at)
            start, end = max(start, row_start), min(end, row_end)
            if card is None and row is not None:
                # A name the book prices as another model (a dated snapshot, a gateway's `provider/model`) takes
                # that model's override.
                card = override_card(terms, model=row.model, provider=provider or row.provider) or _held_book_card(
                    row, terms.markup_percent if terms else Decimal(0)
                )
            elif card is not None and row is not None and row.provider:
                card = dataclasses.replace(card, provider=row.provider)
        if len(self._spans) >= 1_000:  # model names come from clients: bound what is kept
            self._spans.clear()
        self._spans[(model, provider)] = (start, end, card)
        return card


_held = threading.local()


def held_rate_cards(tenant_id: int, timezone_name: str) -> RateCardResolver:
    """The tenant's rate cards as this thread last worked them out, kept while everything they were worked out
    from is unchanged: the tenant's contract terms (reloaded after any contract change), its time zone, the price
    book and the preferred providers. A single-event request then finds its card at once."""
    from billing.contracts import contract_terms

    basis = (contract_terms(tenant_id), timezone_name, price_book.current(), settings.METERLINE_PREFERRED_PROVIDERS)
    resolvers: dict[int, tuple[tuple, RateCardResolver]] | None = getattr(_held, "resolvers", None)
    if resolvers is None:
        resolvers = _held.resolvers = {}
    held = resolvers.get(tenant_id)
    if held is not None and all(a is b for a, b in zip(held[0], basis, strict=True)):
        return held[1]
    if len(resolvers) >= 1_000:
        resolvers.clear()
    resolver = RateCardResolver(tenant_id, timezone_name)
    resolvers[tenant_id] = (basis, resolver)
    return resolver


def override_card(terms: ContractTerms | None, *, model: str, provider: str = "") -> RateCard | None:
    """The contract's rate override for the model as a whole card (markup does not apply), if it has one. Callers
    ask for the name as sent, then for the model the price book prices it as."""
    if terms is None:
        return None
    override = terms.overrides.get(model.lower())
    if override is None or override["input"] is None or override["output"] is None:
        return None
    return RateCard.from_prices(
        input=override["input"],
        output=override["output"],
        cached_input=override["cached_input"],
        cache_write=override["cache_write"],
        reasoning=override["reasoning"],
        provider=provider,
    )

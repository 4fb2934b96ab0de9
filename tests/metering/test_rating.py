"""Rating (SPEC §5.4): exact Decimal cost, fallbacks inside a card, price lookups by alias and date."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metering.adapters import Buckets
from metering.pricebook import price_book
from metering.rating import RateCard, event_cost
from tests.metering.conftest import add_price

prices_1m = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=10**9)


@given(
    p_in=prices_1m,
    p_cached=prices_1m,
    p_write=prices_1m,
    p_out=prices_1m,
    p_reason=prices_1m,
    b_in=tokens,
    b_cached=tokens,
    b_write=tokens,
    b_out=tokens,
    b_reason=tokens,
)
def test_cost_is_the_exact_sum_of_bucket_times_price(
    p_in,
    p_cached,
    p_write,
    p_out,
    p_reason,
    b_in,
    b_cached,  # type: ignore[no-untyped-def]
    b_write,
    b_out,
    b_reason,
) -> None:
    b_reason = min(b_reason, b_out)
    card = RateCard.from_prices(
        input=p_in, cached_input=p_cached, cache_write=p_write, output=p_out, reasoning=p_reason
    )
    cost = event_cost(card, Buckets(b_in, b_cached, b_write, b_out, b_reason))
    exact = (
        b_in * p_in + b_cached * p_cached + b_write * p_write + (b_out - b_reason) * p_out + b_reason * p_reason
    ) / Decimal(1_000_000)
    # Prices with ≤ 4 decimals make every cost exact at 10 dp: nothing is rounded away.
    assert cost == exact
    assert isinstance(cost, Decimal)


def test_empty_bucket_prices_fall_back_inside_the_card() -> None:
    card = RateCard.from_prices(input=Decimal(2), output=Decimal(8))
    assert (card.cached_input, card.cache_write, card.reasoning) == (Decimal(2), Decimal(2), Decimal(8))
    assert not card.reasoning_priced_apart
    # 100 input + 50 cached + 10 write at 2; 40 output of which 30 reasoning at 8 → (320 + 320) / 1e6
    assert event_cost(card, Buckets(100, 50, 10, 40, 30)) == Decimal("0.00064")


@pytest.mark.django_db
def test_a_dated_snapshot_matches_the_alias_glob() -> None:
    add_price("gpt-4o", input="2.5", output="10", aliases=["gpt-4o-2024-*"])
    now = dt.datetime.now(dt.UTC)
    assert price_book.lookup(model="gpt-4o-2024-08-06", at=now).model == "gpt-4o"
    assert price_book.lookup(model="GPT-4O", at=now).model == "gpt-4o"
    assert price_book.lookup(model="gpt-4o-mini", at=now) is None


@pytest.mark.django_db
def test_the_price_in_force_at_the_events_time_is_used() -> None:
    change = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
    old = add_price("m1", input="1", output="2", effective_to=change)
    new = add_price("m1", input="3", output="4", effective_from=change)
    assert price_book.lookup(model="m1", at=change - dt.timedelta(seconds=1)).id == old.id
    assert price_book.lookup(model="m1", at=change).id == new.id


@pytest.mark.django_db
def test_a_named_provider_picks_its_own_price() -> None:
    add_price("llama-3", "groq", input="0.1", output="0.1")
    add_price("llama-3", "meta", input="0.2", output="0.2")
    now = dt.datetime.now(dt.UTC)
    assert price_book.lookup(model="llama-3", provider="groq", at=now).provider == "groq"
    assert price_book.lookup(model="llama-3", at=now).provider == "meta"  # the preferred provider


@pytest.mark.django_db
def test_a_model_led_by_its_provider_takes_that_providers_price() -> None:
    """Gateways name models `provider/model` (LiteLLM's `openai/gpt-4o`, OpenRouter's `anthropic/…`)."""
    add_price("llama-3", "groq", input="0.1", output="0.1")
    add_price("llama-3", "meta", input="0.2", output="0.2")
    add_price("gpt-4o", input="2.5", output="10", aliases=["gpt-4o-2024-*"])
    now = dt.datetime.now(dt.UTC)
    assert price_book.lookup(model="groq/llama-3", at=now).provider == "groq"
    assert price_book.lookup(model="Meta/Llama-3", at=now).provider == "meta"
    assert price_book.lookup(model="openai/gpt-4o-2024-08-06", at=now).model == "gpt-4o"
    assert price_book.lookup(model="openai/gpt-4o", provider="openai", at=now).model == "gpt-4o"
    # Another provider's name, a provider the book does not know, or a provider that does not sell the model:
    assert price_book.lookup(model="openai/gpt-4o", provider="azure", at=now) is None
    assert price_book.lookup(model="azure/gpt-4o", at=now) is None
    assert price_book.lookup(model="groq/gpt-4o", at=now) is None
    assert price_book.lookup(model="openai/", at=now) is None


@pytest.mark.django_db
def test_one_resolver_answers_across_price_changes_and_contract_days(
    world, prices, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """A resolver keeps each card for the span it answers (one local day, between effective dates): visiting
    instants out of order across both kinds of edge still gives each instant its own price."""
    from zoneinfo import ZoneInfo

    from metering.rating import RateCardResolver
    from tests.billing.test_contracts import CONTRACT

    change = dt.datetime(2026, 10, 15, 6, 30, tzinfo=dt.UTC)
    add_price("m-span", input="1", output="1", effective_to=change)
    add_price("m-span", input="3", output="3", effective_from=change)
    client = world.client("am")
    contract = client.post(
        "/api/v1/contracts", {**CONTRACT, "starts_on": "2026-10-20", "rate_overrides": []}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/contracts/{contract['id']}/activate").status_code == 200
    resolver = RateCardResolver(world.alpha.pk, "Asia/Shanghai")
    second = dt.timedelta(seconds=1)
    contract_day = dt.datetime(2026, 10, 20, tzinfo=ZoneInfo("Asia/Shanghai"))  # 16:00 UTC the day before
    visits = [
        (change - second, "1"),
        (change, "3"),
        (change - second, "1"),
        (change + dt.timedelta(hours=5), "3"),
        (contract_day - second, "3"),
        (contract_day, "3.3"),  # the contract's 10 % markup from its first local day
        (contract_day - second, "3"),
        (contract_day + dt.timedelta(hours=23), "3.3"),
    ]
    for at, price in visits:
        card = resolver.card(model="m-span", provider="", at=at)
        assert card is not None and card.input == Decimal(price), at
    assert resolver.card(model="m-span", provider="", at=dt.datetime(2019, 1, 1, tzinfo=dt.UTC)) is None


any_prices = st.decimals(min_value=0, max_value=1000, places=10, allow_nan=False, allow_infinity=False)


@given(
    prices=st.tuples(prices_1m, any_prices, prices_1m, prices_1m, any_prices),
    markup=st.sampled_from([Decimal(0), Decimal(10), Decimal("12.5"), Decimal("-3.333")]),
    buckets=st.tuples(tokens, tokens, tokens, tokens, tokens),
)
def test_whole_number_costing_is_the_decimal_rule_to_the_last_digit(prices, markup, buckets) -> None:  # type: ignore[no-untyped-def]
    """Cards whose prices are whole 10⁻⁸ units are costed in integers; every card gives what Σ bucket × price
    ÷ 1,000,000, rounded half up at 10 dp, gives — the same digits and exponent."""
    from decimal import ROUND_HALF_UP

    from metering.rating import COST_QUANTUM, tokens_cost

    b_in, b_cached, b_write, b_out, b_reason = buckets
    b_reason = min(b_reason, b_out)
    card = RateCard.from_prices(
        input=prices[0],
        cached_input=prices[1],
        cache_write=prices[2],
        output=prices[3],
        reasoning=prices[4],
        multiplier=1 + markup / 100,
    )
    expected = tokens_cost(
        card, input=b_in, cached_input=b_cached, cache_write=b_write, output=b_out, reasoning=b_reason
    ).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
    cost = event_cost(card, Buckets(b_in, b_cached, b_write, b_out, b_reason))
    assert str(cost) == str(expected)


def test_half_a_last_digit_rounds_up() -> None:
    card = RateCard.from_prices(input=Decimal("0.00000001"), output=Decimal("0.00000001"))
    assert card.whole_prices == (1, 1, 1, 1, 1)
    assert str(event_cost(card, Buckets(5_000, 0, 0, 0, 0))) == "1E-10"  # 0.5 × 10⁻¹⁰ → up
    assert str(event_cost(card, Buckets(4_999, 0, 0, 0, 0))) == "0E-10"
    assert str(event_cost(card, Buckets(15_000, 0, 0, 0, 0))) == "2E-10"

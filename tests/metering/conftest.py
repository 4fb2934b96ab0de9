import datetime as dt
from decimal import Decimal

import pytest

from metering.models import ModelPrice
from metering.pricebook import price_book_changed

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def add_price(
    model: str,
    provider: str = "openai",
    *,
    input: str,
    output: str,
    cached_input: str | None = None,
    cache_write: str | None = None,
    reasoning: str | None = None,
    aliases: list[str] | None = None,
    effective_from: dt.datetime = EPOCH,
    effective_to: dt.datetime | None = None,
) -> ModelPrice:
    price = ModelPrice.objects.create(
        provider=provider,
        model=model,
        aliases=aliases or [],
        effective_from=effective_from,
        effective_to=effective_to,
        input=Decimal(input),
        output=Decimal(output),
        cached_input=Decimal(cached_input) if cached_input else None,
        cache_write=Decimal(cache_write) if cache_write else None,
        reasoning=Decimal(reasoning) if reasoning else None,
        source="manual",
    )
    price_book_changed()
    return price


@pytest.fixture
def prices(db):  # type: ignore[no-untyped-def]
    return {
        "gpt-4o": add_price("gpt-4o", input="2.5", cached_input="1.25", output="10", aliases=["gpt-4o-2024-*"]),
        "claude": add_price(
            "claude-sonnet-4", "anthropic", input="3", cached_input="0.3", cache_write="3.75", output="15"
        ),
        "o3": add_price("o3", input="2", cached_input="0.5", output="8", reasoning="12"),
    }


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def flushed_rollups():  # type: ignore[no-untyped-def]
    """The usage rollups after pending deltas are folded in (as every reader sees them)."""
    from metering.models import UsageRollup
    from metering.services import rollups_flush

    rollups_flush()
    return UsageRollup.objects


def day_totals(**filters):  # type: ignore[no-untyped-def]
    """The daily usage rollups summed (a day's usage spans rows by rating, estimated and billable)."""
    from django.db.models import Sum

    from metering.models import ROLLUP_SUMS

    return flushed_rollups().filter(grain="day", **filters).aggregate(**{name: Sum(name) for name in ROLLUP_SUMS})


def event_variant(prefix: str, n: int, moment: dt.datetime) -> dict:
    """Event n of a set that covers every kind of stored event: a total that disagrees, estimated, unpriced,
    an error with latency, unicode and control characters with metadata and cache reads."""
    variants = [
        {"usage": {"prompt_tokens": 1000 + n, "completion_tokens": 7, "total_tokens": 1}},  # total mismatch
        {"usage": None, "request_chars": 400 + n, "response_chars": 90, "request_cjk_chars": 30},  # estimated
        {"model": "novel-model-x", "usage": {"input_tokens": n, "output_tokens": 1}},  # unpriced
        {
            "status": "error",
            "latency_ms": 1234,
            "provider": "openai",
            "usage": {"input_tokens": 1, "output_tokens": 0},
        },
        {
            "feature": "中文 ✓",
            "end_user": "ü\\tab\ttab",
            "session_id": "s-\n",
            "prompt_template": "t",
            "environment": "staging",
            "metadata": {"k": ["ü", 1, None, True], "big": 2**70, "f": 0.5},
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 2},
        },
    ]
    body = {
        "event_id": f"{prefix}-{n}",
        "timestamp": (moment - dt.timedelta(seconds=n)).isoformat(),
        "model": "gpt-4o",
        **variants[n % len(variants)],
    }
    return {k: v for k, v in body.items() if v is not None}

"""The Python client end to end: the real OpenAI and Anthropic SDK classes (answered by a fake provider),
wrapped by meterline-client, sending to a live Meterline server; the events land once, in the canonical
buckets of the shared vectors, and the quota check answers from real budgets."""

import sys
from pathlib import Path

import pytest

from metering.models import ModelPrice, UsageEvent
from metering.pricebook import price_book_changed
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)
from tests.shared_data import usage_vector

pytestmark = pytest.mark.django_db(transaction=True)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "tests"))

from meterline_client import Meterline, QuotaExceeded, wrap_anthropic, wrap_openai  # noqa: E402
from providers import FakeProvider  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hi"}]
BUCKETS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


@pytest.fixture
def meterline(world, live_server, prices):  # type: ignore[no-untyped-def]  # noqa: F811
    ModelPrice.objects.filter(model="claude-sonnet-4").update(aliases=["claude-sonnet-4-*"])
    ModelPrice.objects.filter(model="o3").update(aliases=["o3-*"])
    price_book_changed()
    client = Meterline(world.alpha_key_secret, base_url=live_server.url, flush_interval=0.05, flush_at_exit=0)
    yield client
    client.close()


def buckets(event: UsageEvent) -> dict[str, int]:
    return {name: getattr(event, name) for name in BUCKETS}


def test_sdk_calls_land_in_meterline_once_with_canonical_buckets(world, meterline) -> None:
    provider = FakeProvider()
    openai_client = wrap_openai(provider.openai(), meterline, feature="support")
    anthropic_client = wrap_anthropic(provider.anthropic(), meterline, feature="drafts")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="u-1")
    for _chunk in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    anthropic_client.messages.create(model="claude-sonnet-4", max_tokens=100, messages=MESSAGES)
    openai_client.responses.create(model="o3", input="Hi")
    assert meterline.flush(10)
    assert meterline.stats()["sent"] == 4 and meterline.stats()["rejected"] == 0

    events = list(UsageEvent.objects.filter(tenant=world.alpha).order_by("occurred_at"))
    assert [(e.model, e.feature, e.rating_status) for e in events] == [
        ("gpt-4o-2024-08-06", "support", "priced"),
        ("gpt-4o-2024-08-06", "support", "priced"),
        ("claude-sonnet-4-20250514", "drafts", "priced"),
        ("o3-2025-04-16", "support", "priced"),
    ]
    assert buckets(events[0]) == buckets(events[1]) == usage_vector("openai_chat")["expected"]
    assert buckets(events[2]) == usage_vector("anthropic")["expected"]
    assert buckets(events[3]) == usage_vector("openai_responses")["expected"]
    assert events[0].end_user == "u-1" and events[0].latency_ms is not None
    assert all(e.project_id == world.alpha_project.pk for e in events)


def test_a_resent_batch_is_counted_once(world, meterline) -> None:
    from django.utils import timezone

    when = timezone.now().isoformat()
    for _ in range(2):
        meterline.record("gpt-4o", {"input_tokens": 5, "output_tokens": 1}, event_id="same-call", timestamp=when)
        assert meterline.flush(10)
    assert UsageEvent.objects.filter(tenant=world.alpha, event_id="same-call").count() == 1
    assert meterline.stats()["duplicates"] == 1
    meterline.record("gpt-4o", {"input_tokens": 7, "output_tokens": 1}, event_id="same-call", timestamp=when)
    assert meterline.flush(10)
    assert meterline.stats()["conflicts"] == 1  # the same id for another call: the first one stands


def test_quota_check_follows_the_budgets(world, meterline) -> None:
    assert meterline.quota_check("gpt-4o") == "gpt-4o"
    world.daily_token_budget(1000)
    meterline.record("gpt-4o", {"input_tokens": 900, "output_tokens": 200})
    assert meterline.flush(10)
    with pytest.raises(QuotaExceeded) as blocked:
        meterline.quota_check("gpt-4o", estimated_tokens=100)
    assert blocked.value.budgets[0]["limit"] in (1000, "1000")

"""90 days of realistic demo usage through the real ingest path (rollups included).

Weekday rhythm, several models, features and end users per project, some estimated events, and a few
deliberate oddities for anomaly detection: a night-time loop at acme, one end user's spike at globex, and
an unpriced model at initech (live for the last twelve days).
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from typing import Any

from django.db.models import Max, Min
from django.utils import timezone

from metering.models import ModelPrice, UsageEvent
from metering.pricebook import price_book_changed
from metering.prices import BOOK_START, price_add
from metering.services import IngestScope, events_ingest
from tenants.models import ApiKey, Tenant

DEMO_PRICES = [
    ("openai", "gpt-4o", {"input": "2.5", "cached_input": "1.25", "output": "10"}, ["gpt-4o-2024-*"]),
    ("openai", "gpt-4o-mini", {"input": "0.15", "cached_input": "0.075", "output": "0.6"}, ["gpt-4o-mini-2024-*"]),
    ("openai", "o3", {"input": "2", "cached_input": "0.5", "output": "8"}, []),
    (
        "anthropic",
        "claude-sonnet-4",
        {"input": "3", "cached_input": "0.3", "cache_write": "3.75", "output": "15"},
        ["claude-sonnet-4-*"],
    ),
    (
        "anthropic",
        "claude-3-5-haiku",
        {"input": "0.8", "cached_input": "0.08", "cache_write": "1", "output": "4"},
        ["claude-3-5-haiku-*"],
    ),
    ("google", "gemini-2.5-flash", {"input": "0.3", "cached_input": "0.075", "output": "2.5"}, []),
    ("deepseek", "deepseek-chat", {"input": "0.27", "cached_input": "0.07", "output": "1.1"}, []),
]

# project → (requests per weekday, models with weights, features)
PROFILES: dict[str, tuple[int, list[tuple[str, int]], list[str]]] = {
    "acme/chatbot": (140, [("gpt-4o-mini", 6), ("gpt-4o", 2), ("deepseek-chat", 2)], ["support-reply", "triage"]),
    "acme/chatbot-staging": (25, [("gpt-4o-mini", 1)], ["support-reply"]),
    "acme/research": (40, [("o3", 2), ("claude-sonnet-4", 3)], ["literature-review", "code-agent"]),
    "globex/search": (110, [("gemini-2.5-flash", 5), ("gpt-4o-mini", 2)], ["rerank", "answer"]),
    "globex/copilot": (60, [("claude-sonnet-4", 3), ("claude-3-5-haiku", 4)], ["email-draft", "summary"]),
    "initech/tps": (45, [("gpt-4o", 2), ("gpt-4o-mini", 3), ("mistral-house-7b", 1)], ["tps-summary"]),
    "umbrella/translate": (70, [("claude-3-5-haiku", 3), ("gpt-4o", 1)], ["translate-ja-en", "translate-en-ja"]),
    "meterline-lab/playground": (15, [("gpt-4o-mini", 1), ("o3", 1)], ["experiments"]),
}


def _ensure_prices() -> None:
    for provider, model, prices, aliases in DEMO_PRICES:
        if not ModelPrice.objects.filter(provider=provider, model=model).exists():
            from decimal import Decimal

            price_add(
                actor=None,
                provider=provider,
                model=model,
                effective_from=BOOK_START,
                aliases=aliases,
                prices={k: Decimal(v) for k, v in prices.items()},
                rerate=False,
            )
    price_book_changed()


def _usage(rng: random.Random, model: str) -> dict[str, Any]:
    prompt = int(rng.lognormvariate(7.2, 0.8))
    output = int(rng.lognormvariate(5.6, 0.7))
    if model.startswith("claude"):
        cached = int(prompt * rng.choice([0, 0, 0.6, 0.8]))
        return {
            "input_tokens": prompt - cached,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": rng.choice([0, 0, 0, 1200]),
            "output_tokens": output,
        }
    if model.startswith("gemini"):
        return {"promptTokenCount": prompt, "candidatesTokenCount": output}
    reasoning = int(output * 0.6) if model == "o3" else 0
    cached = int(prompt * rng.choice([0, 0, 0.5]))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output + reasoning,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def seed(*, days: int = 90, scale: float = 1.0, rng_seed: int = 2026) -> int:
    """Ingest `days` of usage ending now; skipped when the demo already has usage. Returns events stored."""
    if UsageEvent.objects.exists():
        return 0
    _ensure_prices()
    rng = random.Random(rng_seed)  # noqa: S311  (demo data, reproducible by design)
    now = timezone.now()
    stored = 0
    for where, (per_day, models, features) in PROFILES.items():
        tenant_slug, project_slug = where.split("/")
        tenant = Tenant.objects.get(slug=tenant_slug)
        key = ApiKey.objects.filter(tenant=tenant, project__slug=project_slug).select_related("tenant", "project")[0]
        zone = zoneinfo.ZoneInfo(tenant.timezone)
        users = [f"{tenant_slug}-user-{n:03d}" for n in range(1, 40)]
        model_pool = [m for m, weight in models for _ in range(weight)]
        for day_offset in range(days, -1, -1):
            day = (now - dt.timedelta(days=day_offset)).astimezone(zone).date()
            weekday_factor = 1.0 if day.weekday() < 5 else 0.3
            growth = 0.7 + 0.6 * (days - day_offset) / days
            count = max(1, int(per_day * weekday_factor * growth * scale * rng.uniform(0.85, 1.15)))
            events = []
            for n in range(count):
                hour = min(23, max(0, int(rng.gauss(14, 3))))
                moment = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=zone)
                if moment > now:
                    continue
                model = rng.choice(model_pool)
                if model == "mistral-house-7b" and day_offset > 12:
                    model = "gpt-4o-mini"  # the in-house model went live less than two weeks ago: unpriced
                event: dict[str, Any] = {
                    "event_id": f"demo-{where}-{day:%Y%m%d}-{n}",
                    "timestamp": moment.isoformat(),
                    "model": model,
                    "feature": rng.choice(features),
                    "end_user": rng.choice(users),
                    "session_id": f"s-{rng.randrange(10**6)}",
                    "prompt_template": f"{rng.choice(features)}-v2",
                    "latency_ms": int(rng.lognormvariate(6.5, 0.5)),
                    "usage": _usage(rng, model),
                }
                if rng.random() < 0.02:  # a client that lost the usage: estimated from characters
                    event.pop("usage")
                    event["request_chars"] = rng.randrange(500, 8000)
                    event["response_chars"] = rng.randrange(100, 3000)
                if rng.random() < 0.01:
                    event["status"] = "error"
                events.append(event)
            events += _oddities(where, day, zone, now, rng)
            for start in range(0, len(events), 1000):
                batch = events[start : start + 1000]
                arrival = max(dt.datetime.fromisoformat(e["timestamp"]) for e in batch) + dt.timedelta(seconds=1)
                result = events_ingest(
                    scope=IngestScope(kind="project_key", api_key=key), raw_events=batch, now=min(arrival, now)
                )
                stored += result.accepted
        # The key has been in use as long as its usage: created before its first event, last used at its last.
        used = UsageEvent.objects.filter(api_key=key).aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
        if used["first"] is not None:
            ApiKey.objects.filter(pk=key.pk).update(
                created_at=min(key.created_at, used["first"] - dt.timedelta(days=1)), last_used_at=used["last"]
            )
    return stored


def _oddities(where: str, day: dt.date, zone: zoneinfo.ZoneInfo, now: dt.datetime, rng: random.Random) -> list:
    age = (now.astimezone(zone).date() - day).days
    events: list[dict[str, Any]] = []
    if where == "acme/chatbot" and age in (2, 1):
        # A retry loop burning tokens between 01:00 and 04:00.
        for n in range(180):
            moment = dt.datetime.combine(day, dt.time(1 + n // 60, n % 60), tzinfo=zone)
            events.append(
                {
                    "event_id": f"demo-loop-{day:%Y%m%d}-{n}",
                    "timestamp": moment.isoformat(),
                    "model": "gpt-4o",
                    "feature": "triage",
                    "end_user": "acme-batch-bot",
                    "prompt_template": "triage-retry",
                    "usage": {"prompt_tokens": 6000, "completion_tokens": 900},
                }
            )
    if where == "globex/search" and age == 3:
        for n in range(120):
            moment = dt.datetime.combine(day, dt.time(15, n % 60, n // 60), tzinfo=zone)
            events.append(
                {
                    "event_id": f"demo-spike-{day:%Y%m%d}-{n}",
                    "timestamp": moment.isoformat(),
                    "model": "gemini-2.5-flash",
                    "feature": "answer",
                    "end_user": "globex-user-007",
                    "usage": {"promptTokenCount": 30000, "candidatesTokenCount": 2000},
                }
            )
    return [e for e in events if dt.datetime.fromisoformat(e["timestamp"]) <= now]


def seed_statement() -> str | None:
    """OpenAI's completions usage export for last month as the provider would send it (API JSON), built from
    the demo's own OpenAI usage with two deliberate differences — one day the provider counted a quarter more
    output of gpt-4o, and calls Meterline never saw (the organisation's key used outside the gateway) — and
    imported for finance to reconcile."""
    import json
    from collections import defaultdict

    from django.db.models import Sum
    from django.db.models.functions import TruncDate

    from metering.models import ProviderStatement, UsageRollup
    from metering.reconciliation import statement_import

    if ProviderStatement.objects.exists():
        return None
    today = timezone.now().date()
    end = today.replace(day=1)
    start = (end - dt.timedelta(days=1)).replace(day=1)
    rows = (
        UsageRollup.objects.filter(
            grain=UsageRollup.Grain.HOUR,
            bucket__gte=dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
            bucket__lt=dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC),
            model__in=[model for provider, model, _prices, _aliases in DEMO_PRICES if provider == "openai"],
        )
        .annotate(utc_day=TruncDate("bucket", tzinfo=dt.UTC))
        .values("utc_day", "model")
        .annotate(i=Sum("input_tokens"), c=Sum("cached_input_tokens"), o=Sum("output_tokens"), n=Sum("requests"))
        .order_by("utc_day", "model")
    )
    buckets: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        output = row["o"]
        if row["utc_day"].day == 12 and row["model"] == "gpt-4o":
            output = int(output * 1.25)  # the provider counted more than was metered
        buckets[row["utc_day"]].append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": row["i"] + row["c"],
                "input_cached_tokens": row["c"],
                "output_tokens": output,
                "num_model_requests": row["n"],
                "project_id": "proj_demo",
                "model": row["model"],
            }
        )
    if not buckets:
        return None
    missing = min(buckets) + dt.timedelta(days=19)
    if missing in buckets:
        buckets[missing].append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": 52_000,
                "input_cached_tokens": 0,
                "output_tokens": 8_000,
                "num_model_requests": 40,
                "project_id": "proj_demo",
                "model": "gpt-4o-audio-preview",
            }
        )
    document = {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()),
                "end_time": int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp()),
                "results": results,
            }
            for day, results in sorted(buckets.items())
        ],
        "has_more": False,
        "next_page": None,
    }
    statement = statement_import(
        actor=None, content=json.dumps(document).encode(), filename=f"openai-usage-{start:%Y-%m}.json"
    )
    return f"{statement.provider} {statement.period_start}–{statement.period_end}: {statement.line_count} rows"

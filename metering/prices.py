"""Price book writes: effective-dated rows, never edits of history; imports; re-rating."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min

from core.audit import audit_record, audit_snapshot
from metering.models import ModelPrice, UsageEvent
from metering.pricebook import price_book_changed

PRICE_FIELDS = ("input", "cached_input", "cache_write", "output", "reasoning", "per_request")
BOOK_START = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
RERATE_LOCK = 0x6D6C7274  # the advisory lock re-ratings take in turn, per chunk ("mlrt")


class PriceRuleViolation(Exception):
    pass


PRICE_QUANTUM = Decimal("1E-8")  # the price book's precision (8 decimals per 1M tokens)


def _quantized(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(PRICE_QUANTUM)


def _same_prices(row: ModelPrice, prices: dict[str, Decimal | None]) -> bool:
    return all(_quantized(getattr(row, name)) == _quantized(prices.get(name)) for name in PRICE_FIELDS)


def price_end_problem(
    *, provider: str, model: str, effective_from: dt.datetime, effective_to: dt.datetime | None, other_starts: Any = ()
) -> str | None:
    """Why a row given with an end (an exported CSV carries each row's) cannot be taken as it is, or None. The book
    ends every row where the model's next row starts; an end given is accepted when it says the same — the next
    start among `other_starts` (the rest of the file being imported) and the rows already in the book."""
    if effective_to is None:
        return None
    starts = {start for start in other_starts if start > effective_from}
    starts.update(
        ModelPrice.objects.filter(provider=provider, model=model, effective_from__gt=effective_from).values_list(
            "effective_from", flat=True
        )
    )
    following = min(starts, default=None)
    if following == effective_to:
        return None
    where = f"its next price starts {following:%Y-%m-%d %H:%M}" if following else "it has no later price"
    return (
        f"A price is in force until the model's next price starts ({where}): leave effective_to empty, "
        "or add the row that starts then."
    )


@transaction.atomic
def price_add(
    *,
    actor: Any,
    provider: str,
    model: str,
    prices: dict[str, Decimal | None],
    effective_from: dt.datetime,
    aliases: list[str] | None = None,
    source: str = ModelPrice.Source.MANUAL,
    rerate: bool = True,
) -> ModelPrice:
    """A new price row. The row in force until then ends where this one starts; a row starting at
    the same moment with other prices is refused (history is not edited). Without `aliases`, the row keeps the
    model's (those of the row in force before it). Starting in the past, it prices again the events it now
    prices (after the commit: `price_window_rerate`)."""
    if connection.vendor == "postgresql":  # the model's rows may not exist yet to be locked: its name is
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"meterline-price:{provider}/{model}"])
    rows = list(
        ModelPrice.objects.select_for_update().filter(provider=provider, model=model).order_by("effective_from")
    )
    clash = next((r for r in rows if r.effective_from == effective_from), None)
    if clash is not None:
        raise PriceRuleViolation(
            f"{provider}/{model} already has a price starting {effective_from:%Y-%m-%d %H:%M}; "
            "add a row with a later effective_from instead."
        )
    later = [r for r in rows if r.effective_from > effective_from]
    effective_to = later[0].effective_from if later else None
    if aliases is None:  # a model's other names stay its names: the row before it (or after) gives them
        earlier = [r for r in rows if r.effective_from < effective_from]
        base = earlier[-1] if earlier else (later[0] if later else None)
        aliases = list(base.aliases or []) if base is not None else []
    for row in rows:
        if row.effective_from < effective_from and (row.effective_to is None or row.effective_to > effective_from):
            before = audit_snapshot(row)
            row.effective_to = effective_from
            row.save(update_fields=["effective_to"])
            audit_record(actor=actor, action="update", instance=row, before=before, after=audit_snapshot(row))
    price = ModelPrice.objects.create(
        provider=provider,
        model=model,
        aliases=aliases or [],
        effective_from=effective_from,
        effective_to=effective_to,
        source=source,
        **{name: prices.get(name) for name in PRICE_FIELDS},
    )
    audit_record(actor=actor, action="create", instance=price, after=audit_snapshot(price))
    price_book_changed()
    if rerate:
        price_id = price.pk
        transaction.on_commit(lambda: schedule_rerate(model, [price_id]))
    return price


def schedule_rerate(model: str, price_ids: list[int] | None = None) -> None:
    """Re-rate the unpriced events now, and once more after every process has picked up the new price book
    (each checks its version every METERLINE_PRICEBOOK_CHECK_SECONDS): an event rated in that window by a process
    that did not know the price yet is priced then, not only at the hourly sweep. With `price_ids`, the same for
    the priced events those rows now price (`price_window_rerate`, one task for all of them)."""
    from metering.tasks import rerate_price_window, rerate_unpriced

    later = math.ceil(settings.METERLINE_PRICEBOOK_CHECK_SECONDS) + 1
    rerate_unpriced.delay(model)
    rerate_unpriced.apply_async((model,), countdown=later)
    if price_ids:
        rerate_price_window.delay(price_ids)
        rerate_price_window.apply_async((price_ids,), countdown=later)


def price_window_rerate(price_ids: int | Iterable[int], *, now: dt.datetime | None = None) -> RerateResult:
    """Price again the events rows now price that were priced before they were there: a row starting in the past
    (a price change entered late, or appended by an import at its own past start) or an alias that gives events of
    other names their own row. Looks at the events of the models each row matches (its name, aliases, globs — as
    the price book matches them) between its start and its end (or now), with one read of the hourly rollups for
    all the rows; a billed month's events keep their price (`events_rerate`)."""
    from django.utils import timezone

    from metering.models import UsageRollup
    from metering.pricebook import price_book_as_stored
    from metering.services import rollups_flush

    now = now or timezone.now()
    wanted = [price_ids] if isinstance(price_ids, int) else list(price_ids)
    prices = [p for p in ModelPrice.objects.filter(pk__in=wanted) if p.effective_from < now]
    if not prices:
        return RerateResult()
    rollups_flush()  # the models seen come from the hourly rollups
    hour = dt.timedelta(hours=1)  # a bucket starts up to an hour before its events; events ingested while this runs
    spans = {p.pk: (p.effective_from - hour, min(p.effective_to or now, now) + hour) for p in prices}
    seen = (
        UsageRollup.objects.filter(
            grain=UsageRollup.Grain.HOUR,
            bucket__gte=min(start for start, _ in spans.values()),
            bucket__lt=max(end for _, end in spans.values()),
        )
        .values("tenant_id", "model")
        .annotate(first=Min("bucket"), last=Max("bucket"))
    )
    book = price_book_as_stored()  # not as this process last checked it
    windows: dict[str, tuple[dt.datetime, dt.datetime | None]] = {}
    tenants: dict[str, set[int]] = {}
    for found in seen:
        name, matching = found["model"], {row.id for row in book.candidates(found["model"])}
        for price in prices:
            start, end = spans[price.pk]
            if price.pk not in matching or found["first"] >= end or found["last"] < start:
                continue
            earlier = windows.get(name)
            windows[name] = (
                (price.effective_from, price.effective_to)
                if earlier is None
                else (
                    min(earlier[0], price.effective_from),
                    None if earlier[1] is None or price.effective_to is None else max(earlier[1], price.effective_to),
                )
            )
            tenants.setdefault(name, set()).add(found["tenant_id"])
    by_window: dict[tuple[dt.datetime, dt.datetime | None], list[str]] = {}
    for name, window in windows.items():
        by_window.setdefault(window, []).append(name)
    result = RerateResult()
    for (since, until), models in sorted(by_window.items(), key=lambda item: item[0][0]):
        since = _unbilled_since(since, set().union(*(tenants[name] for name in models)))
        part = events_rerate(models=sorted(models), start=since, end=until, only_unpriced=False)
        for field in ("examined", "changed", "still_unpriced", "billed"):
            setattr(result, field, getattr(result, field) + getattr(part, field))
    return result


def _unbilled_since(since: dt.datetime, tenant_ids: set[int]) -> dt.datetime:
    """The earliest moment from `since` on that one of these tenants has not been billed for (a billed month's
    priced events are not re-priced: no need to read them)."""
    from billing.bills import billed_until

    ends = billed_until(tenant_ids)
    if len(ends) < len(tenant_ids):  # one has no bill yet
        return since
    return max(since, min(ends.values(), default=since))


@transaction.atomic
def price_update_aliases(*, actor: Any, price: ModelPrice, aliases: list[str]) -> ModelPrice:
    before = audit_snapshot(price)
    price.aliases = aliases
    price.save(update_fields=["aliases"])
    audit_record(actor=actor, action="update", instance=price, before=before, after=audit_snapshot(price))
    price_book_changed()
    price_id = price.pk
    transaction.on_commit(lambda: schedule_rerate("", [price_id]))
    return price


@dataclass
class RerateResult:
    examined: int = 0
    changed: int = 0
    still_unpriced: int = 0
    billed: int = 0  # priced events of billed months, left at the price their bill charged


def events_rerate(
    *,
    tenant_id: int | None = None,
    model: str | None = None,
    models: list[str] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    only_unpriced: bool = True,
    batch_size: int = 2000,
) -> RerateResult:
    """Price events again with today's book (and contracts); rollups follow in the same transaction, budget
    counters (and the thresholds the new costs cross) once it commits.
    Safe to run twice: an event whose cost does not change is left alone. A priced event of a billed month keeps
    the price its bill charged (the invoice and the usage under it stay equal); an unpriced one was never billed
    (a month does not close over unpriced events) and is priced — one arriving late is billed as an adjustment."""
    from billing.bills import billed_until
    from metering.adapters import Buckets
    from metering.rating import RateCardResolver, event_cost
    from metering.services import budgets_after_commit, rollups_apply

    events = UsageEvent.objects.all()
    if only_unpriced:
        events = events.filter(rating_status=UsageEvent.RatingStatus.UNPRICED)
    if tenant_id:
        events = events.filter(tenant_id=tenant_id)
    if model:
        events = events.filter(model=model)
    if models is not None:
        events = events.filter(model__in=models)
    if start:
        events = events.filter(occurred_at__gte=start)
    if end:
        events = events.filter(occurred_at__lt=end)
    result = RerateResult()
    last_id = 0
    resolvers: dict[int, RateCardResolver] = {}
    columns = [
        "id",
        "tenant_id",
        "project_id",
        "api_key_id",
        "model",
        "provider",
        "feature",
        "environment",
        "end_user",
        "occurred_at",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "status",
        "cost",
        "price_id",
        "rating_status",
        "estimated",
        "billable",
    ]
    # Unpriced events are few and indexed: read in id order. Priced ones (--all, a price entered late) may be
    # millions: read in the primary key's order, each chunk from where the last one stopped (ordering them by id
    # read and sorted the whole range again for every chunk: 12.0 s to read 120,000 events of one model among 2 M
    # in their month, 1.3 s now).
    last_key: tuple[Any, ...] | None = None
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # One re-rating writes at a time (a new price starts the unpriced sweep and its window together,
                # on different workers, over the same events): each chunk reads its events as the last one left
                # them, so each change is made — and counted in rollups and budgets — once.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RERATE_LOCK])
            if only_unpriced or connection.vendor != "postgresql":  # the embedded demo's few events: id order
                page = events.filter(id__gt=last_id).order_by("id")
            else:
                page = events.order_by("tenant_id", "occurred_at", "id")
                if last_key is not None:
                    page = page.extra(where=["(tenant_id, occurred_at, id) > (%s, %s, %s)"], params=list(last_key))
            chunk = list(page.values(*columns)[:batch_size])
            if not chunk:
                break
            tenant_ids = sorted({facts["tenant_id"] for facts in chunk})
            if connection.vendor == "postgresql":
                # A month closes under its tenant's row lock: one closing now waits for this chunk, or this chunk
                # for it — and then sees it billed.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT id FROM tenants_tenant WHERE id = ANY(%s) ORDER BY id FOR SHARE", [tenant_ids]
                    )
            billed = billed_until(tenant_ids)
            last_id = chunk[-1]["id"]
            last_key = (chunk[-1]["tenant_id"], chunk[-1]["occurred_at"], chunk[-1]["id"])
            added, removed, moved_to, moved_from = [], [], [], []
            with connection.cursor() as cursor:
                for facts in chunk:
                    result.examined += 1
                    resolver = resolvers.get(facts["tenant_id"])
                    if resolver is None:
                        from tenants.models import Tenant

                        zone = Tenant.objects.values_list("timezone", flat=True).get(pk=facts["tenant_id"])
                        resolver = resolvers[facts["tenant_id"]] = RateCardResolver(facts["tenant_id"], zone)
                    until = billed.get(facts["tenant_id"])
                    if facts["rating_status"] == "priced" and until is not None and facts["occurred_at"] < until:
                        result.billed += 1
                        continue
                    card = resolver.card(model=facts["model"], provider=facts["provider"], at=facts["occurred_at"])
                    if card is None:
                        result.still_unpriced += 1
                        continue
                    buckets = Buckets(
                        facts["input_tokens"],
                        facts["cached_input_tokens"],
                        facts["cache_write_tokens"],
                        facts["output_tokens"],
                        facts["reasoning_tokens"],
                    )
                    cost = event_cost(card, buckets)
                    provider = facts["provider"] or card.provider  # an event that named none takes the book's
                    repriced = not (
                        cost == facts["cost"]
                        and facts["rating_status"] == "priced"
                        and facts["price_id"] == card.price_id
                    )
                    if not repriced and provider == facts["provider"]:
                        continue
                    cursor.execute(
                        "UPDATE metering_usageevent SET cost = %s, price_id = %s, rating_status = 'priced', "
                        "provider = %s WHERE tenant_id = %s AND occurred_at = %s AND id = %s",
                        [cost, card.price_id, provider, facts["tenant_id"], facts["occurred_at"], facts["id"]],
                    )
                    if cursor.rowcount != 1:  # gone since it was read (an estimate corrected meanwhile)
                        continue
                    now_rated = {
                        **facts,
                        "cost": cost,
                        "rating_status": "priced",
                        "price_id": card.price_id,
                        "provider": provider,
                    }
                    # The rollups keep the provider and the price row: the event moves between buckets even when
                    # only its provider was named.
                    moved_from.append(facts)
                    moved_to.append(now_rated)
                    if repriced:
                        removed.append(facts)
                        added.append(now_rated)
                        result.changed += 1
                rollups_apply(cursor, moved_to, moved_from)
                if added:  # budgets follow the new costs once committed, thresholds crossed included
                    budgets_after_commit(added, removed)
    return result


def genai_prices_rows() -> list[dict[str, Any]]:
    """The genai-prices snapshot shipped in the package, as price-book rows (no network)."""
    from genai_prices.data import providers
    from genai_prices.types import (
        ClauseContains,
        ClauseEndsWith,
        ClauseEquals,
        ClauseOr,
        ClauseStartsWith,
        StartDateConstraint,
        TieredPrices,
    )
    from genai_prices.types import ModelPrice as GenaiPrice

    def aliases_of(match: Any) -> list[str]:
        if isinstance(match, ClauseEquals):
            return [match.equals]
        if isinstance(match, ClauseStartsWith):
            return [match.starts_with + "*"]
        if isinstance(match, ClauseEndsWith):
            return ["*" + match.ends_with]
        if isinstance(match, ClauseContains):
            return ["*" + match.contains + "*"]
        if isinstance(match, ClauseOr):
            return [alias for clause in match.or_ for alias in aliases_of(clause)]
        return []  # regular expressions and AND-clauses have no glob equivalent

    def decimal(value: Any) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, TieredPrices):
            return Decimal(value.base)  # the base tier; long-context tiers are not modelled
        return Decimal(value)

    def card(prices: GenaiPrice) -> dict[str, Decimal | None] | None:
        values = prices.__dict__
        if values.get("input_mtok") is None or values.get("output_mtok") is None:
            return None
        requests = decimal(values.get("requests_kcount"))
        return {
            "input": decimal(values.get("input_mtok")),
            "output": decimal(values.get("output_mtok")),
            "cached_input": decimal(values.get("cache_read_mtok")),
            "cache_write": decimal(values.get("cache_write_mtok")),
            "reasoning": decimal(values.get("output_reasoning_mtok")),
            "per_request": requests / 1000 if requests is not None else None,
        }

    rows = []
    for provider in providers:
        for model in provider.models:
            aliases = sorted({a for a in aliases_of(model.match) if a.lower() != model.id.lower()})
            if isinstance(model.prices, GenaiPrice):
                periods = [(BOOK_START, model.prices)]
            else:
                periods = []
                for conditional in model.prices:
                    constraint = conditional.constraint
                    if constraint is None:
                        periods.append((BOOK_START, conditional.prices))
                    elif isinstance(constraint, StartDateConstraint):
                        start = dt.datetime.combine(constraint.start_date, dt.time(), tzinfo=dt.UTC)
                        periods.append((start, conditional.prices))
                    # time-of-day prices (off-peak discounts) are not modelled: the standard price applies
            for start, prices in sorted(periods, key=lambda p: p[0]):
                values = card(prices)
                if values is not None:
                    rows.append(
                        {
                            "provider": provider.id,
                            "model": model.id,
                            "aliases": aliases,
                            "effective_from": start,
                            "prices": values,
                        }
                    )
    return rows


@dataclass
class ImportResult:
    created: int = 0
    unchanged: int = 0


def prices_import(*, actor: Any, rows: list[dict[str, Any]], source: str, now: dt.datetime) -> ImportResult:
    """Idempotent. A row whose prices are already in force is skipped; a price starting after the book's
    latest row for that model is appended at its own start, and the events since that start, if it is past, are
    priced with it (after the commit, one `price_window_rerate` for the whole import); a change to a period
    already in the book applies from now on — the past is never re-priced silently."""
    result = ImportResult()
    past: list[int] = []
    existing: dict[tuple[str, str], list[ModelPrice]] = {}
    for price in ModelPrice.objects.order_by("effective_from"):
        existing.setdefault((price.provider, price.model), []).append(price)
    for row in sorted(rows, key=lambda r: (r["provider"], r["model"], r["effective_from"])):
        key = (row["provider"], row["model"])
        history = existing.setdefault(key, [])
        start, prices = row["effective_from"], row["prices"]
        if history:
            in_force = [p for p in history if p.effective_from <= start] or history[:1]
            latest = history[-1]
            if _same_prices(in_force[-1], prices) or _same_prices(latest, prices):
                result.unchanged += 1
                continue
            effective_from = (
                start if start > latest.effective_from else max(now, latest.effective_from + dt.timedelta(seconds=1))
            )
        else:
            effective_from = start
        added = price_add(
            actor=actor,
            provider=row["provider"],
            model=row["model"],
            prices=prices,
            effective_from=effective_from,
            aliases=row.get("aliases"),
            source=source,
            rerate=False,
        )
        history.append(added)
        result.created += 1
        if added.effective_from < now:
            past.append(added.pk)
    transaction.on_commit(lambda: schedule_rerate("", past))
    return result

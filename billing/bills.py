"""Monthly bills (SPEC §7): a period's billable usage grouped by (model, token bucket, unit price), FX
selection, split bills, adjustments for closed months, closing (idempotent, crash-safe) and the live
preview of the open month with a month-end forecast. The arithmetic itself is `bill_math.bill_compute`."""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.text import slugify

from billing.bill_math import MILLION, BillTotals, Terms, UsageGroup, bill_compute
from billing.contracts import ContractTerms, contracts_in_force, terms_of
from billing.fx import PRICE_CURRENCY, fx_rate_in_force
from billing.models import Bill, BillLine, CloseBlock, Contract
from billing.money import quantize_money
from core.audit import audit_record
from metering.models import ModelPrice, UsageEvent
from metering.pricebook import price_book
from metering.rating import RateCard, book_card, override_card
from metering.selectors import billable_unpriced, billable_usage, billable_usage_exists
from metering.services import rollups_flush
from tenants.models import Department, Project, Tenant

logger = logging.getLogger(__name__)

FX_MAX_AGE_DAYS = 7
# Events are accepted up to 35 days after they happened (SPEC §5.1): closed months this far back can still
# receive late events or corrections, so each close looks at them for adjustments.
ADJUSTMENT_LOOKBACK_MONTHS = 3
PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class BillBlocked(Exception):
    """The month cannot close (or be previewed) for a reason finance must act on."""

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


# --- periods -------------------------------------------------------------------------------------------


def period_parse(text: str) -> dt.date:
    """The first day of a month written YYYY-MM, between the years 2000 and 2100 (the months a bill can be for; a
    close also reaches the months around it); ValueError otherwise."""
    match = PERIOD_PATTERN.match(text or "")
    if not match or not 2000 <= int(match.group(1)) <= 2100:
        raise ValueError("A month as YYYY-MM, 2000–2100.")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def period_label(period: dt.date) -> str:
    return f"{period:%Y-%m}"


def month_add(period: dt.date, months: int) -> dt.date:
    index = period.year * 12 + period.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_last_day(period: dt.date) -> dt.date:
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


def period_bounds(period: dt.date, zone_name: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the month in the tenant's time zone, as aware datetimes."""
    zone = zoneinfo.ZoneInfo(zone_name)
    start = dt.datetime.combine(period, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(month_add(period, 1), dt.time(), tzinfo=zone)
    return start, end


def billed_until(tenant_ids: Any) -> dict[int, dt.datetime]:
    """The end of each tenant's latest billed month (months close in order), in its time zone; a tenant without a
    bill yet is not in the answer."""
    latest = dict(
        Bill.objects.filter(tenant_id__in=tenant_ids)
        .exclude(status=Bill.Status.OPEN)
        .values_list("tenant_id")
        .annotate(period=Max("period"))
    )
    zones = dict(Tenant.objects.filter(id__in=latest).values_list("id", "timezone"))
    return {tenant_id: period_bounds(period, zones[tenant_id])[1] for tenant_id, period in latest.items()}


def current_period(tenant: Tenant, now: dt.datetime | None = None) -> dt.date:
    local = (now or timezone.now()).astimezone(zoneinfo.ZoneInfo(tenant.timezone))
    return local.date().replace(day=1)


# --- grouping usage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitGroup:
    key: str  # "" | "department:<id>" | "department:none" | "project:<id>"
    label: str
    suffix: str  # appended to the bill number
    department_id: int | None = None
    project_id: int | None = None


TENANT_GROUP = SplitGroup(key="", label="", suffix="")


class _Splitter:
    def __init__(self, tenant: Tenant, split: str) -> None:
        self.split = split
        self.projects = {p.pk: p for p in Project.objects.filter(tenant=tenant)}
        self.departments = {d.pk: d for d in Department.objects.filter(tenant=tenant)}

    def group(self, project_id: int | None) -> SplitGroup:
        project = self.projects.get(project_id) if project_id is not None else None
        if self.split == Contract.InvoiceSplit.PROJECT and project is not None:
            return SplitGroup(f"project:{project.pk}", project.name, project.slug, project_id=project.pk)
        if self.split == Contract.InvoiceSplit.DEPARTMENT:
            department = self.departments.get(project.department_id) if project and project.department_id else None
            if department is None:
                return SplitGroup("department:none", "No department", "no-department")
            suffix = slugify(department.code or department.name) or str(department.pk)
            return SplitGroup(f"department:{department.pk}", department.name, suffix, department_id=department.pk)
        return TENANT_GROUP

    def by_key(self, key: str) -> SplitGroup:
        kind, _, ident = key.partition(":")
        if kind == "project" and ident.isdigit():
            return self.group(int(ident)) if self.split == Contract.InvoiceSplit.PROJECT else TENANT_GROUP
        if kind == "department" and self.split == Contract.InvoiceSplit.DEPARTMENT:
            if ident.isdigit() and int(ident) in self.departments:
                department = self.departments[int(ident)]
                suffix = slugify(department.code or department.name) or ident
                return SplitGroup(key, department.name, suffix, department_id=department.pk)
            return SplitGroup("department:none", "No department", "no-department")
        return TENANT_GROUP


@dataclass
class _Quantity:
    quantity: int = 0
    estimated: int = 0


# (group key, model, bucket, unit price) → tokens
GroupedUsage = dict[tuple[str, str, str, Decimal], _Quantity]


@dataclass
class PeriodUsage:
    groups: GroupedUsage = field(default_factory=lambda: defaultdict(_Quantity))
    # (project id, model) → exact USD, for the by-project view of a bill
    by_project: dict[tuple[int, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    tokens_by_project: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))


def _segments(
    period: dt.date, zone_name: str, contracts: list[Contract]
) -> list[tuple[dt.datetime, dt.datetime, ContractTerms | None]]:
    """The month cut where the contract in force changes (rating follows the contract of the local day)."""
    terms = [terms_of(c) for c in contracts]
    zone = zoneinfo.ZoneInfo(zone_name)
    segments: list[tuple[dt.datetime, dt.datetime, ContractTerms | None]] = []
    day = period
    end = month_add(period, 1)
    while day < end:
        in_force = next((t for t in terms if t.covers(day)), None)
        start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        stop = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        if segments and segments[-1][2] is in_force:
            segments[-1] = (segments[-1][0], stop, in_force)
        else:
            segments.append((start, stop, in_force))
        day += dt.timedelta(days=1)
    return segments


def _bucket_quantities(card: RateCard, row: Any) -> list[tuple[str, Decimal, int]]:
    output = row["output"] or 0
    reasoning = row["reasoning"] or 0
    buckets = [
        ("input", card.input, row["input"] or 0),
        ("cached_input", card.cached_input, row["cached_input"] or 0),
        ("cache_write", card.cache_write, row["cache_write"] or 0),
    ]
    if card.reasoning_priced_apart:
        buckets += [("output", card.output, output - reasoning), ("reasoning", card.reasoning, reasoning)]
    else:
        buckets.append(("output", card.output, output))
    return buckets


def period_usage(tenant: Tenant, period: dt.date, splitter: _Splitter, contracts: list[Contract]) -> PeriodUsage:
    """Billable, priced usage of the month, grouped by split group × model × bucket × unit price. The unit
    price is the contract's card for the model on the event's local day (override, or book × markup). Read from
    the daily rollups, which keep the price-book row each event was rated with."""
    usage = PeriodUsage()
    prices: dict[int, ModelPrice] = {}
    for start, stop, terms in _segments(period, tenant.timezone, contracts):
        rows = billable_usage(tenant_id=tenant.pk, start=start, stop=stop)
        missing = {row["price_id_value"] for row in rows if row["price_id_value"]} - prices.keys()
        if missing:
            prices.update(ModelPrice.objects.in_bulk(missing))
        for row in rows:
            card = override_card(terms, model=row["model"], provider=row["provider"])
            if card is None:
                book_row: Any = prices.get(row["price_id_value"]) if row["price_id_value"] else None
                if book_row is None:  # rated under an override that no longer applies: the book row of its day
                    book_row = price_book.lookup(model=row["model"], provider=row["provider"] or None, at=row["first"])
                if book_row is None:
                    raise BillBlocked(
                        "unpriced_events",
                        f"The model {row['model']} has no price for {period_label(period)}.",
                        {"models": [row["model"]]},
                    )
                card = override_card(terms, model=book_row.model, provider=row["provider"]) or book_card(
                    book_row, markup_percent=terms.markup_percent if terms else Decimal(0)
                )
            group = splitter.group(row["project_id"])
            for bucket, unit_price, quantity in _bucket_quantities(card, row):
                if not quantity:
                    continue
                cell = usage.groups[(group.key, row["model"], bucket, unit_price)]
                cell.quantity += quantity
                if row["estimated"]:
                    cell.estimated += quantity
                key = (row["project_id"], row["model"])
                usage.by_project[key] += quantity * unit_price / MILLION
                usage.tokens_by_project[key] += quantity
    return usage


def unpriced_models(tenant: Tenant, start: dt.datetime, stop: dt.datetime) -> list[tuple[str, int]]:
    rows = (
        UsageEvent.objects.filter(
            tenant_id=tenant.pk,
            billable=True,
            rating_status=UsageEvent.RatingStatus.UNPRICED,
            occurred_at__gte=start,
            occurred_at__lt=stop,
        )
        .order_by()
        .values("model")
        .annotate(events=Count("id"))
        .order_by("model")
    )
    return [(row["model"], row["events"]) for row in rows]


def _refuse_unpriced(tenant: Tenant, period: dt.date, start: dt.datetime, stop: dt.datetime) -> None:
    models = unpriced_models(tenant, start, stop)
    if models:
        listed = ", ".join(f"{model} ({count} events)" for model, count in models)
        raise BillBlocked(
            "unpriced_events",
            f"{tenant.slug} {period_label(period)} cannot close: events of models without a price: {listed}. "
            "Add the prices (platform admin, unpriced queue); the events are re-rated and the month can close.",
            {"models": [model for model, _count in models]},
        )


# --- terms and FX --------------------------------------------------------------------------------------


def billing_contract(contracts: list[Contract], period: dt.date) -> Contract | None:
    """The contract in force on the last day of the month, else the latest one in force during it."""
    last = period_last_day(period)
    for contract in contracts:
        if contract.is_in_force(last):
            return contract
    for contract in contracts:
        if contract.starts_on <= last and (contract.ends_on is None or contract.ends_on >= period):
            return contract
    return None


@dataclass(frozen=True)
class FxChoice:
    rate: Decimal
    date: dt.date | None
    source: str


def fx_for_close(currency: str, period: dt.date) -> FxChoice:
    """SPEC §7 step 1: the latest rate dated on or before the month's last day, at most 7 days older."""
    last = period_last_day(period)
    found = fx_rate_in_force(base=PRICE_CURRENCY, quote=currency, on=last, max_age_days=FX_MAX_AGE_DAYS)
    if isinstance(found, Decimal):
        return FxChoice(found, None, "")
    if found is None:
        raise BillBlocked(
            "fx_rate_missing",
            f"No {PRICE_CURRENCY}→{currency} rate dated between {last - dt.timedelta(days=FX_MAX_AGE_DAYS)} and "
            f"{last}: import ECB rates (import_fx_rates) or add the rate on the FX page, then close again.",
            {"currency": [currency]},
        )
    return FxChoice(found.rate, found.date, found.source)


def fx_for_preview(currency: str, on: dt.date) -> FxChoice:
    found = fx_rate_in_force(base=PRICE_CURRENCY, quote=currency, on=on)
    if isinstance(found, Decimal):
        return FxChoice(found, None, "")
    if found is None:
        raise BillBlocked(
            "fx_rate_missing", f"No {PRICE_CURRENCY}→{currency} rate yet: import ECB rates or add one.", {}
        )
    return FxChoice(found.rate, found.date, found.source)


def bill_terms(contract: Contract | None, currency: str, fx: FxChoice, commitment: Decimal | None = None) -> Terms:
    if contract is None:
        return Terms(currency=currency, fx_rate=fx.rate)
    return Terms(
        currency=currency,
        fx_rate=fx.rate,
        discount_percent=contract.discount_percent,
        tax_percent=contract.tax_percent,
        tax_inclusive=contract.tax_inclusive,
        minimum_monthly_commitment=(
            contract.minimum_monthly_commitment if commitment is None else max(commitment, Decimal(0))
        ),
        volume_tiers=tuple(
            (Decimal(str(tier["from_amount"])), Decimal(str(tier["percent"]))) for tier in contract.volume_tiers or []
        ),
    )


# --- adjustments ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    group_key: str
    usage: UsageGroup
    fx_rate: Decimal


def _adjustments(tenant: Tenant, period: dt.date, splitter: _Splitter, contracts: list[Contract]) -> list[Adjustment]:
    """Late events and corrected estimates of closed months: what their events say now minus what the bills
    have charged for them so far (original lines and earlier adjustments), at that month's rate. A month whose
    billed quantities still equal its usage's, model by model and bucket by bucket, has nothing to adjust. From
    the rollups: the caller folds pending deltas in first."""
    closed = (
        Bill.objects.filter(
            tenant=tenant, period__lt=period, period__gte=month_add(period, -ADJUSTMENT_LOOKBACK_MONTHS)
        )
        .values_list("period", flat=True)
        .distinct()
    )
    found: list[Adjustment] = []
    for past in sorted(set(closed)):
        ledger = BillLine.objects.filter(
            bill__tenant=tenant, period=past, kind__in=[BillLine.Kind.USAGE, BillLine.Kind.ADJUSTMENT]
        )
        start, stop = period_bounds(past, tenant.timezone)
        if billable_unpriced(tenant_id=tenant.pk, start=start, stop=stop):
            _refuse_unpriced(tenant, past, start, stop)  # a late event of a model without a price
        now = period_usage(tenant, past, splitter, contracts).groups
        billed: dict[tuple[str, str, str, Decimal], _Quantity] = defaultdict(_Quantity)
        rates: dict[str, Decimal] = {}
        for line in ledger.select_related("bill"):
            cell = billed[(line.bill.group_key, line.model, line.bucket, line.unit_price or Decimal(0))]
            cell.quantity += line.quantity or 0
            cell.estimated += line.estimated_quantity
        if _quantities(now) == _quantities(billed):
            continue
        for bill in Bill.objects.filter(tenant=tenant, period=past):
            rates[bill.group_key] = bill.fx_rate
        fallback = next(iter(rates.values()))
        for key in sorted(set(now) | set(billed), key=lambda k: (k[0], k[1], k[2], k[3])):
            group_key, model, bucket, unit_price = key
            cell, before = now.get(key, _Quantity()), billed.get(key, _Quantity())
            delta = cell.quantity - before.quantity
            if delta:
                group = splitter.by_key(group_key)
                found.append(
                    Adjustment(
                        group.key,
                        UsageGroup(
                            model=model,
                            bucket=bucket,
                            unit_price=unit_price,
                            quantity=delta,
                            project=None,
                            period=past,
                            estimated_quantity=max(min(cell.estimated - before.estimated, delta), 0),
                        ),
                        rates.get(group_key, fallback),
                    )
                )
    return found


def _quantities(groups: dict[tuple[str, str, str, Decimal], _Quantity]) -> dict[tuple[str, str, str], int]:
    """Tokens by (group, model, bucket), whatever their unit price."""
    totals: dict[tuple[str, str, str], int] = defaultdict(int)
    for (group_key, model, bucket, _price), cell in groups.items():
        totals[(group_key, model, bucket)] += cell.quantity
    return {key: quantity for key, quantity in totals.items() if quantity}


# --- computing -----------------------------------------------------------------------------------------


@dataclass
class BillDraft:
    tenant: Tenant
    period: dt.date
    group: SplitGroup
    contract: Contract | None
    currency: str
    fx: FxChoice
    totals: BillTotals
    by_project: list[dict[str, Any]]

    @property
    def number(self) -> str:
        base = f"BILL-{self.tenant.slug}-{self.period:%Y%m}"
        return f"{base}-{self.group.suffix}" if self.group.suffix else base


def _by_project(usage: PeriodUsage, splitter: _Splitter, group: SplitGroup, fx: FxChoice, currency: str) -> list:
    rows = []
    for (project_id, model), usd in sorted(
        usage.by_project.items(), key=lambda item: (splitter.projects[item[0][0]].name, item[0][1])
    ):
        if splitter.group(project_id).key != group.key:
            continue
        project = splitter.projects[project_id]
        rows.append(
            {
                "project": project.slug,
                "project_name": project.name,
                "model": model,
                "tokens": usage.tokens_by_project[(project_id, model)],
                "amount_usd": str(usd.quantize(Decimal("0.000001"))),
                "amount": str(quantize_money(usd * fx.rate, currency)),
            }
        )
    return rows


def bills_compute(
    tenant: Tenant,
    period: dt.date,
    *,
    fx: FxChoice | None = None,
    with_adjustments: bool = True,
) -> list[BillDraft]:
    """The bills of the month as they stand (nothing stored), from the rollups as they are: the caller folds
    pending deltas in first (month_close does). Raises BillBlocked."""
    contracts = contracts_in_force(tenant.pk)
    contract = billing_contract(contracts, period)
    currency = contract.billing_currency if contract else tenant.billing_currency
    split = contract.invoice_split if contract else Contract.InvoiceSplit.TENANT
    splitter = _Splitter(tenant, split)
    usage = period_usage(tenant, period, splitter, contracts)
    adjustments = _adjustments(tenant, period, splitter, contracts) if with_adjustments else []

    by_group: dict[str, list[UsageGroup]] = defaultdict(list)
    groups: dict[str, SplitGroup] = {}
    for (group_key, model, bucket, unit_price), cell in usage.groups.items():
        group = splitter.by_key(group_key)
        groups[group.key] = group
        by_group[group.key].append(
            UsageGroup(
                model=model,
                bucket=bucket,
                unit_price=unit_price,
                quantity=cell.quantity,
                project=group.label if group.project_id else None,
                period=period,
                estimated_quantity=cell.estimated,
            )
        )
    adjustments_by_group: dict[str, list[tuple[UsageGroup, Decimal]]] = defaultdict(list)
    for adjustment in adjustments:
        groups.setdefault(adjustment.group_key, splitter.by_key(adjustment.group_key))
        adjustments_by_group[adjustment.group_key].append((adjustment.usage, adjustment.fx_rate))
    if not groups:
        if contract is None:
            return []  # no contract and no usage: nothing to bill
        groups[TENANT_GROUP.key] = TENANT_GROUP
    if fx is None:
        fx = fx_for_close(currency, period)

    ordered = sorted(groups.values(), key=lambda g: (g.key != "", g.label, g.key))
    commitment = contract.minimum_monthly_commitment if contract else Decimal(0)
    drafts = []
    for group in ordered:
        terms = bill_terms(contract, currency, fx, commitment=Decimal(0) if len(ordered) > 1 else None)
        totals = bill_compute(by_group[group.key], terms, adjustments_by_group[group.key])
        drafts.append(BillDraft(tenant, period, group, contract, currency, fx, totals, []))
    if len(ordered) > 1 and commitment:
        # The minimum commitment is the tenant's: a shortfall across all split bills goes on the first one.
        committed_elsewhere = sum((_committed(d.totals) for d in drafts[1:]), Decimal(0))
        first = drafts[0]
        terms = bill_terms(contract, currency, fx, commitment=commitment - committed_elsewhere)
        first.totals = bill_compute(by_group[first.group.key], terms, adjustments_by_group[first.group.key])
    for draft in drafts:
        draft.by_project = _by_project(usage, splitter, draft.group, fx, currency)
    return drafts


def _committed(totals: BillTotals) -> Decimal:
    return sum((line.amount for line in totals.lines if line.kind in ("usage", "volume_tier", "discount")), Decimal(0))


# --- closing -------------------------------------------------------------------------------------------


@dataclass
class CloseResult:
    tenant: Tenant
    period: dt.date
    status: str  # closed | already_closed | nothing_to_bill | internal | blocked | not_finished
    bills: list[Bill] = field(default_factory=list)
    error: BillBlocked | None = None


def month_close(*, tenant: Tenant, period: dt.date, actor: Any = None, now: dt.datetime | None = None) -> CloseResult:
    """Close one tenant's month: compute and store its bill(s) in one transaction under the tenant's row lock.
    Idempotent (a second close returns the stored bills) and crash-safe (nothing is stored unless all is)."""
    now = now or timezone.now()
    if tenant.is_internal:
        return CloseResult(tenant, period, "internal")
    _start, end = period_bounds(period, tenant.timezone)
    if now < end:
        return CloseResult(
            tenant,
            period,
            "not_finished",
            error=BillBlocked("period_not_finished", f"{period_label(period)} has not ended yet for {tenant.slug}."),
        )
    # Pending deltas folded in once, before the transaction: the flush lock is not held while the bill is stored
    # (every usage read of every tenant takes it). Events folded in later are adjusted on the next bill.
    rollups_flush()
    try:
        with transaction.atomic():
            Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
            stored = list(Bill.objects.filter(tenant=tenant, period=period).order_by("group_key"))
            if stored:
                return CloseResult(tenant, period, "already_closed", stored)
            start, stop = period_bounds(period, tenant.timezone)
            if billable_unpriced(tenant_id=tenant.pk, start=start, stop=stop):
                _refuse_unpriced(tenant, period, start, stop)  # names the models and counts their events
            drafts = bills_compute(tenant, period)
            bills = [_store(draft, actor=actor, now=now) for draft in drafts]
            _draft_invoices(bills)
            CloseBlock.objects.filter(tenant=tenant, period=period).delete()
    except BillBlocked as blocked:
        CloseBlock.objects.update_or_create(
            tenant=tenant,
            period=period,
            defaults={"code": blocked.code, "detail": blocked.message, "data": blocked.fields},
        )
        return CloseResult(tenant, period, "blocked", error=blocked)
    return CloseResult(tenant, period, "closed" if bills else "nothing_to_bill", bills)


def _store(draft: BillDraft, *, actor: Any, now: dt.datetime) -> Bill:
    totals = draft.totals
    contract = draft.contract
    bill = Bill.objects.create(
        tenant=draft.tenant,
        number=draft.number,
        period=draft.period,
        group_key=draft.group.key,
        group_label=draft.group.label,
        department_id=draft.group.department_id,
        project_id=draft.group.project_id,
        status=Bill.Status.CLOSED,
        contract=contract,
        currency=draft.currency,
        fx_rate=draft.fx.rate,
        fx_rate_date=draft.fx.date,
        fx_source=draft.fx.source,
        usage_subtotal=totals.usage_subtotal,
        net=totals.net,
        tax_percent=contract.tax_percent if contract else Decimal(0),
        tax_label=contract.tax_label if contract else "",
        tax_inclusive=contract.tax_inclusive if contract else False,
        tax=totals.tax,
        total=totals.total,
        estimated_amount=totals.estimated_amount,
        by_project=draft.by_project,
        closed_at=now,
        closed_by=actor if getattr(actor, "pk", None) else None,
    )
    BillLine.objects.bulk_create(
        [
            BillLine(
                bill=bill,
                position=position,
                kind=line.kind,
                model=line.model or "",
                bucket=line.bucket or "",
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount_usd=line.amount_usd,
                amount=line.amount,
                period=line.period or draft.period,
                project_id=draft.group.project_id,
                fx_rate=line.fx_rate,
                estimated_quantity=line.estimated_quantity,
                description=line.description[:300],
            )
            for position, line in enumerate(totals.lines, start=1)
        ]
    )
    audit_record(
        actor=actor,
        action="close",
        instance=bill,
        after={"number": bill.number, "net": str(bill.net), "tax": str(bill.tax), "total": str(bill.total)},
        tenant=draft.tenant,
    )
    return bill


def _draft_invoices(bills: list[Bill]) -> None:
    """Each closed bill gets its draft invoice in the same transaction (SPEC §8)."""
    from invoices.services import invoice_create_for_bill

    for bill in bills:
        invoice_create_for_bill(bill)


def months_close(
    *, period: dt.date, tenants: list[Tenant] | None = None, actor: Any = None, now: dt.datetime | None = None
) -> list[CloseResult]:
    tenants = tenants if tenants is not None else list(Tenant.objects.filter(is_internal=False).order_by("slug"))
    return [month_close(tenant=tenant, period=period, actor=actor, now=now) for tenant in tenants]


def months_close_due(*, now: dt.datetime | None = None) -> list[CloseResult]:
    """Beat: close every finished month whose late-event grace has passed (looking back three months)."""
    now = now or timezone.now()
    results = []
    rollups_flush()  # for the usage checks below (each close folds again before it reads)
    closed = set(Bill.objects.values_list("tenant_id", "period").distinct())
    for tenant in Tenant.objects.filter(is_internal=False).order_by("slug"):
        this_month = current_period(tenant, now)
        contracts = contracts_in_force(tenant.pk)
        for back in range(ADJUSTMENT_LOOKBACK_MONTHS, 0, -1):
            period = month_add(this_month, -back)
            if (tenant.pk, period) in closed:
                continue
            contract = billing_contract(contracts, period)
            grace = dt.timedelta(hours=contract.late_event_grace_hours if contract else 72)
            _start, end = period_bounds(period, tenant.timezone)
            if now < end + grace:
                continue
            if contract is None and not _has_billable_usage(tenant, period):
                continue
            result = month_close(tenant=tenant, period=period, now=now)
            if result.status == "blocked":
                logger.warning("bill close blocked: %s %s: %s", tenant.slug, period_label(period), result.error)
            results.append(result)
    return results


def _has_billable_usage(tenant: Tenant, period: dt.date) -> bool:
    start, stop = period_bounds(period, tenant.timezone)
    return billable_usage_exists(tenant_id=tenant.pk, start=start, stop=stop)


# --- the open month ------------------------------------------------------------------------------------


@dataclass
class Preview:
    tenant: Tenant
    period: dt.date
    as_of: dt.datetime
    bills: list[BillDraft]
    forecast: BillTotals | None
    fx: FxChoice
    currency: str
    elapsed_fraction: Decimal


def bill_preview(tenant: Tenant, *, now: dt.datetime | None = None) -> Preview:
    """The open month: what the bill says so far (one bill for the whole tenant, with any adjustments that
    will land on it) and a month-end forecast that extends the month-to-date usage linearly."""
    now = now or timezone.now()
    rollups_flush()  # read-your-writes, once for every read below
    period = current_period(tenant, now)
    contracts = contracts_in_force(tenant.pk)
    contract = billing_contract(contracts, period)
    currency = contract.billing_currency if contract else tenant.billing_currency
    fx = fx_for_preview(currency, now.date())
    splitter = _Splitter(tenant, Contract.InvoiceSplit.TENANT)
    usage = period_usage(tenant, period, splitter, contracts)
    adjustments = [(a.usage, a.fx_rate) for a in _adjustments(tenant, period, splitter, contracts)]
    groups = [
        UsageGroup(model=m, bucket=b, unit_price=p, quantity=c.quantity, period=period, estimated_quantity=c.estimated)
        for (_g, m, b, p), c in usage.groups.items()
    ]
    terms = bill_terms(contract, currency, fx)
    totals = bill_compute(groups, terms, adjustments)
    draft = BillDraft(tenant, period, TENANT_GROUP, contract, currency, fx, totals, [])
    draft.by_project = _by_project(usage, splitter, TENANT_GROUP, fx, currency)
    start, end = period_bounds(period, tenant.timezone)
    elapsed = Decimal((now - start).total_seconds()) / Decimal((end - start).total_seconds())
    forecast = None
    if elapsed > 0:
        scale = 1 / elapsed
        projected = [
            UsageGroup(
                model=g.model,
                bucket=g.bucket,
                unit_price=g.unit_price,
                quantity=int((g.quantity * scale).to_integral_value()),
                period=period,
            )
            for g in groups
        ]
        forecast = bill_compute(projected, terms, adjustments)
    return Preview(tenant, period, now, [draft], forecast, fx, currency, elapsed.quantize(Decimal("0.0001")))

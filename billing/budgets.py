"""Budgets (SPEC §6): calendar periods in the tenant's time zone, real-time counters in Redis updated by
ingestion after each commit (a duplicate never counts, a correction adjusts), rebuilt from rollups, threshold
alerts that fire once per period, and the quota decision for gateways (Redis only, never events)."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.fx import PRICE_CURRENCY, fx_rate_in_force
from billing.models import Budget, BudgetAlert
from core.deferred import after_response
from core.hotcache import hot_changed, hot_get, hot_peek, hot_put
from core.redis import Replies, redis_run, redis_send, warn_unavailable
from tenants.models import Tenant

logger = logging.getLogger(__name__)

SPENT_DIGITS = Decimal("0.0001")
PERCENT_DIGITS = Decimal("0.01")
COST_UNIT = Decimal("1E-10")  # counters hold cost as an integer of 10⁻¹⁰ USD (the precision of event costs)
INDEX_SECONDS = 60  # the exchange rate inside an index is at most about a minute old
COUNTER_TTL = 40 * 24 * 3600  # a month's counter outlives its month; rebuilt from rollups when missing


# --- periods -------------------------------------------------------------------------------------------


def period_bounds(period: str, local_day: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end] local dates of the day, week (Monday–Sunday) or month holding local_day."""
    if period == Budget.Period.DAY:
        return local_day, local_day
    if period == Budget.Period.WEEK:
        start = local_day - dt.timedelta(days=local_day.weekday())
        return start, start + dt.timedelta(days=6)
    start = local_day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following - dt.timedelta(days=1)


def local_day(moment: dt.datetime, zone_name: str) -> dt.date:
    return moment.astimezone(zoneinfo.ZoneInfo(zone_name)).date()


def counter_key(budget_id: int, start: dt.date) -> str:
    """A hash of the period's `cost` and `tokens`, and `stale` when an increment could not be counted (the next
    read rebuilds it from the rollups)."""
    return f"mlb:{budget_id}:{start.year:04}{start.month:02}{start.day:02}"


# --- which budgets an event counts toward --------------------------------------------------------------


@dataclass(frozen=True)
class BudgetRule:
    id: int
    scope: str
    value: str
    ref: int | None
    period: str

    def matches(self, fact: dict[str, Any], department_of: dict[int, int | None]) -> bool:
        if self.scope == Budget.Scope.TENANT:
            return True
        if self.scope == Budget.Scope.PROJECT:
            return fact["project_id"] == self.ref
        if self.scope == Budget.Scope.API_KEY:
            return fact["api_key_id"] == self.ref
        if self.scope == Budget.Scope.DEPARTMENT:
            return department_of.get(fact["project_id"]) == self.ref
        if self.scope == Budget.Scope.ENVIRONMENT:
            return fact["environment"] == self.value
        return fact["end_user"] == self.value  # end_user


@dataclass(frozen=True)
class TenantBudgets:
    timezone: str
    rules: tuple[BudgetRule, ...]
    department_of: dict[int, int | None]
    # the budgets themselves (with their tenant), so that the quota check never reads the database
    budgets: dict[int, Budget]
    # budgets with an approved raise (their thresholds are checked the long way) and the USD rate of the tenant's
    # currency when the index was built (the ingest path's threshold pre-check needs no round trip)
    raised_ids: frozenset[int] = frozenset()
    rate: Decimal = Decimal(1)
    # approved raises of recent periods: (budget id, period start, until, amount)
    raises: tuple[tuple[int, dt.date, dt.date, Decimal], ...] = ()
    # what `targets` and `crossings` worked out, for as long as the index is held
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def targets(
        self, project_id: int, api_key_id: int | None, environment: str, end_user: str, day: dt.date
    ) -> tuple[tuple[int, dt.date, str], ...]:
        """(budget id, period start, counter key) of every budget that events of this project, key, environment
        and end user on this local day count toward."""
        memo_key = (project_id, api_key_id, environment, end_user, day)
        found = self.memo.get(memo_key)
        if found is None:
            if len(self.memo) > 10_000:
                self.memo.clear()
            fact = {
                "project_id": project_id,
                "api_key_id": api_key_id,
                "environment": environment,
                "end_user": end_user,
            }
            found = tuple(
                (rule.id, start, counter_key(rule.id, start))
                for rule in self.rules
                if rule.matches(fact, self.department_of)
                for start in (period_bounds(rule.period, day)[0],)
            )
            self.memo[memo_key] = found
        return found  # type: ignore[no-any-return]

    def may_cross(self, budget_id: int, before: tuple[int, int], after: tuple[int, int]) -> bool:
        """Whether a counter moving from `before` to `after` ((cost units, tokens)) may have crossed one of the
        budget's thresholds — with 2 % slack either side, for rounding and a rate that moved since the index was
        built; `thresholds_check` decides exactly. Budgets with a raise, or not held here, always may."""
        bounds = self.memo.get(("crossings", budget_id))
        if bounds is None:
            budget = self.budgets.get(budget_id)
            if budget is None or budget_id in self.raised_ids:
                bounds = self.memo[("crossings", budget_id)] = (None, ())
            elif budget.limit_tokens is not None:
                bounds = self.memo[("crossings", budget_id)] = (
                    1,
                    tuple(float(budget.limit_tokens * int(t)) / 100 for t in budget.thresholds),
                )
            else:  # a threshold's spend in the budget's currency, in counter units (10⁻¹⁰ USD)
                limit = Decimal(budget.limit_amount or 0)
                bounds = self.memo[("crossings", budget_id)] = (
                    0,
                    tuple(float(limit * int(t) / 100 / self.rate / COST_UNIT) for t in budget.thresholds)
                    if limit and self.rate
                    else (),
                )
        which, points = bounds
        if which is None:
            return True
        low, high = before[which] * 0.98, after[which] * 1.02
        return any(low < point <= high for point in points)

    def raised(self, budget_id: int, start: dt.date, today: dt.date) -> Decimal:
        """Approved raises of this period still in force today (a raise never outlives its period)."""
        return sum(
            (
                amount
                for bid, period_start, until, amount in self.raises
                if bid == budget_id and period_start == start and until >= today
            ),
            Decimal(0),
        )


def budgets_changed(tenant_id: int) -> None:
    """Every process reloads its budget indexes (also after project changes: see tenants.credential_cache)."""
    hot_changed()


def tenant_budgets(tenant_id: int, *, peek: bool = False) -> TenantBudgets:
    """The tenant's active budgets as matching rules, held in each process for a minute at most and reloaded
    after every budget, raise, project or credential change. `peek`: as held, for a caller that checks the
    hot-path generation in its own round trip."""
    if peek:
        held = hot_peek("budget-index", tenant_id, INDEX_SECONDS)
        if held is not None:
            return held  # type: ignore[no-any-return]
    return hot_get("budget-index", tenant_id, lambda: _index_load(tenant_id), INDEX_SECONDS)


def _index_load(tenant_id: int) -> TenantBudgets:
    from billing.models import BudgetRaiseRequest
    from tenants.models import Project

    tenant = Tenant.objects.only("timezone").get(pk=tenant_id)
    active = list(Budget.objects.filter(tenant_id=tenant_id, active=True).select_related("tenant"))
    rules = tuple(BudgetRule(b.pk, b.scope, b.scope_value, b.scope_ref, b.period) for b in active)
    departments: dict[int, int | None] = dict(
        Project.objects.filter(tenant_id=tenant_id).values_list("pk", "department_id")
    )
    approved = BudgetRaiseRequest.objects.filter(budget__tenant_id=tenant_id, status=BudgetRaiseRequest.Status.APPROVED)
    raised = frozenset(approved.values_list("budget_id", flat=True))
    # every period an accepted event can fall in (events reach back 35 days; a month starts up to 31 days earlier)
    recent = local_day(timezone.now(), tenant.timezone) - dt.timedelta(days=70)
    raises = tuple(
        approved.filter(period_start__gte=recent).values_list("budget_id", "period_start", "until", "amount")
    )
    rate = usd_to(active[0].tenant.billing_currency) if active else Decimal(1)
    return TenantBudgets(tenant.timezone, rules, departments, {b.pk: b for b in active}, raised, rate, raises)


def _tokens(fact: dict[str, Any]) -> int:
    return int(fact["input_tokens"] + fact["cached_input_tokens"] + fact["cache_write_tokens"] + fact["output_tokens"])


@dataclass
class CounterPlan:
    """The increments a set of events makes to budget counters: one (cost in COST_UNIT, tokens) cell per (budget,
    period start), the counters' keys, and the tenants' budget indexes they were worked out from."""

    items: list[tuple[tuple[int, dt.date], list[int]]]
    keys: dict[tuple[int, dt.date], str]
    by_tenant: dict[int, TenantBudgets]

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for period, (cost_units, tokens) in self.items:
            key = self.keys[period]
            commands += [("HINCRBY", key, "cost", cost_units), ("HINCRBY", key, "tokens", tokens)]
        return commands

    @property
    def periods(self) -> list[tuple[int, dt.date]]:
        return [period for period, _sums in self.items]


def counters_plan(
    added: list[dict[str, Any]], removed: list[dict[str, Any]], *, peek: bool = False
) -> CounterPlan | None:
    """What `added` (and taking `removed` off) does to every matching budget's counter for each event's period;
    None when no budget counts them. `peek`: the budget indexes as held (tenant_budgets)."""
    increments: dict[tuple[int, dt.date], list[int]] = defaultdict(lambda: [0, 0])
    by_tenant: dict[int, TenantBudgets] = {}
    # Events that budgets cannot tell apart (same key, project, environment, end user and local day) are summed
    # first: a batch matches the rules once per group rather than once per event.
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for sign, facts in ((1, added), (-1, removed)):
        for fact in facts:
            tenant_id = fact["tenant_id"]
            if tenant_id not in by_tenant:
                by_tenant[tenant_id] = tenant_budgets(tenant_id, peek=peek)
            budgets = by_tenant[tenant_id]
            if not budgets.rules:
                continue
            day = local_day(fact["occurred_at"], budgets.timezone)
            group = (tenant_id, fact["project_id"], fact["api_key_id"], fact["environment"], fact["end_user"], day)
            cell = groups[group]
            cell[0] += int(Decimal(fact["cost"]).scaleb(10)) * sign  # in COST_UNIT, exactly
            cell[1] += _tokens(fact) * sign
    keys: dict[tuple[int, dt.date], str] = {}
    for (tenant_id, *group_key), (cost_units, tokens) in groups.items():
        for budget_id, start, key in by_tenant[tenant_id].targets(*group_key):
            keys[(budget_id, start)] = key
            cell = increments[(budget_id, start)]
            cell[0] += cost_units
            cell[1] += tokens
    if not increments:
        return None
    return CounterPlan(list(increments.items()), keys, by_tenant)


def counters_apply(added: list[dict[str, Any]], removed: list[dict[str, Any]]) -> None:
    """Add stored events to (and take removed estimates off) every matching budget's counter for the event's
    period, in one Redis round trip; then fire the thresholds crossed (in a hot ingest request, once its response
    is sent: core.deferred). Runs after the ingest commit. If Redis is down the events are stored anyway and the
    counters are rebuilt from rollups when it is back."""
    plan = counters_plan(added, removed)
    if plan is None:
        return
    try:
        sent = redis_send(plan.commands)
    except Exception:  # noqa: BLE001  (Redis down: events are stored; counters are rebuilt later)
        warn_unavailable(logger, "budget counters not updated (Redis unavailable); they are rebuilt from rollups")
        counters_mark_stale(plan.periods)
        return
    # The replies (and the alerts they call for) are read once the ingest response is sent: Redis answers
    # while the response is written.
    after_response(lambda: _counters_settle(plan, sent))


def counters_counted_ahead(plan: CounterPlan, replies: list[Any]) -> None:
    """The event whose increments were sent ahead of its write (in its request's first round trip) is stored:
    its thresholds are checked once the response is sent, as `counters_apply` does."""
    after_response(lambda: _counters_settle(plan, Replies(len(replies), replies)))


def counters_take_back(plan: CounterPlan, replies: list[Any] | None) -> None:
    """Increments sent ahead of an event that was then not stored (refused, a duplicate, a correction counted
    its own way, a failed write) come off again. A counter they may have created is marked stale instead (the
    next read rebuilds it from the rollups), as is every counter when it is unknown whether they were applied
    (`replies` None: the round trip failed)."""
    if replies is None:
        counters_mark_stale(plan.periods)
        return
    commands: list[tuple[Any, ...]] = []
    for index, (period, (cost_units, tokens)) in enumerate(plan.items):
        key = plan.keys[period]
        commands += [("HINCRBY", key, "cost", -cost_units), ("HINCRBY", key, "tokens", -tokens)]
        if (replies[2 * index], replies[2 * index + 1]) == (cost_units, tokens):
            commands += [("HSET", key, "stale", 1), ("EXPIRE", key, COUNTER_TTL)]
    try:
        redis_run(commands)
    except Exception:  # noqa: BLE001  (Redis down: the counters are rebuilt from rollups)
        warn_unavailable(logger, "budget counters not corrected (Redis unavailable); they are rebuilt from rollups")
        counters_mark_stale(plan.periods)


def _counters_settle(plan: CounterPlan, sent: Replies) -> None:
    """Complete the counters these increments created (with their expiry and the usage recorded before them), and
    fire the thresholds the increments crossed."""
    items, by_tenant = plan.items, plan.by_tenant
    try:
        results = sent.get()
        # An increment that made the counter equal to itself may have created it: an expiry set now (NX: only
        # where there was none) says it did — the counter holds only these events, while the period may
        # already have usage, stored while Redis had lost the counter or seeded without one.
        maybe_created = [
            index
            for index, (_period, (cost_units, tokens)) in enumerate(items)
            if (results[2 * index], results[2 * index + 1]) == (cost_units, tokens)
        ]
        expired = redis_run([("EXPIRE", plan.keys[items[index][0]], COUNTER_TTL, "NX") for index in maybe_created])
        created = {index for index, set_now in zip(maybe_created, expired, strict=True) if set_now}
    except Exception:  # noqa: BLE001  (Redis down: events are stored; counters are rebuilt later)
        warn_unavailable(logger, "budget counters not updated (Redis unavailable); they are rebuilt from rollups")
        counters_mark_stale(plan.periods)
        return
    budget_index = {budget_id: (b, tenant) for tenant in by_tenant.values() for budget_id, b in tenant.budgets.items()}
    for index, ((budget_id, start), (cost_units, tokens)) in enumerate(items):
        cost_after, tokens_after = results[2 * index], results[2 * index + 1]
        held = budget_index.get(budget_id)
        if index in created:
            # Rebuilt from the rollups, which hold these events too. As with every rebuild, an event another
            # sender has stored but not yet counted may count twice until the reconcile (every five minutes).
            if held is None:
                counters_mark_stale([(budget_id, start)])
                continue
            cost_after, tokens_after = counter_rebuild(held[0], start, period_bounds(held[0].period, start)[1])
        if held is not None and not held[1].may_cross(
            budget_id, (cost_after - cost_units, tokens_after - tokens), (cost_after, tokens_after)
        ):
            continue
        if cost_units > 0 or tokens > 0:
            thresholds_check(
                budget_id,
                start,
                cost_after - cost_units,
                cost_after,
                tokens_after - tokens,
                tokens_after,
                budget=budget_index[budget_id][0] if budget_id in budget_index else None,
                index=budget_index[budget_id][1] if budget_id in budget_index else None,
            )


def counters_mark_stale(periods: list[tuple[int, dt.date]]) -> None:
    """(budget id, period start) counters that missed an increment: their next read rebuilds them."""
    try:
        commands: list[tuple[Any, ...]] = []
        for budget_id, start in periods:
            commands += [
                ("HSET", counter_key(budget_id, start), "stale", 1),
                ("EXPIRE", counter_key(budget_id, start), COUNTER_TTL),
            ]
        redis_run(commands)
    except Exception:  # noqa: BLE001  (the same Redis is down: the periodic reconcile rebuilds every counter)
        warn_unavailable(logger, "budget counters not marked stale (Redis unavailable); the reconcile rebuilds them")


def counters_reconcile(*, now: dt.datetime | None = None) -> int:
    """Rebuild every active budget's current-period counter from the rollups (beat, every few minutes), so
    that counters never drift — also after Redis lost its data or was down while events were stored."""
    now = now or timezone.now()
    count = 0
    for budget in Budget.objects.filter(active=True).select_related("tenant"):
        start, end = period_bounds(budget.period, local_day(now, budget.tenant.timezone))
        counter_rebuild(budget, start, end)
        count += 1
    return count


# --- reading and rebuilding ----------------------------------------------------------------------------


@dataclass
class BudgetState:
    budget: Budget
    period_start: dt.date
    period_end: dt.date
    currency: str
    spent: Decimal  # in the budget's currency (money budgets) or tokens
    limit: Decimal
    percent: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.spent


def budget_currency(budget: Budget) -> str:
    return budget.tenant.billing_currency


def usd_to(currency: str, on: dt.date | None = None) -> Decimal:
    """The latest USD→currency rate (budgets convert with the rate in force now, SPEC §6); cached a minute."""
    if currency == PRICE_CURRENCY:
        return Decimal(1)
    key = f"fx-latest:{currency}"
    rate = cache.get(key)
    if rate is None:
        found = fx_rate_in_force(base=PRICE_CURRENCY, quote=currency, on=on or timezone.now().date())
        rate = found.rate if found is not None and not isinstance(found, Decimal) else Decimal(1)
        cache.set(key, rate, 60)
    return Decimal(rate)


def _state(
    budget: Budget,
    start: dt.date,
    end: dt.date,
    cost_units: int,
    tokens: int,
    *,
    raised: Decimal | None = None,
    rate: Decimal | None = None,
) -> BudgetState:
    currency = budget_currency(budget)
    raised = raised_amount(budget, start) if raised is None else raised
    if budget.limit_tokens is not None:
        spent, limit = Decimal(tokens), (Decimal(budget.limit_tokens) + raised).to_integral_value()
    else:
        rate = usd_to(currency) if rate is None else rate
        spent = (Decimal(cost_units) * COST_UNIT * rate).quantize(SPENT_DIGITS)
        limit = Decimal(budget.limit_amount or 0) + raised
    percent = (spent / limit * 100).quantize(PERCENT_DIGITS) if limit else Decimal(0)
    return BudgetState(budget, start, end, currency, spent, limit, percent)


def raised_amount(budget: Budget, start: dt.date, today: dt.date | None = None) -> Decimal:
    """Approved raises of this period still in force (until their date; a raise never outlives its period),
    from the tenant's budget index."""
    today = today or local_day(timezone.now(), budget.tenant.timezone)
    return tenant_budgets(budget.tenant_id).raised(budget.pk, start, today)


# --- raises --------------------------------------------------------------------------------------------


class RaiseRefused(Exception):
    def __init__(self, message: str, code: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@transaction.atomic
def raises_pending(tenants: Any) -> Any:
    """Raise requests waiting for an account manager's decision, in the given tenants, oldest first."""
    from billing.models import BudgetRaiseRequest

    return (
        BudgetRaiseRequest.objects.filter(status=BudgetRaiseRequest.Status.PENDING, budget__tenant__in=tenants)
        .select_related("budget", "budget__tenant", "requested_by")
        .order_by("created_at", "id")
    )


def raise_request(*, actor: Any, budget: Budget, amount: Decimal, until: dt.date, reason: str) -> Any:
    from billing.models import BudgetRaiseRequest
    from core.audit import audit_record, audit_snapshot
    from tenants.selectors import can_manage_tenant

    if not can_manage_tenant(actor, budget.tenant):
        raise RaiseRefused("Budget raises are asked by the tenant's owners and admins.", "permission_denied", 403)
    today = local_day(timezone.now(), budget.tenant.timezone)
    start, end = period_bounds(budget.period, today)
    if until < today:
        raise RaiseRefused("The raise must last until today or later.", "invalid", 400)
    raise_obj = BudgetRaiseRequest.objects.create(
        budget=budget, period_start=start, amount=amount, until=min(until, end), reason=reason, requested_by=actor
    )
    audit_record(
        actor=actor, action="request", instance=raise_obj, after=audit_snapshot(raise_obj), tenant=budget.tenant
    )
    return raise_obj


@transaction.atomic
def raise_decide(*, actor: Any, raise_request: Any, approve: bool, note: str = "") -> Any:
    from billing.models import BudgetRaiseRequest
    from core.audit import audit_record
    from tenants.selectors import manages_as_staff

    raise_obj = BudgetRaiseRequest.objects.select_for_update().select_related("budget__tenant").get(pk=raise_request.pk)
    if not manages_as_staff(actor, raise_obj.budget.tenant):
        raise RaiseRefused("Only the tenant's account manager decides budget raises.", "permission_denied", 403)
    if raise_obj.status != BudgetRaiseRequest.Status.PENDING:
        raise RaiseRefused(f"The raise is {raise_obj.status} already.", "invalid_state")
    raise_obj.status = BudgetRaiseRequest.Status.APPROVED if approve else BudgetRaiseRequest.Status.REJECTED
    raise_obj.decided_by, raise_obj.decided_at, raise_obj.decision_note = actor, timezone.now(), note
    raise_obj.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        actor=actor,
        action="approve" if approve else "reject",
        instance=raise_obj,
        before={"status": "pending"},
        after={"status": raise_obj.status, "amount": str(raise_obj.amount), "note": note},
        tenant=raise_obj.budget.tenant,
    )
    budgets_changed(raise_obj.budget.tenant_id)
    return raise_obj


class _Read(NamedTuple):
    budget: Budget
    start: dt.date
    end: dt.date
    today: dt.date


def _reads(budgets: list[Budget], now: dt.datetime) -> list[_Read]:
    reads = []
    days: dict[str, dt.date] = {}
    for budget in budgets:
        zone = budget.tenant.timezone
        today = days.get(zone) or days.setdefault(zone, local_day(now, zone))
        start, end = period_bounds(budget.period, today)
        reads.append(_Read(budget, start, end, today))
    return reads


def counter_commands(reads: list[_Read]) -> list[tuple[Any, ...]]:
    """The Redis commands that read these budgets' counters (for one round trip)."""
    return [("HMGET", counter_key(r.budget.pk, r.start), "cost", "tokens", "stale") for r in reads]


class _Terms(NamedTuple):
    currency: str
    limit: Decimal  # with the raises in force on the read's day
    rate: Decimal | None  # USD → currency for a money budget; None for a token budget


def _terms(read: _Read, index: TenantBudgets) -> _Terms:
    budget = read.budget
    currency = budget_currency(budget)
    raised = index.raised(budget.pk, read.start, read.today)
    if budget.limit_tokens is not None:
        return _Terms(currency, (Decimal(budget.limit_tokens) + raised).to_integral_value(), None)
    # the index's rate for its active budgets; the rate in force for an inactive one
    rate = index.rate if budget.pk in index.budgets else usd_to(currency)
    return _Terms(currency, Decimal(budget.limit_amount or 0) + raised, rate)


def _states_from(
    reads: list[_Read],
    replies: list[Any] | None,
    indexes: dict[int, TenantBudgets] | None = None,
    terms: list[_Terms] | None = None,
) -> list[BudgetState]:
    if replies is None:
        replies = [[None, None, None]] * len(reads)
    if terms is None:
        indexes = indexes or {}
        terms = [_terms(r, indexes.get(r.budget.tenant_id) or tenant_budgets(r.budget.tenant_id)) for r in reads]
    states = []
    for read, (cost, tokens, stale), (currency, limit, rate) in zip(reads, replies, terms, strict=True):
        if cost is None or stale is not None:
            cost, tokens = counter_rebuild(read.budget, read.start, read.end)
        if rate is None:
            spent = Decimal(int(tokens or 0))
        else:
            spent = (Decimal(int(cost)) * COST_UNIT * rate).quantize(SPENT_DIGITS)
        percent = (spent / limit * 100).quantize(PERCENT_DIGITS) if limit else Decimal(0)
        states.append(BudgetState(read.budget, read.start, read.end, currency, spent, limit, percent))
    return states


def budget_states(budgets: list[Budget], *, now: dt.datetime | None = None) -> list[BudgetState]:
    """Current-period spend of each budget from its Redis counter (rebuilt from rollups when missing or marked
    stale), in one round trip; raises and the exchange rate come from the tenant's budget index."""
    if not budgets:
        return []
    reads = _reads(budgets, now or timezone.now())
    try:
        replies = redis_run(counter_commands(reads))
    except Exception:  # noqa: BLE001  (Redis down: every counter is rebuilt from the rollups)
        replies = None
    return _states_from(reads, replies)


def counter_rebuild(budget: Budget, start: dt.date, end: dt.date) -> tuple[int, int]:
    """The counter from the daily rollups (exact sums of the events), written back to Redis."""
    from metering.models import EndUserRollup, UsageRollup
    from metering.services import rollups_flush

    rollups_flush()
    if budget.scope == Budget.Scope.END_USER:
        rows: Any = EndUserRollup.objects.filter(
            tenant_id=budget.tenant_id, day__gte=start, day__lte=end, end_user=budget.scope_value
        )
    else:
        rows = UsageRollup.objects.filter(tenant_id=budget.tenant_id, grain="day", day__gte=start, day__lte=end)
        if budget.scope == Budget.Scope.PROJECT:
            rows = rows.filter(project_id=budget.scope_ref)
        elif budget.scope == Budget.Scope.API_KEY:
            rows = rows.filter(api_key_id_value=budget.scope_ref)
        elif budget.scope == Budget.Scope.DEPARTMENT:
            rows = rows.filter(project__department_id=budget.scope_ref)
        elif budget.scope == Budget.Scope.ENVIRONMENT:
            rows = rows.filter(environment=budget.scope_value)
    sums = rows.aggregate(
        cost=Sum("cost"),
        tokens=Sum(F("input_tokens") + F("cached_input_tokens") + F("cache_write_tokens") + F("output_tokens")),
    )
    cost_units = int((sums["cost"] or Decimal(0)) / COST_UNIT)
    tokens = int(sums["tokens"] or 0)
    try:
        key = counter_key(budget.pk, start)
        redis_run(
            [
                ("HSET", key, "cost", cost_units, "tokens", tokens),
                ("HDEL", key, "stale"),
                ("EXPIRE", key, COUNTER_TTL),
            ]
        )
    except Exception:  # noqa: BLE001
        warn_unavailable(logger, "budget counters not written back (Redis unavailable)")
    return cost_units, tokens


# --- alerts --------------------------------------------------------------------------------------------


def severity_of(threshold: int) -> str:
    if threshold >= 100:
        return BudgetAlert.Severity.CRITICAL
    if threshold >= 95:
        return BudgetAlert.Severity.HIGH
    if threshold >= 80:
        return BudgetAlert.Severity.WARNING
    return BudgetAlert.Severity.INFO


def _may_have_crossed(budget: Budget, before: tuple[int, int], after: tuple[int, int], rate: Decimal) -> bool:
    """Whether the increment crossed a threshold, computed in memory for budgets without raises (a raise only
    moves the limit up, so those take the long way). Keeps the database out of the ingest path."""
    if budget.limit_tokens is not None:
        limit, spent_before, spent_after = Decimal(budget.limit_tokens), Decimal(before[1]), Decimal(after[1])
    else:
        limit = Decimal(budget.limit_amount or 0)
        spent_before = Decimal(before[0]) * COST_UNIT * rate
        spent_after = Decimal(after[0]) * COST_UNIT * rate
    if not limit:
        return False
    # a little slack for rounding and for a rate that moved since the index was built
    low, high = spent_before * 100 / limit * Decimal("0.98"), spent_after * 100 / limit * Decimal("1.02")
    return any(low < int(t) <= high for t in budget.thresholds)


def thresholds_check(
    budget_id: int,
    start: dt.date,
    cost_before: int,
    cost_after: int,
    tokens_before: int,
    tokens_after: int,
    *,
    budget: Budget | None = None,
    index: TenantBudgets | None = None,
) -> list[BudgetAlert]:
    """Fire every threshold the increment crossed, each at most once per period (Redis SET NX first, the
    unique constraint as the last word)."""
    if (
        budget is not None
        and index is not None
        and budget.pk not in index.raised_ids
        and not _may_have_crossed(budget, (cost_before, tokens_before), (cost_after, tokens_after), index.rate)
    ):
        return []
    budget = Budget.objects.select_related("tenant").filter(pk=budget_id, active=True).first()
    if budget is None:
        return []
    _start, end = period_bounds(budget.period, start)
    before = _state(budget, start, end, cost_before, tokens_before)
    after = _state(budget, start, end, cost_after, tokens_after)
    fired = []
    for threshold in sorted(int(t) for t in budget.thresholds):
        if before.percent >= threshold or after.percent < threshold:
            continue
        if not redis_run([("SET", f"mla:{budget_id}:{start:%Y%m%d}:{threshold}", 1, "EX", COUNTER_TTL, "NX")])[0]:
            continue
        try:
            with transaction.atomic():
                alert = BudgetAlert.objects.create(
                    budget=budget,
                    period_start=start,
                    threshold=threshold,
                    severity=severity_of(threshold),
                    spent=after.spent,
                    limit=after.limit,
                    percent=after.percent,
                )
                from billing.channels import alert_payload, deliveries_queue

                deliveries_queue(
                    channels=list(budget.channels.filter(enabled=True)),
                    payload=alert_payload(alert),
                    subject="alert",
                    alert=alert,
                    send=False,  # once the alert names its top consumers (`alert_announce`)
                )
        except IntegrityError:
            continue
        fired.append(alert)
        transaction.on_commit(partial(_announce_later, alert.pk))
    return fired


def _announce_later(alert_id: int) -> None:
    from billing.tasks import budget_alert_announce

    budget_alert_announce.delay(alert_id)


def alert_announce(alert_id: int) -> BudgetAlert | None:
    """An alert's top consumers, named by a worker rather than in the request that crossed the threshold (reading a
    month of a project's events can take seconds), then its messages sent with them. None: the alert is gone (its
    tenant was removed meanwhile)."""
    from billing.channels import alert_deliveries_send

    alert = BudgetAlert.objects.select_related("budget__tenant").filter(pk=alert_id).first()
    if alert is None:
        return None
    alert_deliveries_send(alert_consumers_named(alert))
    return alert


def alert_consumers_named(alert: BudgetAlert) -> BudgetAlert:
    """The alert with its top consumers in its period (SPEC §6), worked out once."""
    if not alert.top_consumers:
        _start, end = period_bounds(alert.budget.period, alert.period_start)
        alert.top_consumers = top_consumers(alert.budget, alert.period_start, end)
        alert.save(update_fields=["top_consumers"])
    return alert


def top_consumers(budget: Budget, start: dt.date, end: dt.date) -> dict[str, list[dict[str, str]]]:
    """The top five end users, API keys and features of the budget's own scope in its period, by cost at contract
    prices in the budget's currency (converted as its spend is, `currency` on each): a project's budget names the
    project's consumers, not the whole tenant's. From the rollups; the end users of a narrower scope than the
    tenant from its events (the end-user rollup is per tenant)."""
    from metering.models import EndUserRollup, UsageRollup
    from metering.selectors import events_in_days
    from metering.services import rollups_flush
    from tenants.models import ApiKey

    rollups_flush()  # the events that crossed the threshold are in the rollups read here
    scope, ref, value = budget.scope, budget.scope_ref, budget.scope_value
    by_scope: dict[str, dict[str, Any]] = {
        Budget.Scope.PROJECT: {"project_id": ref},
        Budget.Scope.DEPARTMENT: {"project__department_id": ref},
        Budget.Scope.API_KEY: {"api_key_id_value": ref},
        Budget.Scope.ENVIRONMENT: {"environment": value},
    }
    narrowing = by_scope.get(scope, {})
    day_rows = UsageRollup.objects.filter(tenant_id=budget.tenant_id, grain="day", day__gte=start, day__lte=end)
    users: Any
    if scope == Budget.Scope.TENANT:
        users = EndUserRollup.objects.filter(tenant_id=budget.tenant_id, day__gte=start, day__lte=end)
    else:
        events = events_in_days(budget.tenant, start, end)
        if scope == Budget.Scope.END_USER:
            events = events.filter(end_user=value)
            day_rows = day_rows.none()  # the rollups hold no end user: keys and features from the events
        else:
            events = events.filter(**{"api_key_id" if k == "api_key_id_value" else k: v for k, v in narrowing.items()})
            day_rows = day_rows.filter(**narrowing)
        users = events
    users = users.values("end_user").annotate(cost=Sum("cost")).order_by("-cost")[:5]
    features: Any
    if scope == Budget.Scope.END_USER:
        keys = list(events.values(api_key_id_value=F("api_key_id")).annotate(cost=Sum("cost")).order_by("-cost")[:5])
        features = events.values("feature").annotate(cost=Sum("cost")).order_by("-cost")[:5]
    else:
        keys = list(day_rows.values("api_key_id_value").annotate(cost=Sum("cost")).order_by("-cost")[:5])
        features = day_rows.values("feature").annotate(cost=Sum("cost")).order_by("-cost")[:5]
    prefixes = dict(ApiKey.objects.filter(pk__in=[k["api_key_id_value"] for k in keys]).values_list("pk", "prefix"))
    currency = budget_currency(budget)
    rate = usd_to(currency)

    def item(name: str, value: str, cost: Decimal) -> dict[str, str]:
        return {name: value, "cost": str((cost * rate).quantize(SPENT_DIGITS)), "currency": currency}

    return {
        "end_users": [item("end_user", u["end_user"] or "—", u["cost"]) for u in users],
        "api_keys": [item("api_key", prefixes.get(k["api_key_id_value"], "—"), k["cost"]) for k in keys],
        "features": [item("feature", f["feature"] or "—", f["cost"]) for f in features],
    }


# --- changing budgets ----------------------------------------------------------------------------------


class BudgetInvalid(Exception):
    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("invalid budget")
        self.fields = fields


def _resolve_scope(tenant: Any, scope: str, value: str) -> int | None:
    from tenants.models import ApiKey, Department, Project

    if scope == Budget.Scope.TENANT:
        return None
    if scope in (Budget.Scope.ENVIRONMENT, Budget.Scope.END_USER):
        if not value:
            raise BudgetInvalid({"scope_value": ["Name the environment or end user."]})
        return None
    model: Any = {"department": Department, "project": Project, "api_key": ApiKey}[scope]
    lookup = {"department": "code", "project": "slug", "api_key": "prefix"}[scope]
    found = model.objects.filter(tenant=tenant, **{lookup: value}).first()
    if found is None:
        raise BudgetInvalid({"scope_value": [f"No {scope.replace('_', ' ')} '{value}' in this tenant."]})
    return int(found.pk)


@transaction.atomic
def budget_create(*, actor: Any, tenant: Any, channels: list[Any] | None = None, **fields: Any) -> Budget:
    from core.audit import audit_record, audit_snapshot

    fields["scope_ref"] = _resolve_scope(tenant, fields["scope"], fields.get("scope_value", ""))
    budget = Budget.objects.create(tenant=tenant, created_by=actor if getattr(actor, "pk", None) else None, **fields)
    if channels:
        budget.channels.set(channels)
    audit_record(actor=actor, action="create", instance=budget, after=audit_snapshot(budget), tenant=tenant)
    budgets_changed(tenant.pk)
    budget_id = budget.pk
    transaction.on_commit(lambda: _rebuild_now(budget_id))
    return budget


@transaction.atomic
def budget_update(*, actor: Any, budget: Budget, channels: list[Any] | None = None, **changes: Any) -> Budget:
    from core.audit import audited_update

    budget = Budget.objects.select_for_update().select_related("tenant").get(pk=budget.pk)
    if "scope" in changes or "scope_value" in changes:
        changes["scope_ref"] = _resolve_scope(
            budget.tenant, changes.get("scope", budget.scope), changes.get("scope_value", budget.scope_value)
        )
    audited_update(actor=actor, instance=budget, changes=changes, tenant=budget.tenant)
    if channels is not None:
        budget.channels.set(channels)
    budgets_changed(budget.tenant_id)
    budget_id = budget.pk
    transaction.on_commit(lambda: _rebuild_now(budget_id))
    return budget


def _rebuild_now(budget_id: int) -> None:
    budget = Budget.objects.select_related("tenant").get(pk=budget_id)
    start, end = period_bounds(budget.period, local_day(timezone.now(), budget.tenant.timezone))
    counter_rebuild(budget, start, end)


# --- the quota decision --------------------------------------------------------------------------------


@dataclass
class QuotaDecision:
    decision: str  # allow | block | downgrade
    model: str
    reason: str
    states: list[BudgetState]


@dataclass
class QuotaPlan:
    """The budgets covering one call, and the Redis commands that read their counters."""

    index: TenantBudgets
    reads: list[_Read]
    commands: list[tuple[Any, ...]]
    terms: list[_Terms]


def quota_plan(
    *, tenant_id: int, project: Any, api_key_id: int | None, end_user: str = "", peek: bool = False
) -> QuotaPlan:
    """Which budgets cover a call of this key for this end user today, and the commands that read them (kept
    in the process with the index it came from; no round trip when the index is held)."""
    index = tenant_budgets(tenant_id, peek=peek)
    now = timezone.now()
    key = (tenant_id, project.pk, api_key_id, end_user, local_day(now, index.timezone))
    plan = hot_peek("quota-plan", key, INDEX_SECONDS)
    if plan is not None and plan.index is index:
        return plan  # type: ignore[no-any-return]
    fact = {
        "project_id": project.pk,
        "api_key_id": api_key_id,
        "environment": project.environment,
        "end_user": end_user,
    }
    budgets = [index.budgets[rule.id] for rule in index.rules if rule.matches(fact, index.department_of)]
    reads = _reads(budgets, now)
    plan = QuotaPlan(index, reads, counter_commands(reads), [_terms(read, index) for read in reads])
    hot_put("quota-plan", key, plan)
    return plan


SUSPENDED_REASON = "The tenant is suspended: its calls are blocked until its account manager resumes it."


def quota_decide(
    *,
    tenant: Any,
    project: Any,
    api_key_id: int | None,
    model: str,
    end_user: str = "",
    estimated_tokens: int = 0,
    planned: tuple[QuotaPlan, list[Any]] | None = None,
) -> QuotaDecision:
    """allow / block / downgrade for the next call of this key, from the budgets that cover it (counters in
    Redis; the budget index held in the process). A block budget at or over its limit blocks; a downgrade budget
    at or over its limit names the cheaper model from its map. `planned`: a plan and the replies to its
    commands, read by the caller in its own round trip."""
    if tenant.status == Tenant.Status.SUSPENDED:
        # Its account manager stopped the tenant's spending (what it has already spent is still metered).
        return QuotaDecision("block", model, SUSPENDED_REASON, [])
    if planned is None:
        plan = quota_plan(tenant_id=tenant.pk, project=project, api_key_id=api_key_id, end_user=end_user)
        try:
            replies: list[Any] | None = redis_run(plan.commands) if plan.commands else []
        except Exception:  # noqa: BLE001  (Redis down: the counters are rebuilt from the rollups)
            replies = None
    else:
        plan, replies = planned
    if not plan.reads:
        return QuotaDecision("allow", model, "No budget covers this key.", [])
    states = _states_from(plan.reads, replies, terms=plan.terms)
    decision, chosen, reason = "allow", model, "Within every budget."
    for state in sorted(states, key=lambda s: -s.percent):
        budget = state.budget
        extra = Decimal(estimated_tokens) if budget.limit_tokens is not None else Decimal(0)
        if state.limit and state.spent + extra >= state.limit:
            if budget.action_at_limit == Budget.Action.BLOCK:
                return QuotaDecision(
                    "block", model, f"Budget '{budget.name}' is at {state.percent}% of its limit.", states
                )
            if budget.action_at_limit == Budget.Action.DOWNGRADE and decision == "allow":
                cheaper = downgrade_for(budget.downgrade_map, model)
                if cheaper:
                    decision, chosen = "downgrade", cheaper
                    reason = f"Budget '{budget.name}' is at {state.percent}% of its limit: use {cheaper}."
    return QuotaDecision(decision, chosen, reason, states)


def downgrade_for(mapping: dict[str, str] | None, model: str) -> str | None:
    """The cheaper model a downgrade budget names for `model`: by the name asked (in any case), else by the model
    the price book prices that name as (a dated snapshot, a gateway's `provider/model`) — a gateway's name gets
    the cheaper model under its own provider prefix, so that it can route it."""
    if not mapping:
        return None
    cheaper = {name.lower(): other for name, other in mapping.items()}
    found = cheaper.get(model.lower())
    if found:
        return found
    from metering.pricebook import price_book

    row = price_book.lookup(model=model, at=timezone.now())
    found = cheaper.get(row.model.lower()) if row is not None else None
    if found is None or row is None:
        return None
    prefix, slash, _rest = model.partition("/")
    return f"{prefix}/{found}" if slash and "/" not in found and prefix.lower() == row.provider.lower() else found


def tenants_spend_and_budgets(tenants: list[Any]) -> dict[int, tuple[Decimal, Decimal | None]]:
    """For the staff tenant list: month-to-date cost (USD, tenant-local month) and the highest percent of a budget
    in its current period, per tenant."""
    from django.db.models import Q

    from metering.models import UsageRollup
    from metering.services import rollups_flush

    if not tenants:
        return {}
    rollups_flush()  # read-your-writes, as every usage read
    now = timezone.now()
    scope = Q()
    for tenant in tenants:
        scope |= Q(tenant_id=tenant.pk, day__gte=local_day(now, tenant.timezone).replace(day=1))
    costs = dict(
        UsageRollup.objects.filter(scope, grain="day")
        .values("tenant_id")
        .annotate(cost=Sum("cost"))
        .values_list("tenant_id", "cost")
    )
    budgets = list(Budget.objects.filter(tenant__in=tenants, active=True).select_related("tenant"))
    highest: dict[int, Decimal] = {}
    for state in budget_states(budgets, now=now):
        tenant_id = state.budget.tenant_id
        highest[tenant_id] = max(highest.get(tenant_id, Decimal(0)), state.percent)
    return {t.pk: (Decimal(costs.get(t.pk) or 0), highest.get(t.pk)) for t in tenants}

"""Writes of the metering app: ingestion (SPEC §5.1–5.4), re-rating, the price book."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from core.pg import prepared_connection, prepared_rows
from metering.events import CanonicalEvent, EventInvalid, event_parse
from metering.models import ROLLUP_SUMS
from metering.rating import RateCardResolver, event_cost, held_rate_cards
from tenants.models import ApiKey, Project, Tenant

EVENT_COLUMNS = (
    "tenant_id",
    "project_id",
    "api_key_id",
    "event_id",
    "occurred_at",
    "received_at",
    "provider",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "feature",
    "end_user",
    "session_id",
    "prompt_template",
    "environment",
    "latency_ms",
    "status",
    "cost",
    "price_id",
    "rating_status",
    "estimated",
    "estimate_method",
    "billable",
    "raw_usage",
    "metadata",
)
SUMS = ROLLUP_SUMS
# What a usage rollup is kept by besides its time: where the calls came from, and how they were rated and billed.
ROLLUP_DIMENSIONS = (
    "project_id",
    "api_key_id",
    "model",
    "feature",
    "environment",
    "provider",
    "price_id",
    "rating_status",
    "estimated",
    "billable",
)
USAGE_ROLLUP_KEY = ("tenant_id", "grain", "bucket", *ROLLUP_DIMENSIONS)
DELTA_COLUMNS = ("kind", *USAGE_ROLLUP_KEY, "day", "end_user", *SUMS)
# The dimensions of a delta row that only counts for an end user's day.
_NO_DIMENSIONS = (0, 0, "", "", "", "", 0, "", False, True)
END_USER_ROLLUP_KEY = ("tenant_id", "day", "end_user")


@dataclass
class IngestScope:
    """Who is sending: fixes or constrains the tenant, project and key of every event."""

    kind: str  # project_key | user | gateway
    api_key: ApiKey | None = None
    user: Any = None


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    corrected: int = 0
    conflicts: int = 0
    estimated: int = 0
    unpriced: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "corrected": self.corrected,
            "conflicts": self.conflicts,
            "estimated": self.estimated,
            "unpriced": self.unpriced,
            "rejected": self.rejected,
        }

    def reject(self, index: int, event_id: str | None, errors: dict[str, list[str]], code: str = "invalid") -> None:
        self.rejected.append({"index": index, "event_id": event_id, "code": code, "errors": errors})
        self.outcomes[index] = "rejected"


_NO_COST = Decimal(0)


@dataclass(slots=True)
class _Row:
    """A validated event, resolved to its tenant, project and key, rated."""

    event: CanonicalEvent
    tenant: Tenant
    project: Project
    api_key_id: int | None
    environment: str
    cost: Decimal
    price_id: int | None
    priced: bool
    billable: bool
    provider: str = ""
    outcome: str = "accepted"
    key: tuple[int, str] = field(init=False)  # (tenant id, event_id): the event's identity, forever
    # (index, content hash) of an estimate earlier in the same request that this real usage replaced before
    # either was stored; its outcome is counted once this row's is known.
    absorbed: tuple[int, str] | None = None
    # (index, content hash) of estimates later in the same request than this real usage: each repeats an estimate
    # this id had (a duplicate) or is a conflict, decided once this row's outcome is known.
    trailing: tuple[tuple[int, str], ...] = ()
    stored: tuple[str, ...] = ()  # the stored id's content hash and corrected estimate's hash, when it existed

    def __post_init__(self) -> None:
        self.key = (self.tenant.id, self.event.event_id)


class _Resolver:
    """Tenant, project and key lookups for one ingest call, each fetched once."""

    def __init__(self, scope: IngestScope) -> None:
        self.scope = scope
        self.tenants: dict[str, Tenant | None] = {}
        self.projects: dict[tuple[int, str], Project | None] = {}
        self.keys: dict[str, ApiKey | None] = {}
        self.cards: dict[int, RateCardResolver] = {}
        self._user_tenants: list[Tenant] | None = None
        # A project key fixes the tenant and project of every event: read once, not per event.
        self.key_owner = (scope.api_key.tenant, scope.api_key.project) if scope.api_key is not None else None

    def tenant(self, slug: str) -> Tenant | None:
        if slug not in self.tenants:
            if self.scope.kind == "user":
                from tenants.selectors import tenants_for_user

                self.tenants[slug] = tenants_for_user(self.scope.user).filter(slug=slug).first()
            else:
                self.tenants[slug] = Tenant.objects.filter(slug=slug).first()
        return self.tenants[slug]

    def implied_tenant(self) -> Tenant | None:
        if self._user_tenants is None:
            from tenants.selectors import tenants_for_user

            self._user_tenants = list(tenants_for_user(self.scope.user)[:2])
        return self._user_tenants[0] if len(self._user_tenants) == 1 else None

    def project(self, tenant: Tenant, slug: str) -> Project | None:
        cache_key = (tenant.pk, slug)
        if cache_key not in self.projects:
            if self.scope.kind == "user":
                from tenants.selectors import projects_for_user

                projects = projects_for_user(self.scope.user, tenant)
            else:
                projects = Project.objects.filter(tenant=tenant)
            self.projects[cache_key] = projects.filter(slug=slug).first()
        return self.projects[cache_key]

    def key(self, prefix: str) -> ApiKey | None:
        if prefix not in self.keys:
            self.keys[prefix] = ApiKey.objects.filter(prefix=prefix).first()
        return self.keys[prefix]

    def rate_cards(self, tenant: Tenant) -> RateCardResolver:
        cards = self.cards.get(tenant.id)
        if cards is None:
            cards = self.cards[tenant.id] = held_rate_cards(tenant.id, tenant.timezone)
        return cards

    def resolve(self, event: CanonicalEvent) -> tuple[Tenant, Project, int | None] | dict[str, list[str]]:
        scope = self.scope
        if scope.kind == "project_key":
            assert self.key_owner is not None
            tenant, project = self.key_owner
            if event.tenant and event.tenant != tenant.slug:
                return {"tenant": ["Does not match the API key's tenant."]}
            if event.project and event.project != project.slug:
                return {"project": ["Does not match the API key's project."]}
        else:
            if event.tenant:
                found = self.tenant(event.tenant)
                if found is None:
                    return {"tenant": ["No such tenant."]}
                tenant = found
            elif scope.kind == "user" and (implied := self.implied_tenant()) is not None:
                tenant = implied
            else:
                return {"tenant": ["Name the tenant (required with a gateway token or a multi-tenant user)."]}
            if not event.project:
                return {"project": ["Name the project (required with a gateway or personal token)."]}
            found_project = self.project(tenant, event.project)
            if found_project is None:
                return {"project": ["No such project in this tenant."]}
            project = found_project
        api_key_id = scope.api_key.pk if scope.api_key is not None else None
        if event.api_key:
            key = self.key(event.api_key)
            if key is None or key.tenant_id != tenant.pk or key.project_id != project.pk:
                return {"api_key": ["No such API key in this project."]}
            api_key_id = key.pk
        return tenant, project, api_key_id


def _rate(row_parts: tuple[Tenant, Project, int | None], event: CanonicalEvent, resolver: _Resolver) -> _Row:
    tenant, project, api_key_id = row_parts
    card = resolver.rate_cards(tenant).card(model=event.model, provider=event.provider, at=event.occurred_at)
    environment = event.dimensions["environment"] or project.environment
    billable = not (tenant.is_internal or project.is_internal)
    if card is None:
        return _Row(event, tenant, project, api_key_id, environment, _NO_COST, None, False, billable, event.provider)
    cost = event_cost(card, event.buckets)
    provider = event.provider or card.provider
    return _Row(event, tenant, project, api_key_id, environment, cost, card.price_id, True, billable, provider)


@dataclass
class IngestPlan:
    """A request's events validated, resolved and rated, not yet stored: `result` holds the rejections and the
    duplicates within the request, `rows` the events to store."""

    result: IngestResult
    rows: list[_Row]
    now: dt.datetime


def events_ingest(*, scope: IngestScope, raw_events: list[Any], now: dt.datetime | None = None) -> IngestResult:
    """Validate, rate and store a batch. Valid events are stored even when neighbours are rejected;
    (tenant, event_id) is stored once, forever; rollups change in the same transaction."""
    return events_store(events_plan(scope=scope, raw_events=raw_events, now=now))


def events_plan(*, scope: IngestScope, raw_events: list[Any], now: dt.datetime | None = None) -> IngestPlan:
    """The first half of `events_ingest`, which writes nothing: each event validated, resolved to its tenant,
    project and key, rated; repeats of an event_id within the request decided."""
    now = now or timezone.now()
    result = IngestResult()
    resolver = _Resolver(scope)
    pending: dict[tuple[int, str], _Row] = {}
    for index, raw in enumerate(raw_events):
        try:
            event = event_parse(raw, index=index, now=now)
        except EventInvalid as exc:
            result.reject(index, exc.event_id, exc.errors)
            continue
        except RecursionError:
            result.reject(index, None, {"non_field_errors": ["Nested too deeply."]})
            continue
        resolved = resolver.resolve(event)
        if isinstance(resolved, dict):
            result.reject(index, event.event_id, resolved)
            continue
        row = _rate(resolved, event, resolver)
        earlier = pending.get(row.key)
        if earlier is None:
            pending[row.key] = row
        elif earlier.event.content_hash == event.content_hash:
            result.duplicates += 1
            result.outcomes[index] = "duplicate"
        elif earlier.event.estimated and not event.estimated:
            # The estimate was never stored: the real usage replaces it before it is.
            row.absorbed = (earlier.event.index, earlier.event.content_hash)
            pending[row.key] = row
        elif event.estimated and not earlier.event.estimated:
            # An estimate after the real usage: a repeat of the estimate that usage corrects, or a conflict.
            earlier.trailing += ((index, event.content_hash),)
        else:
            result.conflicts += 1
            result.outcomes[index] = "conflict"
    return IngestPlan(result, list(pending.values()), now)


def events_store(plan: IngestPlan, *, counted_ahead: bool = False) -> IngestResult:
    """The second half of `events_ingest`: the planned events stored (each once), their outcomes counted.
    `counted_ahead`: budget counters already hold the events that turn out new (`events_counters_ahead`); the
    caller settles or takes back those increments by the outcomes."""
    if plan.rows:
        _store(plan.rows, now=plan.now, result=plan.result, counted_ahead=counted_ahead)
    return plan.result


def events_counters_ahead(plan: IngestPlan) -> Any:
    """The budget counter increments (billing.budgets.CounterPlan, or None) of a plan's events, worked out from
    the budget indexes this process holds: a single event's are sent in its request's first Redis round trip,
    ahead of the write, rather than in a round trip of their own after it."""
    from billing.budgets import counters_plan

    return counters_plan(_counted_facts(plan.rows), [], peek=True) if plan.rows else None


# --- storage --------------------------------------------------------------------------------------
# The SQL below is assembled only from constant table/column names and placeholder lists; every value
# is a bound parameter (hence the S608 exemptions).


def _placeholders(rows: int, columns: int) -> str:
    one = "(" + ", ".join(["%s"] * columns) + ")"
    return ", ".join([one] * rows)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _store(rows: list[_Row], *, now: dt.datetime, result: IngestResult, counted_ahead: bool = False) -> None:
    # One order for every writer: concurrent batches never wait on each other in a cycle.
    if len(rows) > 1:
        rows.sort(key=lambda r: r.key)
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        # New events, their keys and their rollup deltas in one statement, atomic by itself; then, in a
        # transaction of their own, the ids already stored (duplicates, conflicts, corrections of estimates).
        inserted = _pg_insert_new(rows, now)
        new = [row for row in rows if row.key in inserted]
        for row in new:
            row.outcome = "accepted"
        if new and not counted_ahead:
            budgets_after_commit(_counted_facts(new), [], db)
        existing = [row for row in rows if row.key not in inserted]
        if existing:
            _store_existing(existing, now, inserted=[])
    else:
        with transaction.atomic():  # the ids claimed and their events written together
            _store_existing(rows, now, inserted=_insert_keys(rows), counted_ahead=counted_ahead)
    if corrected := [(row.absorbed[1], *row.key) for row in rows if row.absorbed and row.outcome == "accepted"]:
        with connection.cursor() as cursor:  # a new id whose estimate came first: a later repeat of it is a duplicate
            cursor.executemany(
                "UPDATE metering_eventkey SET corrected_hash = %s WHERE tenant_id = %s AND event_id = %s", corrected
            )
    for row in rows:
        index = row.event.index
        if row.outcome == "accepted":
            result.accepted += 1
        elif row.outcome == "corrected":
            result.corrected += 1
        elif row.outcome == "duplicate":
            result.duplicates += 1
        else:
            result.conflicts += 1
        if row.outcome in ("accepted", "corrected"):
            result.estimated += row.event.estimated
            result.unpriced += not row.priced
        result.outcomes[index] = row.outcome
        if row.absorbed is not None:
            _count_absorbed(row, *row.absorbed, result)
        for trailing_index, trailing_hash in row.trailing:
            _count_trailing(row, trailing_index, trailing_hash, result)


def _count_absorbed(row: _Row, index: int, content_hash: str, result: IngestResult) -> None:
    """The outcome of an estimate (at `index`) that real usage later in the same request replaced, as if the two
    had come one after the other: with a new id, the estimate is accepted and the real usage corrects it;
    otherwise the estimate repeats what is stored (or the estimate it replaced) — a duplicate — or a conflict."""
    if row.outcome == "accepted":
        result.outcomes[index], result.outcomes[row.event.index] = "accepted", "corrected"
        result.corrected += 1  # the row's own count, accepted, stands for the estimate
    elif content_hash in row.stored:
        result.outcomes[index] = "duplicate"
        result.duplicates += 1
    else:
        result.outcomes[index] = "conflict"
        result.conflicts += 1


def _count_trailing(row: _Row, index: int, content_hash: str, result: IngestResult) -> None:
    """The outcome of an estimate (at `index`) that came after this real usage in the same request, as if it had
    come after it: a repeat of the estimate the id held (stored, or earlier in the request and now corrected) is a
    duplicate; any other estimate a conflict."""
    repeats = content_hash in row.stored or (
        row.absorbed is not None and row.outcome == "accepted" and content_hash == row.absorbed[1]
    )
    result.outcomes[index] = "duplicate" if repeats else "conflict"
    if repeats:
        result.duplicates += 1
    else:
        result.conflicts += 1


@transaction.atomic
def _insert_keys(rows: list[_Row]) -> list[_Row]:
    """Claim the ids of new events (SQLite; PostgreSQL claims them in the combined statement)."""
    inserted: set[tuple[int, str]] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, 1000):
            params: list[Any] = []
            for row in chunk:
                params += [
                    row.tenant.pk,
                    row.event.event_id,
                    row.event.occurred_at,
                    row.event.content_hash,
                    row.event.estimated,
                ]
            cursor.execute(
                "INSERT INTO metering_eventkey (tenant_id, event_id, occurred_at, content_hash, estimated) "
                f"VALUES {_placeholders(len(chunk), 5)} ON CONFLICT (tenant_id, event_id) DO NOTHING "
                "RETURNING tenant_id, event_id",
                params,
            )
            inserted.update((tenant_id, event_id) for tenant_id, event_id in cursor.fetchall())
    return [row for row in rows if row.key in inserted]


@transaction.atomic
def _store_existing(rows: list[_Row], now: dt.datetime, *, inserted: list[_Row], counted_ahead: bool = False) -> None:
    """Write `inserted` (rows whose ids were just claimed) and decide the others, whose ids were stored
    before: the same content is a duplicate, an estimate followed by real usage is corrected (the estimate is
    removed), anything else a conflict (the first one is kept). `counted_ahead`: budgets already count the
    inserted rows."""
    claimed = {row.key for row in inserted}
    existing = [row for row in rows if row.key not in claimed]
    to_write = list(inserted)
    for row in to_write:
        row.outcome = "accepted"
    removed: list[dict[str, Any]] = []
    with connection.cursor() as cursor:
        stored = _stored_keys(cursor, [row.key for row in existing]) if existing else {}
        for row in existing:
            content_hash, was_estimated, old_occurred_at, corrected_hash = stored[row.key]
            row.stored = tuple(h for h in (content_hash, corrected_hash) if h)
            if row.event.content_hash in (content_hash, corrected_hash):  # a repeat, or of an estimate corrected since
                row.outcome = "duplicate"
            elif was_estimated and not row.event.estimated and _claim_correction(cursor, row):
                row.outcome = "corrected"
                removed += _remove_event(cursor, row.tenant.pk, row.event.event_id, old_occurred_at)
                to_write.append(row)
            elif was_estimated and _stored_keys(cursor, [row.key]).get(row.key, ("",))[0] == row.event.content_hash:
                # Another sender corrected the estimate first, with this very content (a retry racing its
                # original): a repeat of what is now stored.
                row.outcome = "duplicate"
            else:
                row.outcome = "conflict"
        if to_write or removed:
            counted = [_row_facts(row) for row in to_write]
            budgets_after_commit(counted[len(inserted) :] if counted_ahead else counted, removed)
            _insert_events(cursor, to_write, now)
            rollups_apply(cursor, counted, removed, {row.tenant.pk: row.tenant.timezone for row in rows})


_PG_TYPES = {
    "tenant_id": "bigint",
    "project_id": "bigint",
    "api_key_id": "bigint",
    "event_id": "text",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "provider": "text",
    "model": "text",
    "input_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "cache_write_tokens": "bigint",
    "output_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "feature": "text",
    "end_user": "text",
    "session_id": "text",
    "prompt_template": "text",
    "environment": "text",
    "latency_ms": "integer",
    "status": "text",
    "cost": "numeric",
    "price_id": "bigint",
    "rating_status": "text",
    "estimated": "boolean",
    "estimate_method": "text",
    "billable": "boolean",
    "raw_usage": "jsonb",
    "metadata": "jsonb",
    "content_hash": "text",
}
_INPUT_COLUMNS = (*EVENT_COLUMNS, "content_hash")
_DELTA_SUMS_SQL = (
    "sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), "
    "sum(reasoning_tokens), count(*), count(*) FILTER (WHERE status = 'error'), sum(cost), "
    "coalesce(sum(cost) FILTER (WHERE billable), 0), count(*) FILTER (WHERE estimated), "
    "coalesce(sum(cost) FILTER (WHERE estimated), 0), count(*) FILTER (WHERE rating_status = 'unpriced')"
)
_BUCKETS = """
    SELECT i.tenant_id, i.project_id, i.model, i.feature, i.environment, i.end_user, i.input_tokens,
        i.cached_input_tokens, i.cache_write_tokens, i.output_tokens, i.reasoning_tokens, i.status, i.cost,
        i.billable, i.estimated, i.rating_status, coalesce(i.api_key_id, 0) AS key_id, i.provider,
        coalesce(i.price_id, 0) AS price_ref,
        date_trunc('hour', i.occurred_at) AS hour,
        date_trunc('day', i.occurred_at AT TIME ZONE t.timezone) AT TIME ZONE t.timezone AS day_start,
        (i.occurred_at AT TIME ZONE t.timezone)::date AS local_day,
        (date_trunc('hour', i.occurred_at) AT TIME ZONE t.timezone)::date AS hour_day
"""
# Buckets as in rollups_apply: UTC hours; tenant-local days (bucket = local midnight); hourly rows carry
# the local date of their hour. Data-modifying CTEs all run to completion, read or not. The new events (n) are
# joined to their claimed ids once and read twice (a second join cost PostgreSQL ≈ 2 ms per 1,000 events).
_PG_INSERT_NEW = f"""
WITH src AS {{read_twice}}({{input}}),
k AS (
    INSERT INTO metering_eventkey (tenant_id, event_id, occurred_at, content_hash, estimated)
    SELECT tenant_id, event_id, occurred_at, content_hash, estimated FROM src ORDER BY tenant_id, event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id
),
n AS MATERIALIZED (SELECT src.* FROM src JOIN k USING (tenant_id, event_id)),
e AS (INSERT INTO metering_usageevent ({", ".join(EVENT_COLUMNS)}) SELECT {", ".join(EVENT_COLUMNS)} FROM n),
f AS ({{buckets}} FROM n i JOIN tenants_tenant t ON t.id = i.tenant_id),
d AS (INSERT INTO metering_rollupdelta ({{delta_columns}}) {{deltas}})
SELECT tenant_id, event_id FROM k
"""
# Large batches: one delta row per bucket (the flush has fewer rows to fold) — the hourly, the daily and the end-user
# buckets as three grouping sets of one pass over the events (GROUPING() tells them apart), which costs PostgreSQL
# about half of three GROUP BYs over the same rows joined together.
_GROUPED_DIMENSIONS = (
    "project_id, key_id, model, feature, environment, provider, price_ref, rating_status, estimated, billable"
)
_GROUPED_DELTAS = f"""
    SELECT CASE WHEN GROUPING(end_user) = 0 THEN 'end_user' ELSE 'usage' END, tenant_id,
        CASE WHEN GROUPING(hour) = 0 THEN 'hour' WHEN GROUPING(day_start) = 0 THEN 'day' ELSE '' END,
        coalesce(hour, day_start), coalesce(project_id, 0), coalesce(key_id, 0), coalesce(model, ''),
        coalesce(feature, ''), coalesce(environment, ''), coalesce(provider, ''), coalesce(price_ref, 0),
        coalesce(rating_status, ''), coalesce(estimated, false), coalesce(billable, true),
        CASE WHEN GROUPING(hour) = 0 THEN hour_day ELSE local_day END, coalesce(end_user, ''), {_DELTA_SUMS_SQL}
    FROM f GROUP BY GROUPING SETS (
        (tenant_id, hour, {_GROUPED_DIMENSIONS}, hour_day),
        (tenant_id, day_start, {_GROUPED_DIMENSIONS}, local_day),
        (tenant_id, local_day, end_user)
    )
"""
# Up to JSON_BATCH events: one delta row per event and bucket, without the cost of grouping.
_EVENT_SUMS_SQL = (
    "input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, 1, "
    "(status = 'error')::int, cost, CASE WHEN billable THEN cost ELSE 0 END, estimated::int, "
    "CASE WHEN estimated THEN cost ELSE 0 END, (rating_status = 'unpriced')::int"
)
_EVENT_DELTAS = f"""
    SELECT 'event', tenant_id, '', hour, project_id, key_id, model, feature, environment, provider, price_ref,
        rating_status, estimated, billable, local_day, end_user, {_EVENT_SUMS_SQL}, day_start, hour_day FROM f
"""
_JSON_INPUT = (
    "SELECT * FROM jsonb_to_recordset(%s::jsonb) AS i(" + ", ".join(f"{c} {_PG_TYPES[c]}" for c in _INPUT_COLUMNS) + ")"
)
# Whitespace folded: psycopg keeps the parsed form of statements up to 4 KiB (a test holds it there).
_EVENT_DELTA_COLUMNS = ", ".join((*DELTA_COLUMNS, "day_bucket", "hour_day"))
_PG_INSERT_JSON = " ".join(
    _PG_INSERT_NEW.format(
        read_twice="", input=_JSON_INPUT, deltas=_EVENT_DELTAS, delta_columns=_EVENT_DELTA_COLUMNS, buckets=_BUCKETS
    ).split()
)
_PG_INSERT_JSON_LIBPQ = _PG_INSERT_JSON.replace("%s::jsonb", "$1::jsonb")
# One event (through libpq): its values as plain text parameters, without a JSON document to parse, each written
# where it goes — the key's row, the event's row, the values its buckets are worked out from — rather than read
# from an input row joined back to the claimed key (the same rows; a tenth less of PostgreSQL's time per event).
_ONE = {c: f"${n}::{_PG_TYPES[c]}" for n, c in enumerate(_INPUT_COLUMNS, 1)}
_BUCKET_INPUTS = sorted(set(re.findall(r"\bi\.(\w+)", _BUCKETS)))  # the values _BUCKETS reads
_PG_INSERT_ONE = " ".join(
    f"""
WITH k AS (
    INSERT INTO metering_eventkey (tenant_id, event_id, occurred_at, content_hash, estimated)
    VALUES ({_ONE["tenant_id"]}, {_ONE["event_id"]}, {_ONE["occurred_at"]}, {_ONE["content_hash"]}, {_ONE["estimated"]})
    ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id
),
e AS (
    INSERT INTO metering_usageevent ({", ".join(EVENT_COLUMNS)})
    SELECT {", ".join(_ONE[c] for c in EVENT_COLUMNS)} FROM k
),
f AS ({_BUCKETS} FROM (SELECT {", ".join(f"{_ONE[c]} AS {c}" for c in _BUCKET_INPUTS)}) i JOIN k ON true
    JOIN tenants_tenant t ON t.id = i.tenant_id),
d AS (INSERT INTO metering_rollupdelta ({_EVENT_DELTA_COLUMNS}) {_EVENT_DELTAS})
SELECT tenant_id, event_id FROM k
""".split()
)
# Larger batches are copied in PostgreSQL's binary format (no text to format here or to parse there); JSON
# travels as text and becomes jsonb in the statement.
_STAGING = "meterline_ingest_rows"
_STAGING_TYPES = {c: "text" if _PG_TYPES[c] == "jsonb" else _PG_TYPES[c] for c in _INPUT_COLUMNS}
_STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ("
    + ", ".join(f"{c} {_STAGING_TYPES[c]}" for c in _INPUT_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_STAGING_COPY = f"COPY {_STAGING} ({', '.join(_INPUT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_STAGING_INPUT = (
    "SELECT "
    + ", ".join(f"{c}::jsonb AS {c}" if _PG_TYPES[c] == "jsonb" else c for c in _INPUT_COLUMNS)
    + f" FROM {_STAGING}"
)
JSON_BATCH = 100  # larger batches go through COPY into a staging table
# The staging table is read twice where the others' input is held once: PostgreSQL scans a table cheaper than it
# writes and reads back a copy of it (≈ 1.4 ms per 1,000 events).
_PG_INSERT_STAGED = " ".join(
    _PG_INSERT_NEW.format(
        read_twice="NOT MATERIALIZED ",
        input=_STAGING_INPUT,
        deltas=_GROUPED_DELTAS,
        delta_columns=", ".join(DELTA_COLUMNS),
        buckets=_BUCKETS,
    ).split()
)


def _json_row(row: _Row, received_at: str) -> dict[str, Any]:
    event, buckets, dims = row.event, row.event.buckets, row.event.dimensions
    return {
        "tenant_id": row.tenant.id,
        "project_id": row.project.id,
        "api_key_id": row.api_key_id,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at.isoformat(),
        "received_at": received_at,
        "provider": row.provider,
        "model": event.model,
        "input_tokens": buckets.input_tokens,
        "cached_input_tokens": buckets.cached_input_tokens,
        "cache_write_tokens": buckets.cache_write_tokens,
        "output_tokens": buckets.output_tokens,
        "reasoning_tokens": buckets.reasoning_tokens,
        "feature": dims["feature"],
        "end_user": dims["end_user"],
        "session_id": dims["session_id"],
        "prompt_template": dims["prompt_template"],
        "environment": row.environment,
        "latency_ms": event.latency_ms,
        "status": event.status,
        "cost": str(row.cost),
        "price_id": row.price_id,
        "rating_status": "priced" if row.priced else "unpriced",
        "estimated": event.estimated,
        "estimate_method": event.estimate_method,
        "billable": row.billable,
        "raw_usage": event.raw_usage,
        "metadata": event.metadata or {},
        "content_hash": event.content_hash,
    }


def _pg_insert_new(rows: list[_Row], received_at: dt.datetime) -> set[tuple[int, str]]:
    """Claim the ids of new events and store them with their rollup deltas, in one statement (atomic by itself
    in autocommit), prepared once per database session so that PostgreSQL plans it once: through libpq
    (core.pg) when the connection is in autocommit — one event as plain parameters, up to JSON_BATCH as one
    JSON document — otherwise on a server-side binding cursor, which psycopg prepares after a few executions.
    Larger batches are copied into a staging table first."""
    import psycopg

    if len(rows) <= JSON_BATCH and (db := prepared_connection()) is not None:
        if len(rows) == 1:
            found = prepared_rows("meterline_ingest_one", _PG_INSERT_ONE, _text_values(rows[0], received_at), db)
        else:
            body = _json_text([_json_row(row, received_at.isoformat()) for row in rows])
            found = prepared_rows("meterline_ingest_json", _PG_INSERT_JSON_LIBPQ, [body], db)
        return {(int(tenant_id), event_id.decode()) for tenant_id, event_id in found}  # type: ignore[union-attr, arg-type]
    if len(rows) <= JSON_BATCH:
        body = _json_text([_json_row(row, received_at.isoformat()) for row in rows])
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_PG_INSERT_JSON, [body])
            return {(tenant_id, event_id) for tenant_id, event_id in cursor.fetchall()}
    # Larger batches: COPY into a temporary table whose rows go at commit, then the same statement, on a
    # server-side binding cursor so that it is prepared like the others (planning it took ≈ 0.75 ms a batch). The
    # table lives with the database session, which a reconnect loses: it is declared every time.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGING_DDL)
        with cursor.cursor.copy(_STAGING_COPY) as copy:
            copy.set_types([_STAGING_TYPES[c] for c in _INPUT_COLUMNS])
            for value in _pg_input_rows(rows, received_at):
                copy.write_row(value)
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as statement:
            statement.execute(_PG_INSERT_STAGED)
            return {(tenant_id, event_id) for tenant_id, event_id in statement.fetchall()}


def _text_values(row: _Row, received_at: dt.datetime) -> list[str | None]:
    """The _INPUT_COLUMNS values of a row as PostgreSQL reads them in text: strings and None as they are,
    booleans t/f, datetimes in ISO 8601, whole numbers and Decimal costs by str (in one expression: the single-event
    path runs it for every column of every event)."""
    return [
        value
        if value is None or (kind := type(value)) is str
        else ("t" if value else "f")
        if kind is bool
        else value.isoformat()
        if kind is dt.datetime
        else str(value)
        for value in (*_event_values(row, received_at), row.event.content_hash)
    ]


def _pg_input_rows(rows: list[_Row], received_at: dt.datetime) -> list[tuple]:
    return [(*_event_values(row, received_at), row.event.content_hash) for row in rows]


def sqlite_datetime(text: str) -> dt.datetime:
    """A datetime as a raw SQLite read answers it (UTC text, as the ORM and core.apps store it), made aware."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _stored_keys(cursor: Any, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple[str, bool, dt.datetime, str]]:
    """(content_hash, estimated, occurred_at, corrected_hash) of each stored key."""
    found = {}
    for chunk in _chunks(keys, 500):
        params = [value for key in chunk for value in key]
        cursor.execute(
            "SELECT tenant_id, event_id, content_hash, estimated, occurred_at, corrected_hash FROM metering_eventkey "
            f"WHERE (tenant_id, event_id) IN (VALUES {_placeholders(len(chunk), 2)})",
            params,
        )
        for tenant_id, event_id, content_hash, estimated, occurred_at, corrected_hash in cursor.fetchall():
            if isinstance(occurred_at, str):  # SQLite
                occurred_at = sqlite_datetime(occurred_at)
            found[(tenant_id, event_id)] = (content_hash, bool(estimated), occurred_at, corrected_hash)
    return found


def _claim_correction(cursor: Any, row: _Row) -> bool:
    """Conditional update: exactly one concurrent sender replaces a given estimate."""
    cursor.execute(
        "UPDATE metering_eventkey SET corrected_hash = content_hash, content_hash = %s, estimated = %s, "
        "occurred_at = %s WHERE tenant_id = %s AND event_id = %s AND estimated",
        [row.event.content_hash, False, row.event.occurred_at, row.tenant.pk, row.event.event_id],
    )
    return cursor.rowcount == 1


_REMOVED_COLUMNS = (
    "tenant_id",
    "project_id",
    "api_key_id",
    "model",
    "provider",
    "price_id",
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
    "rating_status",
    "estimated",
    "billable",
)


def _remove_event(cursor: Any, tenant_id: int, event_id: str, occurred_at: dt.datetime) -> list[dict[str, Any]]:
    cursor.execute(
        f"DELETE FROM metering_usageevent WHERE tenant_id = %s AND event_id = %s AND occurred_at = %s "
        f"RETURNING {', '.join(_REMOVED_COLUMNS)}",
        [tenant_id, event_id, occurred_at],
    )
    return [dict(zip(_REMOVED_COLUMNS, values, strict=True)) for values in cursor.fetchall()]


def _insert_events(cursor: Any, rows: list[_Row], received_at: dt.datetime) -> None:
    if not rows:
        return
    values = [_event_values(row, received_at) for row in rows]
    columns = ", ".join(EVENT_COLUMNS)
    if connection.vendor == "postgresql" and len(values) > 20:
        # COPY into the partitioned parent: the fastest path, routed to the month's partition.
        with cursor.cursor.copy(f"COPY metering_usageevent ({columns}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
        return
    for chunk in _chunks(values, 500):
        cursor.execute(
            f"INSERT INTO metering_usageevent ({columns}) VALUES {_placeholders(len(chunk), len(EVENT_COLUMNS))}",
            [v for value in chunk for v in value],
        )


def _event_values(row: _Row, received_at: dt.datetime) -> tuple:
    """The EVENT_COLUMNS values of a row, in order."""
    event, buckets, dims = row.event, row.event.buckets, row.event.dimensions
    return (
        row.tenant.id,
        row.project.id,
        row.api_key_id,
        event.event_id,
        event.occurred_at,
        received_at,
        row.provider,
        event.model,
        buckets.input_tokens,
        buckets.cached_input_tokens,
        buckets.cache_write_tokens,
        buckets.output_tokens,
        buckets.reasoning_tokens,
        dims["feature"],
        dims["end_user"],
        dims["session_id"],
        dims["prompt_template"],
        row.environment,
        event.latency_ms,
        event.status,
        row.cost,
        row.price_id,
        "priced" if row.priced else "unpriced",
        event.estimated,
        event.estimate_method,
        row.billable,
        None if event.raw_usage is None else _json_text(event.raw_usage),
        _json_text(event.metadata) if event.metadata else "{}",
    )


def _json_text(value: Any) -> str:
    """JSON for a jsonb column (its formatting is not kept, so the fast encoder serves when it can)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # numbers beyond 64 bits
        return json.dumps(value, ensure_ascii=False)


# --- rollups --------------------------------------------------------------------------------------


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _bucket_keys(tenant_id: int, tz: str, occurred_at: dt.datetime, dims: dict[str, Any]) -> tuple[tuple, tuple, tuple]:
    local = occurred_at.astimezone(_zone(tz))
    day = local.date()
    day_start = dt.datetime.combine(day, dt.time(), tzinfo=_zone(tz)).astimezone(dt.UTC)
    hour = occurred_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    common = (
        dims["project_id"],
        dims["api_key_id"] or 0,
        dims["model"],
        dims["feature"],
        dims["environment"],
        dims["provider"],
        dims["price_id"] or 0,
        dims["rating_status"],
        bool(dims["estimated"]),
        bool(dims["billable"]),
    )
    hourly = (tenant_id, "hour", hour, *common)
    hour_day = hour.astimezone(_zone(tz)).date()
    daily = (tenant_id, "day", day_start, *common)
    end_user = (tenant_id, day, dims["end_user"])
    return (hourly, hour_day), (daily, day), end_user


def _sums(
    *, buckets: dict[str, int], status: str, cost: Decimal, priced: bool, estimated: bool, billable: bool, sign: int
) -> list[Any]:
    return [
        sign * buckets["input_tokens"],
        sign * buckets["cached_input_tokens"],
        sign * buckets["cache_write_tokens"],
        sign * buckets["output_tokens"],
        sign * buckets["reasoning_tokens"],
        sign,
        sign * (status == "error"),
        sign * cost,
        sign * (cost if billable else Decimal(0)),
        sign * estimated,
        sign * (cost if estimated else Decimal(0)),
        sign * (not priced),
    ]


def budgets_after_commit(added: list[dict[str, Any]], removed: list[dict[str, Any]], db: Any = None) -> None:
    """Budget counters follow the stored events once they are committed (before the response is sent): at once
    when they already are (`db`, the connection, in autocommit outside any atomic block), as `on_commit` would."""
    from billing.budgets import counters_apply

    if db is not None and not db.in_atomic_block and db.get_autocommit():
        counters_apply(added, removed)
    else:
        transaction.on_commit(lambda: counters_apply(added, removed))


def _counted_facts(rows: list[_Row]) -> list[dict[str, Any]]:
    """What budgets count of stored events (billing.budgets.counters_apply), summed over events they cannot tell
    apart — same tenant, project, key, environment and end user, in the same UTC quarter hour (a quarter hour
    never spans two local days in any time zone): a batch sends one fact per group rather than per event."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        event, buckets = row.event, row.event.buckets
        at = event.occurred_at
        key: tuple[Any, ...] = (row.tenant.id, row.project.id, row.api_key_id, row.environment)
        key += (event.dimensions["end_user"], at.date(), at.hour, at.minute // 15)
        cell = groups.get(key)
        if cell is None:
            groups[key] = [
                at,
                row.cost,
                buckets.input_tokens,
                buckets.cached_input_tokens,
                buckets.cache_write_tokens,
                buckets.output_tokens,
            ]
        else:
            cell[1] += row.cost
            cell[2] += buckets.input_tokens
            cell[3] += buckets.cached_input_tokens
            cell[4] += buckets.cache_write_tokens
            cell[5] += buckets.output_tokens
    return [
        {
            "tenant_id": tenant_id,
            "project_id": project_id,
            "api_key_id": api_key_id,
            "environment": environment,
            "end_user": end_user,
            "occurred_at": at,
            "cost": cost,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached_input_tokens,
            "cache_write_tokens": cache_write_tokens,
            "output_tokens": output_tokens,
        }
        for (tenant_id, project_id, api_key_id, environment, end_user, *_quarter), (
            at,
            cost,
            input_tokens,
            cached_input_tokens,
            cache_write_tokens,
            output_tokens,
        ) in groups.items()
    ]


def _row_facts(row: _Row) -> dict[str, Any]:
    """The facts of a stored event that its rollup buckets depend on."""
    buckets = row.event.buckets
    return {
        "tenant_id": row.tenant.id,
        "project_id": row.project.id,
        "api_key_id": row.api_key_id,
        "model": row.event.model,
        "provider": row.provider,
        "price_id": row.price_id,
        "feature": row.event.dimensions["feature"],
        "environment": row.environment,
        "end_user": row.event.dimensions["end_user"],
        "occurred_at": row.event.occurred_at,
        "input_tokens": buckets.input_tokens,
        "cached_input_tokens": buckets.cached_input_tokens,
        "cache_write_tokens": buckets.cache_write_tokens,
        "output_tokens": buckets.output_tokens,
        "reasoning_tokens": buckets.reasoning_tokens,
        "status": row.event.status,
        "cost": row.cost,
        "rating_status": "priced" if row.priced else "unpriced",
        "estimated": row.event.estimated,
        "billable": row.billable,
    }


def rollups_apply(
    cursor: Any, added: list[dict[str, Any]], removed: list[dict[str, Any]], tz_by_tenant: dict[int, str] | None = None
) -> None:
    """Add the events in `added` to their buckets and take those in `removed` out, in one upsert per
    table (rows in key order, so concurrent writers never deadlock)."""
    usage: dict[tuple, list[Any]] = {}
    usage_day: dict[tuple, Any] = {}
    end_users: dict[tuple, list[Any]] = {}
    tz_by_tenant = dict(tz_by_tenant or {})
    unknown = {facts["tenant_id"] for facts in (*added, *removed)} - set(tz_by_tenant)
    if unknown:
        tz_by_tenant.update(Tenant.objects.filter(pk__in=unknown).values_list("pk", "timezone"))

    def add(facts: dict[str, Any], sign: int) -> None:
        occurred_at = facts["occurred_at"]
        if isinstance(occurred_at, str):  # SQLite
            occurred_at = sqlite_datetime(occurred_at)
        sums = _sums(
            buckets=facts,
            status=facts["status"],
            cost=Decimal(facts["cost"]),
            priced=facts["rating_status"] == "priced",
            estimated=bool(facts["estimated"]),
            billable=bool(facts["billable"]),
            sign=sign,
        )
        tenant_id = facts["tenant_id"]
        (hourly, day), (daily, _day), end_user = _bucket_keys(tenant_id, tz_by_tenant[tenant_id], occurred_at, facts)
        for key in (hourly, daily):
            usage_day[key] = day
            current = usage.setdefault(key, [0] * len(SUMS))
            for i, value in enumerate(sums):
                current[i] += value
        current = end_users.setdefault(end_user, [0] * len(SUMS))
        for i, value in enumerate(sums):
            current[i] += value

    for facts in added:
        add(facts, 1)
    for facts in removed:
        add(facts, -1)
    usage_items = sorted(((*key, usage_day[key]), sums) for key, sums in usage.items())
    end_user_items = sorted(end_users.items())
    if connection.vendor == "postgresql":
        _queue_deltas(cursor, usage_items, end_user_items)
        return
    _upsert(cursor, "metering_usagerollup", USAGE_ROLLUP_KEY + ("day",), usage_items, len(USAGE_ROLLUP_KEY))
    _upsert(cursor, "metering_enduserrollup", END_USER_ROLLUP_KEY, end_user_items, len(END_USER_ROLLUP_KEY))


def _queue_deltas(cursor: Any, usage_items: list, end_user_items: list) -> None:
    rows = [("usage", *key, "", *sums) for key, sums in usage_items]
    rows += [
        ("end_user", tenant_id, "", None, *_NO_DIMENSIONS, day, end_user, *sums)
        for (tenant_id, day, end_user), sums in end_user_items
    ]
    if not rows:
        return
    if len(rows) <= 20:
        cursor.execute(
            f"INSERT INTO metering_rollupdelta ({', '.join(DELTA_COLUMNS)}) "
            f"VALUES {_placeholders(len(rows), len(DELTA_COLUMNS))}",
            [value for row in rows for value in row],
        )
        return
    with cursor.cursor.copy(f"COPY metering_rollupdelta ({', '.join(DELTA_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


_SUM_TOTALS = ", ".join(f"sum({name})" for name in SUMS)
_SUM_UPDATES = {
    table: ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in SUMS)
    for table in ("metering_usagerollup", "metering_enduserrollup")
}
# The only lock a flush takes: one flusher at a time, so rollup rows are never contended.
_FLUSH_LOCK = 7_301_001
_USAGE_KEY = ", ".join(USAGE_ROLLUP_KEY)
_DIMENSIONS = ", ".join(ROLLUP_DIMENSIONS)
_SUM_NAMES = ", ".join(SUMS)
_END_USER_KEY = ", ".join(END_USER_ROLLUP_KEY)
# An `event` delta row adds to its hour, its local day and its end user's day (RollupDelta).
_FLUSH_SQL = (
    "WITH d AS (DELETE FROM metering_rollupdelta RETURNING *), "
    f"du AS (SELECT {_USAGE_KEY}, day, {_SUM_NAMES} FROM d WHERE kind = 'usage' "
    f"UNION ALL SELECT tenant_id, 'hour', bucket, {_DIMENSIONS}, hour_day, {_SUM_NAMES} FROM d WHERE kind = 'event' "
    f"UNION ALL SELECT tenant_id, 'day', day_bucket, {_DIMENSIONS}, day, {_SUM_NAMES} FROM d WHERE kind = 'event'), "
    f"u AS (INSERT INTO metering_usagerollup ({_USAGE_KEY}, day, {_SUM_NAMES}) "
    f"SELECT {_USAGE_KEY}, day, {_SUM_TOTALS} FROM du GROUP BY {_USAGE_KEY}, day ORDER BY {_USAGE_KEY} "
    f"ON CONFLICT ({_USAGE_KEY}) DO UPDATE SET {_SUM_UPDATES['metering_usagerollup']}) "
    f"INSERT INTO metering_enduserrollup ({_END_USER_KEY}, {_SUM_NAMES}) "
    f"SELECT {_END_USER_KEY}, {_SUM_TOTALS} FROM d WHERE kind IN ('end_user', 'event') "
    f"GROUP BY {_END_USER_KEY} ORDER BY {_END_USER_KEY} "
    f"ON CONFLICT ({_END_USER_KEY}) DO UPDATE SET {_SUM_UPDATES['metering_enduserrollup']}"
)


def rollups_flush() -> None:
    """Fold the pending deltas into the rollups (PostgreSQL; the embedded SQLite set-up writes rollups
    directly). Exact: every delta is deleted and added in one statement."""
    if connection.vendor != "postgresql":
        return
    with transaction.atomic(), connection.cursor() as cursor:
        rollups_fold(cursor)


def rollup_deltas_vacuum() -> None:
    """Vacuum the deltas table (PostgreSQL, outside any transaction). It churns — every ingest adds rows, every
    flush deletes them — and a flush reads all of it, dead rows included: vacuumed every minute (beat), its
    space is reused and a flush reads a few seconds' worth of rows, whether or not autovacuum runs."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("VACUUM metering_rollupdelta")


def rollups_fold(cursor: Any) -> None:
    """Fold the pending deltas the caller's transaction sees, under the flush lock (held until it ends)."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FLUSH_LOCK])
    cursor.execute(_FLUSH_SQL)


def _upsert(
    cursor: Any, table: str, key_columns: tuple[str, ...], items: list[tuple[tuple, list[Any]]], conflict_width: int
) -> None:
    if not items:
        return
    columns = (*key_columns, *SUMS)
    conflict = ", ".join(key_columns[:conflict_width])
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in SUMS)
    for chunk in _chunks(items, 400):
        params = [value for key, sums in chunk for value in (*key, *sums)]
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {_placeholders(len(chunk), len(columns))} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
            params,
        )

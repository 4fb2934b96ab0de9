"""Recompute rollups from raw events, independently of the ingest path, and list every difference."""

from __future__ import annotations

from typing import Any

from django.db import OperationalError, connection, transaction

from metering.models import ROLLUP_SUMS

SUM_COLUMNS = ROLLUP_SUMS

_EVENT_SUMS = """
    sum(e.input_tokens) AS input_tokens, sum(e.cached_input_tokens) AS cached_input_tokens,
    sum(e.cache_write_tokens) AS cache_write_tokens, sum(e.output_tokens) AS output_tokens,
    sum(e.reasoning_tokens) AS reasoning_tokens, count(*) AS requests,
    count(*) FILTER (WHERE e.status = 'error') AS errors, sum(e.cost) AS cost,
    coalesce(sum(e.cost) FILTER (WHERE e.billable), 0) AS billable_cost,
    count(*) FILTER (WHERE e.estimated) AS estimated_requests,
    coalesce(sum(e.cost) FILTER (WHERE e.estimated), 0) AS estimated_cost,
    count(*) FILTER (WHERE e.rating_status = 'unpriced') AS unpriced_requests
"""


def _compare(expected_sql: str, actual_sql: str, keys: tuple[str, ...], params: list[Any]) -> list[dict[str, Any]]:
    join = " AND ".join(f"x.{k} = a.{k}" for k in keys)  # bucket keys are never NULL
    differs = " OR ".join(f"coalesce(x.{c}, 0) <> coalesce(a.{c}, 0)" for c in SUM_COLUMNS)
    select_keys = ", ".join(f"coalesce(x.{k}, a.{k}) AS {k}" for k in keys)
    select_sums = ", ".join(
        f"coalesce(x.{c}, 0) AS expected_{c}, coalesce(a.{c}, 0) AS actual_{c}" for c in SUM_COLUMNS
    )
    sql = (
        f"WITH x AS ({expected_sql}), a AS ({actual_sql}) SELECT {select_keys}, {select_sums} "
        f"FROM x FULL OUTER JOIN a ON {join} WHERE {differs}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [col[0] for col in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def rollups_verify(*, tenant_id: int | None = None) -> list[dict[str, Any]]:
    """Every bucket whose rollup differs from the sum of its events (empty list: all exact)."""
    if connection.vendor != "postgresql":
        raise NotImplementedError("verify_rollups runs on PostgreSQL.")
    from metering.services import rollups_flush

    rollups_flush()
    return _differences(tenant_id)


def rollups_repair(*, tenant_id: int | None = None) -> list[dict[str, Any]]:
    """Rewrite every bucket that differs from its events with their sums, and return those differences.

    Exact while events keep arriving: in one repeatable-read snapshot, under the flush lock, the pending deltas
    the snapshot sees are folded in (they belong to events it sees), then the differing buckets are rewritten from
    the events it sees. Deltas committed later belong to events it does not see, and are folded later."""
    if connection.vendor != "postgresql":
        raise NotImplementedError("verify_rollups runs on PostgreSQL.")
    from psycopg import errors

    for attempt in range(5):
        try:
            with transaction.atomic():
                return _repair_in_snapshot(tenant_id)
        except OperationalError as exc:  # a flush committed while this one waited for the lock: again
            if not isinstance(exc.__cause__, errors.SerializationFailure) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def _repair_in_snapshot(tenant_id: int | None) -> list[dict[str, Any]]:
    from metering.services import ROLLUP_DIMENSIONS, USAGE_ROLLUP_KEY, rollups_fold

    sums = ", ".join(SUM_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rollups_fold(cursor)
        differences = _differences(tenant_id)
        usage_key = ", ".join(USAGE_ROLLUP_KEY)
        for row in differences:
            expected = [row[f"expected_{c}"] for c in SUM_COLUMNS]
            if row["rollup"] == "end_user":
                key, table = [row["tenant_id"], row["day"], row["end_user"]], "metering_enduserrollup"
                match = "tenant_id = %s AND day = %s AND end_user = %s"
            else:
                key = [row["tenant_id"], row["rollup"], row["bucket"], *(row[k] for k in ROLLUP_DIMENSIONS)]
                table = "metering_usagerollup"
                match = " AND ".join(f"{k} = %s" for k in USAGE_ROLLUP_KEY)
            cursor.execute(f"DELETE FROM {table} WHERE {match}", key)
            if not row["expected_requests"]:
                continue  # no events in the bucket: no rollup row
            if table == "metering_enduserrollup":
                cursor.execute(
                    f"INSERT INTO {table} (tenant_id, day, end_user, {sums}) "
                    f"VALUES ({', '.join(['%s'] * (3 + len(SUM_COLUMNS)))})",
                    [*key, *expected],
                )
            else:
                cursor.execute(
                    f"INSERT INTO {table} ({usage_key}, day, {sums}) "
                    f"SELECT {', '.join(['%s'] * len(USAGE_ROLLUP_KEY))}, "
                    f"(%s::timestamptz AT TIME ZONE t.timezone)::date, {', '.join(['%s'] * len(SUM_COLUMNS))} "
                    "FROM tenants_tenant t WHERE t.id = %s",
                    [*key, row["bucket"], *expected, row["tenant_id"]],
                )
    return differences


def _differences(tenant_id: int | None) -> list[dict[str, Any]]:
    from metering.services import ROLLUP_DIMENSIONS

    where = "WHERE e.tenant_id = %s" if tenant_id else ""
    rollup_where = "AND tenant_id = %s" if tenant_id else ""
    params_one = [tenant_id] if tenant_id else []
    sums = ", ".join(SUM_COLUMNS)
    differences = []
    for grain, bucket_sql in (
        ("hour", "date_trunc('hour', e.occurred_at)"),
        ("day", "(date_trunc('day', e.occurred_at AT TIME ZONE t.timezone) AT TIME ZONE t.timezone)"),
    ):
        expected = (
            f"SELECT e.tenant_id, {bucket_sql} AS bucket, e.project_id, coalesce(e.api_key_id, 0) AS api_key_id, "
            "e.model, e.feature, e.environment, e.provider, coalesce(e.price_id, 0) AS price_id, e.rating_status, "
            f"e.estimated, e.billable, {_EVENT_SUMS} FROM metering_usageevent e "
            f"JOIN tenants_tenant t ON t.id = e.tenant_id {where} "
            "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
        )
        keys = ("tenant_id", "bucket", *ROLLUP_DIMENSIONS)
        actual = f"SELECT {', '.join(keys)}, {sums} FROM metering_usagerollup WHERE grain = '{grain}' {rollup_where}"
        for row in _compare(expected, actual, keys, params_one * 2):
            differences.append({"rollup": grain, **row})
    expected = (
        f"SELECT e.tenant_id, (e.occurred_at AT TIME ZONE t.timezone)::date AS day, e.end_user, {_EVENT_SUMS} "
        f"FROM metering_usageevent e JOIN tenants_tenant t ON t.id = e.tenant_id {where} GROUP BY 1, 2, 3"
    )
    actual = f"SELECT tenant_id, day, end_user, {sums} FROM metering_enduserrollup WHERE true {rollup_where}"
    for row in _compare(expected, actual, ("tenant_id", "day", "end_user"), params_one * 2):
        differences.append({"rollup": "end_user", **row})
    return differences

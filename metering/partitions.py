"""Monthly partitions of metering_usageevent (PostgreSQL only).

A DEFAULT partition catches any event whose month has no partition yet, so ingestion never fails for
lack of one. `partitions_ensure` (beat, daily) creates the coming months ahead; if rows already sit in
the default partition for a month being created, they are moved into the new partition in the same
transaction.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

TABLE = "metering_usageevent"


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_{month:%Y%m}"


def existing_partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        return {row[0] for row in cursor.fetchall()}


def partition_create(month: dt.date) -> bool:
    """Create the partition of `month` if missing; returns whether it was created."""
    month = _month_start(month)
    name = partition_name(month)
    if name in existing_partitions():
        return False
    start, end = month.isoformat(), _add_months(month, 1).isoformat()
    with transaction.atomic(), connection.cursor() as cursor:
        # Serialises concurrent creators (beat and a manual run).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
        if name in existing_partitions():
            return False
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {TABLE}_default WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
    return True


def partitions_ensure(*, today: dt.date | None = None, months_back: int = 2, months_ahead: int = 3) -> list[str]:
    if connection.vendor != "postgresql":
        return []
    today = today or dt.datetime.now(dt.UTC).date()
    created = []
    for offset in range(-months_back, months_ahead + 1):
        month = _add_months(_month_start(today), offset)
        if partition_create(month):
            created.append(partition_name(month))
    return created

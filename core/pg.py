"""One statement on Django's PostgreSQL connection through libpq directly, for the hottest writes (single and small
ingest batches): psycopg's cursor layer (query conversion, adaptation, result objects) costs about as much client
time per call as libpq's own round trip. The statement is prepared once per database session under its own name
and executed with text parameters; errors are psycopg's, translated by Django as for any query.

Only in autocommit and outside any atomic block (`prepared_connection`): the statement then commits by itself, as it
would through a cursor. Anywhere else (a transaction, a test's atomic wrapper) and with preparing turned off for a
pooler, the caller's cursor path runs instead. Such statements bypass Django's query log and execute wrappers."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

_prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


def prepared_connection() -> Any | None:
    """This thread's database connection (Django's wrapper) when `prepared_rows` may run on it now: PostgreSQL,
    autocommit, no atomic block, preparing allowed; else None. Callers keep the wrapper for the statement: each
    look-up through `django.db.connection` costs a few microseconds, as much as a hot request's own Python work
    between two of them."""
    db = connections[DEFAULT_DB_ALIAS]
    if (
        db.vendor != "postgresql"
        or db.in_atomic_block
        or db.settings_dict.get("OPTIONS", {}).get("prepare_threshold", 5) is None
        or not db.get_autocommit()
    ):
        return None
    return db


def prepared_available() -> bool:
    """Whether `prepared_rows` may run now."""
    return prepared_connection() is not None


def prepared_rows(name: str, sql: str, params: Sequence[str | None], db: Any = None) -> list[tuple[bytes | None, ...]]:
    """The rows (text values) of `sql` (placeholders `$1`, `$2`… with casts) run with `params`, prepared on this
    session the first time, on `db` (the wrapper `prepared_connection()` gave; the caller checked it may)."""
    from psycopg import pq

    db = db if db is not None else connections[DEFAULT_DB_ALIAS]
    key = name.encode()
    values = [None if p is None else p.encode() for p in params]
    with db.wrap_database_errors:
        if db.connection is None:
            db.ensure_connection()
        pgconn = db.connection.pgconn
        names = _prepared.setdefault(pgconn, set())
        if key not in names:
            _check(db, pgconn.prepare(key, sql.encode()), pq.ExecStatus.COMMAND_OK)
            names.add(key)
        result = pgconn.exec_prepared(key, values)
        if result.status == pq.ExecStatus.FATAL_ERROR and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
            # The session lost its prepared statements (DISCARD ALL by a pooler): prepare again once.
            _check(db, pgconn.prepare(key, sql.encode()), pq.ExecStatus.COMMAND_OK)
            result = pgconn.exec_prepared(key, values)
        _check(db, result, pq.ExecStatus.TUPLES_OK)
        rows = [tuple(result.get_value(r, c) for c in range(result.nfields)) for r in range(result.ntuples)]
        result.clear()
        return rows


def _check(db: Any, result: Any, expected: Any) -> None:
    from psycopg import errors, pq

    if result.status == expected:
        return
    pgconn = db.connection.pgconn
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result, encoding=db.connection.info.encoding)
    if pgconn.status != pq.ConnStatus.OK:
        raise errors.OperationalError(pgconn.get_error_message().decode("utf-8", "replace") or "connection lost")
    raise errors.InternalError(f"unexpected result status {result.status!r}")


@contextmanager
def whole_result_plans() -> Iterator[None]:
    """Plan the queries run inside for reading every row they return, not their first few: PostgreSQL plans a
    cursor (a queryset's `iterator()`) for its first tenth by default, which for an export of a few rare events
    among millions picks a walk along the time index over a direct read (bench tenant: 1.6 s → 0.19 s a stretch).
    Inside a transaction for its rest; outside, until the block ends."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        yield
        return
    local = db.in_atomic_block
    with db.cursor() as cursor:
        cursor.execute(f"SET {'LOCAL ' if local else ''}cursor_tuple_fraction = 1")
    try:
        yield
    finally:
        if not local:
            with db.cursor() as cursor:
                cursor.execute("RESET cursor_tuple_fraction")

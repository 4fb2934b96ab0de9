"""One statement on Django's PostgreSQL connection through libpq directly, for the hottest writes (single and small
ingest batches): psycopg's cursor layer (query conversion, adaptation, result objects) costs about as much client
time per call as libpq's own round trip. The statement is prepared once per database session under its own name
and executed with text parameters; errors are psycopg's, translated by Django as for any query.

Only in autocommit and outside any atomic block: the statement then commits by itself, as it would through a
cursor. Anywhere else (a transaction, a test's atomic wrapper) and with preparing turned off for a pooler, the
caller's cursor path runs instead. Such statements bypass Django's query log and execute wrappers."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from django.db import connection

_prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


def prepared_available() -> bool:
    """Whether `prepared_rows` may run now: PostgreSQL, autocommit, no atomic block, preparing allowed."""
    return (
        connection.vendor == "postgresql"
        and connection.settings_dict.get("OPTIONS", {}).get("prepare_threshold", 5) is not None
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )


def prepared_rows(name: str, sql: str, params: Sequence[str | None]) -> list[tuple[bytes | None, ...]]:
    """The rows (text values) of `sql` (placeholders `$1`, `$2`… with casts) run with `params`, prepared on this
    session the first time. Callers check `prepared_available()` first."""
    from psycopg import pq

    key = name.encode()
    values = [None if p is None else p.encode() for p in params]
    with connection.wrap_database_errors:
        connection.ensure_connection()
        pgconn, encoding = connection.connection.pgconn, connection.connection.info.encoding
        names = _prepared.setdefault(pgconn, set())
        if key not in names:
            _check(pgconn, pgconn.prepare(key, sql.encode()), pq.ExecStatus.COMMAND_OK, encoding)
            names.add(key)
        result = pgconn.exec_prepared(key, values)
        if result.status == pq.ExecStatus.FATAL_ERROR and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
            # The session lost its prepared statements (DISCARD ALL by a pooler): prepare again once.
            _check(pgconn, pgconn.prepare(key, sql.encode()), pq.ExecStatus.COMMAND_OK, encoding)
            result = pgconn.exec_prepared(key, values)
        _check(pgconn, result, pq.ExecStatus.TUPLES_OK, encoding)
        rows = [tuple(result.get_value(r, c) for c in range(result.nfields)) for r in range(result.ntuples)]
        result.clear()
        return rows


def _check(pgconn: Any, result: Any, expected: Any, encoding: str) -> None:
    from psycopg import errors, pq

    if result.status == expected:
        return
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result, encoding=encoding)
    if pgconn.status != pq.ConnStatus.OK:
        raise errors.OperationalError(pgconn.get_error_message().decode("utf-8", "replace") or "connection lost")
    raise errors.InternalError(f"unexpected result status {result.status!r}")

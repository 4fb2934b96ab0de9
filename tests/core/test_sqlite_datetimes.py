"""The embedded demo (SQLite): raw statements store datetimes as the ORM does, so that the ORM's comparisons match
what the ingest's own statements wrote (the events page pages by (time, id) and compares times for equality)."""

import datetime as dt
import sqlite3
import zoneinfo

from core.apps import sqlite_datetimes_as_the_orm_writes_them


def test_a_raw_statement_stores_an_aware_datetime_as_naive_utc_text() -> None:
    sqlite_datetimes_as_the_orm_writes_them()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (at datetime)")
    shanghai = dt.datetime(2026, 11, 24, 13, 49, 27, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    db.execute("INSERT INTO t VALUES (?)", [shanghai])
    db.execute("INSERT INTO t VALUES (?)", [dt.datetime(2026, 11, 24, 5, 49, 27, 120000, tzinfo=dt.UTC)])
    assert [row[0] for row in db.execute("SELECT quote(at) FROM t")] == [
        "'2026-11-24 05:49:27'",
        "'2026-11-24 05:49:27.120000'",
    ]
    # the ORM's own form of the same moment finds it
    assert db.execute("SELECT count(*) FROM t WHERE at = ?", ["2026-11-24 05:49:27"]).fetchone() == (1,)

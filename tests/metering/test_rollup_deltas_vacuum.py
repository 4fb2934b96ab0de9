"""The pending-deltas table churns with every ingest and flush; vacuumed every minute (beat), it reuses its space
instead of growing — and with it every flush's read — whatever the autovacuum settings."""

import datetime as dt

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from metering.services import IngestScope, events_ingest, rollups_flush
from metering.tasks import rollup_deltas_vacuum_task
from metering.verification import rollups_verify
from tests.metering.conftest import event_variant

pytestmark = pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction, as beat runs it


def _deltas_pages() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size('metering_rollupdelta') / current_setting('block_size')::int")
        return int(cursor.fetchone()[0])


def _ingest_and_flush(world, round_: int) -> None:  # type: ignore[no-untyped-def]
    """300 events in batches small enough to leave one delta row per event, then the flush deletes them all."""
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    moment = timezone.now() - dt.timedelta(minutes=5)
    for batch in range(3):
        events = [event_variant(f"v{round_}-{batch}", n, moment) for n in range(100)]
        assert events_ingest(scope=scope, raw_events=events).accepted == 100
    rollups_flush()


def test_the_deltas_table_reuses_its_space_once_vacuumed(world, prices) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE metering_rollupdelta SET (autovacuum_enabled = false)")
    try:
        _ingest_and_flush(world, 0)
        first = _deltas_pages()
        _ingest_and_flush(world, 1)
        assert _deltas_pages() > first  # deleted rows are not reused before a vacuum: the table grows

        rollup_deltas_vacuum_task()
        vacuumed = _deltas_pages()
        for round_ in range(2, 6):
            _ingest_and_flush(world, round_)
            rollup_deltas_vacuum_task()
        assert _deltas_pages() <= vacuumed
        assert rollups_verify() == []
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE metering_rollupdelta RESET (autovacuum_enabled)")


def test_beat_vacuums_the_deltas_table_every_minute() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["rollup-deltas-vacuum"]
    assert entry == {"task": "metering.tasks.rollup_deltas_vacuum_task", "schedule": 60.0}

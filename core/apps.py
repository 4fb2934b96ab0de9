import datetime as dt

from django.apps import AppConfig


def sqlite_datetimes_as_the_orm_writes_them() -> None:
    """On SQLite (the embedded demo), raw statements store a datetime as the ORM does — naive UTC text — rather than
    with the "+00:00" the driver's default appends: the ORM's comparisons, equality included, then match what the
    ingest's own statements wrote."""
    import sqlite3

    from django.db.backends.sqlite3 import base  # noqa: F401  (registers Django's adapter first, replaced below)

    def adapt(value: dt.datetime) -> str:
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ")

    sqlite3.register_adapter(dt.datetime, adapt)


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Meterline core"

    def ready(self) -> None:
        from django.conf import settings

        from core import deferred  # noqa: F401  (connects its request_finished receiver)

        if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
            sqlite_datetimes_as_the_orm_writes_them()

"""On PostgreSQL, turn metering_usageevent into a table partitioned by month on occurred_at with the
primary key (tenant_id, occurred_at, id), a DEFAULT partition and a BRIN index on time."""

from django.db import migrations

TABLE = "metering_usageevent"


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    statements = [
        f"ALTER TABLE {TABLE} RENAME TO {TABLE}_plain",
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_plain INCLUDING DEFAULTS INCLUDING IDENTITY) "
        "PARTITION BY RANGE (occurred_at)",
        f"DROP TABLE {TABLE}_plain",
        f"ALTER TABLE {TABLE} ADD PRIMARY KEY (tenant_id, occurred_at, id)",
        f"CREATE INDEX event_tenant_time ON {TABLE} (tenant_id, occurred_at DESC, id DESC)",
        f"CREATE INDEX event_tenant_event_id ON {TABLE} (tenant_id, event_id)",
        f"CREATE INDEX event_time_brin ON {TABLE} USING brin (occurred_at)",
        # The unpriced queue and re-rating look these up.
        f"CREATE INDEX event_unpriced ON {TABLE} (model) WHERE rating_status = 'unpriced'",
        f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT",
    ]
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    from metering.partitions import partitions_ensure

    partitions_ensure()


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    raise RuntimeError("Partitioning of usage events is not reversible.")


class Migration(migrations.Migration):
    dependencies = [("metering", "0001_initial")]
    operations = [migrations.RunPython(partition, unpartition)]

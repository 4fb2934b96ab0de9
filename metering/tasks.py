from celery import shared_task

from metering.partitions import partitions_ensure


@shared_task(acks_late=True)
def rerate_unpriced(model: str = "") -> dict:
    """Price the events that had no price (of one model, or all). Safe to run twice."""
    from metering.prices import events_rerate

    result = events_rerate(model=model or None, only_unpriced=True)
    return result.__dict__


@shared_task(acks_late=True)
def rerate_price_window(price_ids: int | list[int]) -> dict:
    """After price rows starting in the past, or new aliases: the events they now price. Safe to run twice."""
    from metering.prices import price_window_rerate

    return price_window_rerate(price_ids).__dict__


@shared_task(acks_late=True)
def usage_partitions_ensure() -> list[str]:
    """Create the coming months' partitions of usage events ahead of time."""
    return partitions_ensure()


@shared_task(acks_late=True, ignore_result=True)
def rollups_flush_task() -> None:
    """Fold pending usage deltas into the rollups (every second from beat; reads also flush first)."""
    from metering.services import rollups_flush

    rollups_flush()


@shared_task(acks_late=True, ignore_result=True)
def rollup_deltas_vacuum_task() -> None:
    """Keep the pending-deltas table small (every minute from beat)."""
    from metering.services import rollup_deltas_vacuum

    rollup_deltas_vacuum()


@shared_task(acks_late=True)
def rerate_tenant_since(tenant_id: int, since: str) -> dict:
    """After a contract change: price the tenant's events from that day on with the new terms."""
    import datetime as dt

    from metering.prices import events_rerate

    start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=1)
    return events_rerate(tenant_id=tenant_id, start=start, only_unpriced=False).__dict__


@shared_task(acks_late=True)
def anomalies_scan_task() -> int:
    """Hourly: the last hour and the previous day of every tenant."""
    from metering.anomalies import anomalies_scan

    return len(anomalies_scan())


@shared_task(acks_late=True)
def usage_export_build(export_id: int) -> int:
    """Build a background usage export; answers the number of events written."""
    from metering.exports import export_build

    export = export_build(export_id)
    return export.rows_done if export else 0


@shared_task(acks_late=True)
def usage_exports_purge() -> int:
    """Daily: forget old background exports."""
    from metering.exports import exports_purge

    return exports_purge()

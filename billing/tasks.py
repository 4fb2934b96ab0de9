from celery import shared_task
from django.conf import settings


@shared_task(acks_late=True)
def fx_rates_import() -> int:
    """Daily: import the ECB file configured in METERLINE_FX_FILE (kept current by the operator). Idempotent."""
    from pathlib import Path

    from billing.fx import ecb_usd_rates, fx_import
    from billing.models import FxRate

    if not settings.METERLINE_FX_FILE:
        return 0
    rows = ecb_usd_rates(Path(settings.METERLINE_FX_FILE))
    return fx_import(rows=rows, source=FxRate.Source.ECB).created


@shared_task(acks_late=True)
def bills_close_due() -> dict[str, int]:
    """Hourly: close every finished month whose late-event grace hours have passed. Idempotent, so a retry
    or two workers running it at once still leave one bill per tenant and month."""
    from collections import Counter

    from billing.bills import months_close_due

    return dict(Counter(result.status for result in months_close_due()))


@shared_task(acks_late=True)
def budget_counters_reconcile() -> int:
    from billing.budgets import counters_reconcile

    return counters_reconcile()


@shared_task(acks_late=True)
def budget_alert_announce(alert_id: int) -> int | None:
    """A fired alert's top consumers named, then its deliveries sent (None: the alert is gone)."""
    from billing.budgets import alert_announce

    alert = alert_announce(alert_id)
    return alert.pk if alert is not None else None


@shared_task(acks_late=True)
def delivery_send(delivery_id: int) -> str:
    """One attempt of one delivery; transient failures are picked up again by `deliveries_retry_due`."""
    from billing.channels import delivery_attempt

    return delivery_attempt(delivery_id).status


@shared_task(acks_late=True)
def deliveries_retry_due() -> int:
    """Every 30 s: enqueue the deliveries whose next attempt is due (exponential backoff, up to 24 h)."""
    from django.utils import timezone

    from billing.models import Delivery

    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now()).values_list(
            "pk", flat=True
        )[:500]
    )
    for delivery_id in due:
        delivery_send.delay(delivery_id)
    return len(due)

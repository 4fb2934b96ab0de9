"""Two closers at once (real PostgreSQL connections in two threads): one bill, the same totals for both."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing.bills import month_close, period_parse
from billing.models import Bill, BillLine
from metering.services import IngestScope, events_ingest

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_closers_at_once_make_one_bill(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    when = dt.datetime(2026, 10, 15, 2, tzinfo=dt.UTC)
    events = [
        {
            "event_id": f"e{n}",
            "timestamp": (when + dt.timedelta(minutes=n)).isoformat(),
            "model": "gpt-4o",
            "usage": {"input_tokens": 1000 + n, "output_tokens": 10 * n},
        }
        for n in range(200)
    ]
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=events,
        now=when + dt.timedelta(hours=4),
    )
    barrier = threading.Barrier(4)
    results, errors = [], []

    def closer() -> None:
        try:
            barrier.wait()
            results.append(
                month_close(
                    tenant=world.alpha, period=period_parse("2026-10"), now=dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
                )
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=closer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.status for r in results) == ["already_closed", "already_closed", "already_closed", "closed"]
    assert Bill.objects.count() == 1
    bill = Bill.objects.get()
    assert {r.bills[0].pk for r in results} == {bill.pk}
    assert {r.bills[0].total for r in results} == {bill.total}
    # Σ input (1000 + n) = 200,000 + 19,900 = 219,900 × 2.5 / 10^6 = 0.54975 → 0.55;
    # Σ output 10 n = 199,000 × 10 / 10^6 = 1.99; total 2.54
    assert bill.total == Decimal("2.54") and BillLine.objects.count() == 2


def test_a_re_rating_during_a_close_keeps_the_month_it_bills(world, prices) -> None:
    """A price back-dated into October is re-rated while October closes: the re-rating waits for the close
    (the tenant's row lock) and then leaves October's events at the price the new bill charged."""
    import time

    from metering.models import UsageEvent
    from metering.prices import events_rerate, price_add
    from metering.verification import rollups_verify
    from tenants.models import Tenant

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    when = dt.datetime(2026, 10, 15, 2, tzinfo=dt.UTC)
    event = {"event_id": "oct", "timestamp": when.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": 1_000_000}}
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=[event], now=when)
    price_add(
        actor=None,
        provider="openai",
        model="gpt-4o",
        prices={"input": Decimal(5), "output": Decimal(10)},
        effective_from=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        rerate=False,
    )
    closed, errors, results = threading.Event(), [], []

    def closer() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():  # the close's transaction, held a moment after the bill is written
                Tenant.objects.select_for_update().get(pk=world.alpha.pk)
                results.append(
                    month_close(
                        tenant=world.alpha, period=period_parse("2026-10"), now=dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
                    )
                )
                closed.set()
                time.sleep(1)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            closed.set()
        finally:
            connection.close()

    def rerater() -> None:
        try:
            closed.wait(10)
            results.append(events_rerate(only_unpriced=False))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=closer), threading.Thread(target=rerater)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    closing, rerating = results
    assert closing.status == "closed" and (rerating.billed, rerating.changed) == (1, 0)
    assert UsageEvent.objects.get(event_id="oct").cost == Bill.objects.get().usage_subtotal == Decimal("2.5")
    assert rollups_verify() == []

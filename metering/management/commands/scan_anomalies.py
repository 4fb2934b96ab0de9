"""manage.py scan_anomalies [--hours 72] [--tenant acme]: run the anomaly scans over the last hours."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from metering.anomalies import anomalies_backfill
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Scan the last hours (and their days) for anomalies; rescans never duplicate one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=int, default=1)
        parser.add_argument("--tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.filter(status="active")
        if options.get("tenant"):
            tenants = tenants.filter(slug=options["tenant"])
        found = anomalies_backfill(hours=max(options["hours"], 0), tenants=list(tenants))
        for anomaly in found:
            self.stdout.write(
                f"{anomaly.tenant.slug} {anomaly.kind} {anomaly.scope} {anomaly.window_start:%Y-%m-%d %H:%M} "
                f"observed {anomaly.observed.normalize():f} expected {anomaly.expected.normalize():f} "
                f"({anomaly.ratio}×)"
            )
        self.stdout.write(f"{len(found)} new anomalies.")

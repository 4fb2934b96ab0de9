"""manage.py close_month --period 2026-10 [--tenant acme]: close a month now (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.bills import month_close, months_close, period_parse
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Close a month: compute and store the bills of every billable tenant (or one). Safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--tenant", help="tenant slug (default: every billable tenant)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = period_parse(options["period"])
        except ValueError as exc:
            raise CommandError(f"--period: {exc}") from None
        if options.get("tenant"):
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']}.")
            results = [month_close(tenant=tenant, period=period)]
        else:
            results = months_close(period=period)
        blocked = 0
        for result in results:
            line = f"{result.tenant.slug} {options['period']}: {result.status}"
            if result.bills:
                line += " — " + ", ".join(f"{b.number} {b.total} {b.currency}" for b in result.bills)
            if result.error is not None:
                line += f" — {result.error.message}"
                blocked += result.status == "blocked"
            self.stdout.write(line)
        if blocked:
            raise CommandError(f"{blocked} tenant(s) could not close; see above.")

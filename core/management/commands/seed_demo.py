from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from billing import demo as billing_demo
from metering import demo as metering_demo
from tenants import demo as tenants_demo


class Command(BaseCommand):
    help = "Load demo tenants, people, keys (and, as the apps grow, usage, contracts, bills and invoices)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--days", type=int, default=90, help="days of usage to generate")
        parser.add_argument("--scale", type=float, default=1.0, help="multiplier on the demo's request volume")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            seeded = tenants_demo.seed()
            billing_demo.seed()
        events = metering_demo.seed(days=opts["days"], scale=opts["scale"])
        call_command("import_fx_rates", "--since", "2025-01-01", stdout=self.stdout)
        for line in billing_demo.close_past_months():
            self.stdout.write(f"  bills {line}")
        from invoices import demo as invoices_demo

        for line in billing_demo.seed_budgets():
            self.stdout.write(f"  budget {line}")
        from metering.anomalies import anomalies_backfill

        for anomaly in anomalies_backfill(hours=4 * 24):
            self.stdout.write(
                f"  anomaly {anomaly.tenant.slug} {anomaly.kind} {anomaly.scope} {anomaly.window_start:%Y-%m-%d %H:%M}"
            )

        for line in invoices_demo.seed():
            self.stdout.write(f"  invoice {line}")
        statement = metering_demo.seed_statement()
        if statement:
            self.stdout.write(f"  provider statement {statement}")
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({events} usage events)."))
        self.stdout.write(f"\nDemo logins (password for all: {seeded['password']}):")
        for username, _group, label in seeded["staff"]:  # type: ignore[attr-defined]
            self.stdout.write(f"  {username:<15} {label}")
        seen = set()
        for username, _tenant, role, _projects in seeded["members"]:  # type: ignore[attr-defined]
            if username in seen:
                continue
            seen.add(username)
            tenants = [t for u, t, _r, _p in seeded["members"] if u == username]  # type: ignore[attr-defined]
            self.stdout.write(f"  {username:<15} {role} of {', '.join(tenants)}")
        if seeded["keys"]:
            self.stdout.write("\nNew project API keys (shown once):")
            for where, key in seeded["keys"].items():  # type: ignore[attr-defined]
                self.stdout.write(f"  {where:<28} {key}")

from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import demo as tenants_demo


class Command(BaseCommand):
    help = "Load demo tenants, people, keys (and, as the apps grow, usage, contracts, bills and invoices)."

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            seeded = tenants_demo.seed()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
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

from django.core.management.base import BaseCommand, CommandError

from metering.verification import rollups_repair, rollups_verify
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Recompute usage rollups from raw events and report every bucket that differs (exit 1 if any); "
        "--repair rewrites those buckets from their events."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--tenant", help="tenant slug (default: all tenants)")
        parser.add_argument(
            "--repair", action="store_true", help="rewrite every bucket that differs with the sums of its events"
        )

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        tenant_id = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {opts['tenant']!r}.")
            tenant_id = tenant.pk
        try:
            if opts["repair"]:
                repaired = rollups_repair(tenant_id=tenant_id)
                for difference in repaired:
                    self.stdout.write(str(difference))
                self.stdout.write(self.style.SUCCESS(f"Repaired {len(repaired)} rollup bucket(s)."))
                return
            differences = rollups_verify(tenant_id=tenant_id)
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from None
        for difference in differences:
            self.stdout.write(str(difference))
        if differences:
            raise CommandError(f"{len(differences)} rollup bucket(s) differ from their events.")
        self.stdout.write(self.style.SUCCESS("Rollups match their events."))

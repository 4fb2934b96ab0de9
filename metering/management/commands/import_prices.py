import csv
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from metering.models import ModelPrice
from metering.prices import PRICE_FIELDS, genai_prices_rows, prices_import


def _csv_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, record in enumerate(csv.DictReader(handle), start=2):
            try:
                start = dt.datetime.fromisoformat(record["effective_from"])
                if start.tzinfo is None:
                    start = start.replace(tzinfo=dt.UTC)
                prices = {
                    name: Decimal(record[name]) if record.get(name) not in (None, "") else None for name in PRICE_FIELDS
                }
            except (KeyError, ValueError, InvalidOperation) as exc:
                raise CommandError(f"line {number}: {exc}") from None
            if prices["input"] is None or prices["output"] is None:
                raise CommandError(f"line {number}: input and output prices are required")
            aliases = [a.strip() for a in (record.get("aliases") or "").replace(";", ",").split(",") if a.strip()]
            rows.append(
                {
                    "provider": record["provider"],
                    "model": record["model"],
                    "aliases": aliases,
                    "effective_from": start,
                    "prices": prices,
                }
            )
    return rows


class Command(BaseCommand):
    help = "Import prices: the genai-prices snapshot shipped in the package, or a CSV file (idempotent)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--source", choices=["genai-prices", "csv"], required=True)
        parser.add_argument(
            "--file",
            type=Path,
            help="CSV with provider, model, effective_from, input, "
            "cached_input, cache_write, output, reasoning, per_request, aliases",
        )
        parser.add_argument("--provider", action="append", help="only these providers (genai-prices)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        if opts["source"] == "genai-prices":
            rows = genai_prices_rows()
            if opts["provider"]:
                rows = [r for r in rows if r["provider"] in opts["provider"]]
            source = ModelPrice.Source.GENAI_PRICES
        else:
            if not opts["file"] or not opts["file"].exists():
                raise CommandError("--file must name an existing CSV file")
            rows = _csv_rows(opts["file"])
            source = ModelPrice.Source.IMPORT
        with transaction.atomic():
            result = prices_import(actor=None, rows=rows, source=source, now=timezone.now())
        self.stdout.write(f"{result.created} price rows added, {result.unchanged} unchanged.")

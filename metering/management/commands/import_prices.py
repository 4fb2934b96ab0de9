import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from metering.models import ModelPrice
from metering.prices import PRICE_FIELDS, genai_prices_rows, prices_import


def _csv_rows(path: Path) -> list[dict]:
    """The file's rows, each checked by the rules of `POST /api/v1/prices`; the first bad line stops the import
    before anything is stored."""
    from metering.serializers import ModelPriceCreateSerializer

    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.DictReader(handle))
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text: save it as CSV (UTF-8).") from None
    except csv.Error as exc:
        raise CommandError(f"{path} does not read as CSV: {exc}") from None
    for number, record in enumerate(records, start=2):
        fields = {name: value.strip() for name, value in record.items() if name and value and value.strip()}
        if "aliases" in fields:
            fields["aliases"] = [a.strip() for a in fields["aliases"].replace(";", ",").split(",") if a.strip()]
        checked = ModelPriceCreateSerializer(data=fields)
        if not checked.is_valid():
            problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in checked.errors.items())
            raise CommandError(f"line {number}: {problems}")
        data = checked.validated_data
        rows.append(
            {
                "provider": data["provider"],
                "model": data["model"],
                "aliases": data.get("aliases", []),
                "effective_from": data["effective_from"],
                "prices": {name: data.get(name) for name in PRICE_FIELDS},
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

import csv
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.fields import DateTimeField

from core.spreadsheets import csv_text
from metering.models import ModelPrice
from metering.prices import PRICE_FIELDS, genai_prices_rows, prices_import


def _aliases(text: str) -> Any:
    """A cell of aliases: names separated by commas or semicolons, or the JSON list the book's export writes
    (a list that does not read is left to the row's check, which names the field)."""
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return [alias.strip() for alias in text.replace(";", ",").split(",") if alias.strip()]


def _csv_rows(path: Path) -> list[dict]:
    """The file's rows, each checked by the rules of `POST /api/v1/prices`; the first bad line stops the import
    before anything is stored. A file exported from the book carries two columns a new row does not take:
    `source` (an imported row is marked `import`) and `effective_to`, accepted where it is the start of the
    model's next row in the file or the book (the book ends each row there itself)."""
    from metering.prices import price_end_problem
    from metering.serializers import ModelPriceCreateSerializer

    rows: list[dict] = []
    ends: list[tuple[int, int, Any]] = []  # (line, row, the end it gives)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.DictReader(handle))
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text: save it as CSV (UTF-8).") from None
    except csv.Error as exc:
        raise CommandError(f"{path} does not read as CSV: {exc}") from None
    for number, record in enumerate(records, start=2):
        fields = {name: csv_text(value).strip() for name, value in record.items() if name and value and value.strip()}
        fields.pop("source", None)
        end = fields.pop("effective_to", None)
        if "aliases" in fields:
            fields["aliases"] = _aliases(fields["aliases"])
        checked = ModelPriceCreateSerializer(data=fields)
        if not checked.is_valid():
            problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in checked.errors.items())
            raise CommandError(f"line {number}: {problems}")
        data = checked.validated_data
        if end is not None:
            try:
                ends.append((number, len(rows), DateTimeField().to_internal_value(end)))
            except ValidationError as exc:
                raise CommandError(f"line {number}: effective_to: {' '.join(map(str, exc.detail))}") from None
        rows.append(
            {
                "provider": data["provider"],
                "model": data["model"],
                "aliases": data.get("aliases"),  # none given: the model's, as in the book
                "effective_from": data["effective_from"],
                "prices": {name: data.get(name) for name in PRICE_FIELDS},
            }
        )
    for number, index, end in ends:
        row = rows[index]
        problem = price_end_problem(
            provider=row["provider"],
            model=row["model"],
            effective_from=row["effective_from"],
            effective_to=end,
            other_starts=[
                other["effective_from"]
                for other in rows
                if (other["provider"], other["model"]) == (row["provider"], row["model"])
            ],
        )
        if problem:
            raise CommandError(f"line {number}: effective_to: {problem}")
    return rows


class Command(BaseCommand):
    help = "Import prices: the genai-prices snapshot shipped in the package, or a CSV file (idempotent)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--source", choices=["genai-prices", "csv"], required=True)
        parser.add_argument(
            "--file",
            type=Path,
            help="CSV with provider, model, effective_from, input, cached_input, cache_write, output, reasoning, "
            "per_request, aliases (USD per 1M tokens; a file exported from the book reads back)",
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

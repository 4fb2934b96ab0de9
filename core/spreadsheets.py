"""CSV and XLSX files for people to open in a spreadsheet, safe from formula injection: text that API clients
(event ids, features, end users, model names) or tenants wrote is never run as a formula.

XLSX keeps such text exact, as a text cell (the library would store `=…` as a formula). CSV has no cell types: a
value starting with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`, which spreadsheets
read as "text" (OWASP's advice for CSV injection); numbers (`-12.50`) stay as they are. A file that is read back
(the price book's CSV) drops that mark again (`csv_text`): `@cf/meta/llama-3-8b-instruct` goes out as
`'@cf/meta/llama-3-8b-instruct` and comes back as it was. A workbook cannot hold most control characters (a client
may send one in a feature): XLSX shows each as U+FFFD, CSV keeps it.

The admin's import-export pages write their files through `SpreadsheetCSV` and `SpreadsheetXLSX` (the library's own
escaping drops a leading `=` from the value and leaves `+`, `-`, `@`).
"""

from __future__ import annotations

import io
from decimal import Decimal, InvalidOperation
from typing import Any

import tablib
from import_export.formats import base_formats
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils.exceptions import IllegalCharacterError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_export(data: tablib.Dataset | tablib.Databook, file_format: str) -> bytes:
    """`data` as `file_format` ("csv": one dataset; "xlsx": a dataset or a book of them)."""
    if file_format == "csv":
        if not isinstance(data, tablib.Dataset):
            raise ValueError("CSV holds one dataset.")
        return _csv_safe(data).export("csv").encode()
    sheets = [data] if isinstance(data, tablib.Dataset) else data.sheets()
    try:
        content = data.export("xlsx")
    except IllegalCharacterError:
        sheets = [_xlsx_legal(sheet) for sheet in sheets]
        content = (sheets[0] if isinstance(data, tablib.Dataset) else tablib.Databook(sheets)).export("xlsx")
    if any(_formula_like(value) for sheet in sheets for row in sheet for value in row):
        content = _formulas_as_text(content)
    return content


def csv_cell(value: Any) -> Any:
    """A text value a spreadsheet would take for a formula, marked as text; a number (`-12.50`) as it is."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS) or _is_number(value):
        return value
    return "'" + value


def csv_text(value: Any) -> Any:
    """The value `csv_cell` marked, as it was; anything else as it is."""
    if isinstance(value, str) and value.startswith("'") and csv_cell(value[1:]) != value[1:]:
        return value[1:]
    return value


def _is_number(value: str) -> bool:
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def _csv_safe(data: tablib.Dataset) -> tablib.Dataset:
    """`data` itself when no value needs marking (the usual file: nothing copied), else a marked copy."""
    if not any(csv_cell(value) is not value for row in data for value in row):
        return data
    safe = tablib.Dataset(headers=data.headers, title=data.title)
    for row in data:
        safe.append([csv_cell(value) for value in row])
    return safe


def _xlsx_legal(data: tablib.Dataset) -> tablib.Dataset:
    """A copy of `data` whose text holds no character a workbook cannot (the control characters other than tab and
    line breaks, which clients may send in a feature or an end user): each becomes U+FFFD, where the CSV keeps it."""
    legal = tablib.Dataset(headers=data.headers, title=data.title)
    for row in data:
        legal.append(
            [ILLEGAL_CHARACTERS_RE.sub("\N{REPLACEMENT CHARACTER}", v) if isinstance(v, str) else v for v in row]
        )
    return legal


def _formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("=")


def _formulas_as_text(content: bytes) -> bytes:
    """The workbook with every formula cell turned into the text it holds (the files built here hold no formula
    of their own)."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(content))
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class SpreadsheetCSV(base_formats.CSV):
    """import-export's CSV, written as `spreadsheet_export` writes it."""

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> str:
        return _csv_safe(dataset).export("csv", **kwargs)


class SpreadsheetXLSX(base_formats.XLSX):
    """import-export's XLSX, written as `spreadsheet_export` writes it."""

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> bytes:
        return spreadsheet_export(dataset, "xlsx")

"""CSV and XLSX files for people to open in a spreadsheet, safe from formula injection: text that API clients
(event ids, features, end users, model names) or tenants wrote is never run as a formula.

XLSX keeps such text exact, as a text cell (the library would store `=…` as a formula). CSV has no cell types: a
value starting with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`, which spreadsheets
read as "text" (OWASP's advice for CSV injection); numbers (`-12.50`) stay as they are.
"""

from __future__ import annotations

import io
from decimal import Decimal, InvalidOperation
from typing import Any

import tablib

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_export(data: tablib.Dataset | tablib.Databook, file_format: str) -> bytes:
    """`data` as `file_format` ("csv": one dataset; "xlsx": a dataset or a book of them)."""
    if file_format == "csv":
        if not isinstance(data, tablib.Dataset):
            raise ValueError("CSV holds one dataset.")
        return _csv_safe(data).export("csv").encode()
    content = data.export("xlsx")
    sheets = [data] if isinstance(data, tablib.Dataset) else data.sheets()
    if any(_formula_like(value) for sheet in sheets for row in sheet for value in row):
        content = _formulas_as_text(content)
    return content


def csv_cell(value: Any) -> Any:
    """A text value a spreadsheet would take for a formula, marked as text; a number (`-12.50`) as it is."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS) or _is_number(value):
        return value
    return "'" + value


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

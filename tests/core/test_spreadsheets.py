"""Files for spreadsheets never run text as a formula (core.spreadsheets), and keep numbers as numbers."""

import csv
import io

import openpyxl
import pytest
import tablib

from core.spreadsheets import csv_cell, spreadsheet_export


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1-555", "'+1-555"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("-12.50", "-12.50"),  # a negative amount stays a number
        ("+3", "+3"),
        ("1e3", "1e3"),
        ("plain", "plain"),
        ("", ""),
        (7, 7),
        (None, None),
    ],
)
def test_a_csv_cell_is_marked_as_text_only_when_a_spreadsheet_would_run_it(value, written) -> None:  # type: ignore[no-untyped-def]
    assert csv_cell(value) == written


def test_both_formats_of_a_book_and_a_set() -> None:
    data = tablib.Dataset(headers=["name", "amount"], title="Lines")
    data.append(['=HYPERLINK("http://x")', "-5.00"])
    data.append(["ok", "12"])
    rows = list(csv.reader(io.StringIO(spreadsheet_export(data, "csv").decode())))
    assert rows == [["name", "amount"], ['\'=HYPERLINK("http://x")', "-5.00"], ["ok", "12"]]
    for content in (spreadsheet_export(data, "xlsx"), spreadsheet_export(tablib.Databook([data]), "xlsx")):
        sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
        cell = sheet["A2"]
        assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x")', "s")
        assert sheet["B2"].value == "-5.00" and sheet["A3"].value == "ok"
    with pytest.raises(ValueError):
        spreadsheet_export(tablib.Databook([data]), "csv")

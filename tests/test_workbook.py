"""The month's workbook as finance opens it: sheets in order, amounts as numbers, ids as text,
dates as dates, a header that stays put and filters, and the same bytes for the same folder."""

import datetime as dt
import time
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.config import load_config
from billing.errors import DataError
from billing.records import Month
from billing.render import csv_files
from billing.render.workbook import COLUMNS, MAX_WIDTH, MIN_WIDTH, SHEETS, write_workbook

from conftest import ROOT

DEMO_CONFIG = ROOT / "config" / "billing.yaml"
SEPTEMBER = Month(2022, 9)
ORDER = ["Register", "Lines", "Cost detail", "Shared", "Unattributed", "Reconciliation", "Absorbed", "Adjustments"]
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def demo_month(tmp_path_factory) -> Path:
    """The demo's September 2022 folder, as `billing run` writes it."""
    output = tmp_path_factory.mktemp("output")
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(DEMO_CONFIG),
                                       "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output / "2022-09"


@pytest.fixture(scope="module")
def demo_book(demo_month):
    return openpyxl.load_workbook(demo_month / "billing-2022-09.xlsx")


def decimal_of(value) -> Decimal:
    """A number cell's value as the decimal it was written from (a double's shortest text)."""
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    return Decimal(repr(value))


def table(sheet) -> tuple[list[str], list[tuple]]:
    rows = list(sheet.iter_rows(values_only=True))
    return list(rows[0]), rows[1:]


def test_the_sheets_are_in_order_with_the_register_first_and_active(demo_book):
    assert demo_book.sheetnames == ORDER
    assert demo_book.active.title == "Register"


def test_every_cell_says_what_its_csv_file_says_with_its_type(demo_month, demo_book):
    """Text as text, amounts as numbers equal to the file's decimals, dates as dates."""
    for title, name, default_columns in SHEETS:
        rows = csv_files.read_csv(demo_month / name)
        sheet = demo_book[title]
        headers, cells = table(sheet)
        columns = list(rows[0]) if rows else list(default_columns)
        assert headers == [COLUMNS[c][0] for c in columns]
        assert len(cells) == len(rows)
        for row, values in zip(rows, cells):
            for column, value in zip(columns, values):
                kind, text = COLUMNS[column][1], row[column]
                if text == "":
                    assert value is None
                elif kind == "text":
                    assert value == text and isinstance(value, str)
                elif kind == "date":
                    assert isinstance(value, dt.datetime) and value.date().isoformat() == text
                elif kind == "percent":
                    assert decimal_of(value) == Decimal(text) / 100
                else:
                    assert decimal_of(value) == Decimal(text), (title, column)


def test_amounts_carry_the_currency_format_and_ids_the_text_format(demo_book):
    register = demo_book["Register"]
    headers = [c.value for c in register[1]]
    for row in register.iter_rows(min_row=2):
        cells = dict(zip(headers, row))
        places = 0 if cells["Currency"].value == "JPY" else 2
        for header in ("Cloud costs", "Fees", "Discounts", "Tax", "Total", "Amount due"):
            assert cells[header].data_type == "n"
            assert cells[header].number_format == "#,##0" + ("." + "0" * places if places else "")
        for header in ("Invoice number", "Community id", "Community", "Invoice month"):
            assert cells[header].data_type == "s" and cells[header].number_format == "@"
        assert cells["Issue date"].is_date and cells["Issue date"].number_format == "yyyy-mm-dd"
    shared = demo_book["Shared"]
    headers = [c.value for c in shared[1]]
    share = dict(zip(headers, shared[2]))["Share"]
    assert share.number_format == "0.00%" and 0 < share.value < 1
    detail = demo_book["Cost detail"]
    headers = [c.value for c in detail[1]]
    net = dict(zip(headers, detail[2]))["Net"]
    assert net.number_format == "#,##0.00"  # shown to the cent, the value at full precision


def test_each_invoices_lines_add_up_to_its_total_in_the_register(demo_book):
    headers, lines = table(demo_book["Lines"])
    number, amount = headers.index("Invoice number"), headers.index("Amount")
    sums = defaultdict(Decimal)
    for line in lines:
        sums[line[number]] += decimal_of(line[amount]).quantize(CENT)
    headers, invoices = table(demo_book["Register"])
    totals = {row[headers.index("Invoice number")]: decimal_of(row[headers.index("Total")]).quantize(CENT)
              for row in invoices}
    assert len(totals) == 8 and sums == totals


def test_the_header_row_is_frozen_bold_and_filters_the_whole_table(demo_book):
    for sheet in demo_book:
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(sheet.max_column)}{sheet.max_row}"
        assert all(cell.font.bold and cell.fill.fgColor.rgb.endswith("DDE3EA") for cell in sheet[1])


def test_an_empty_file_still_gives_its_sheet_with_its_header(demo_book):
    headers, rows = table(demo_book["Unattributed"])  # the demo month has no unattributed cost
    assert rows == [] and headers[:3] == ["Invoice month", "Provider", "Billing account"]
    assert demo_book["Unattributed"].auto_filter.ref == "A1:L1"


def test_columns_are_wide_enough_for_their_text_within_bounds(demo_book):
    for sheet in demo_book:
        for column in sheet.iter_cols():
            width = sheet.column_dimensions[column[0].column_letter].width
            assert MIN_WIDTH <= width <= MAX_WIDTH
            texts = [len(cell.value) for cell in column if isinstance(cell.value, str)]
            assert width >= min(MAX_WIDTH, max(texts, default=0)), (sheet.title, column[0].value)
    register = demo_book["Register"]
    names = [c.value for c in register["C"][1:]]
    assert "London Interdisciplinary School" in names and register.column_dimensions["C"].width >= 31


def test_every_csv_column_has_a_header_and_the_numeric_ones_are_numbers():
    for _, _, columns in SHEETS:
        assert all(column in COLUMNS for column in columns)
    numeric = {column for column, (_, kind) in COLUMNS.items() if kind not in ("text", "date")}
    assert numeric == csv_files.NUMERIC_COLUMNS


def made_up_folder(folder: Path) -> Path:
    """A month of two invoices (one in yen), an AWS account with a leading zero, text that a
    spreadsheet would run as a formula, no shared pool, no unattributed cost, and no absorbed or
    adjustments file (a folder written before those files existed)."""
    folder.mkdir()
    write = csv_files.write_csv
    write(folder / "invoice-register.csv", csv_files.REGISTER_COLUMNS, [
        ("INV-2022-00001", "ucl", '=HYPERLINK("x")', "2022-09", "2022-10-01", "2022-10-31", "USD",
         "10.01", "5.00", "0.00", "0.00", "15.01", "finalized", "", "invoice", "", "0.00", "15.01"),
        ("INV-2022-00002", "tokyo", "東京ハブ", "2022-09", "2022-10-01", "2022-11-15", "JPY",
         "1235", "0", "0", "124", "1359", "finalized", "", "invoice", "", "0", "1359")])
    write(folder / "invoice-lines.csv", csv_files.LINE_COLUMNS, [
        ("INV-2022-00001", "ucl", "2022-09", "1", "cloud", "AWS: Amazon EC2", "aws", "Amazon EC2", "USD",
         "10.01", "0.00", "10.01", "0.00", "0.00"),
        ("INV-2022-00001", "ucl", "2022-09", "2", "fees", "-5% off nothing: a service fee", "", "", "USD",
         "5.00", "0.00", "5.00", "0.00", "0.00"),
        ("INV-2022-00002", "tokyo", "2022-09", "1", "cloud", "AWS: Amazon S3", "aws", "Amazon S3", "JPY",
         "1235", "0", "1235", "1235", "124"),
        ("INV-2022-00002", "tokyo", "2022-09", "2", "tax", "消費税 10%", "", "", "JPY", "124", "0", "124", "0", "0")])
    write(folder / "cost-detail.csv", csv_files.DETAIL_COLUMNS, [
        ("2022-09", "community", "ucl", "aws", "012345678901", "001122334455", "Amazon EC2", "usage",
         "team=@ops", "USD", "10.0061234567", "0.00", "10.0061234567", "aws-payer"),
        ("2022-09", "community", "tokyo", "aws", "012345678901", "000000000042", "#N/A", "usage",
         "note=bell\x07here", "JPY", "1234.6", "0.00", "1234.6", "aws-payer")])
    write(folder / "shared-allocation.csv", csv_files.SHARED_COLUMNS, [])
    write(folder / "unattributed.csv", csv_files.UNATTRIBUTED_COLUMNS, [])
    write(folder / "reconciliation.csv", csv_files.RECONCILIATION_COLUMNS, [
        ("aws", "012345678901", "2022-09", "USD", "10.01", "10.01", "0.00", "0.00", "0.00", "0.00", "0.00",
         "10.01", "0.00", "0.00")])
    return folder


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO_CONFIG)


@pytest.fixture
def made_up_book(tmp_path, config):
    folder = made_up_folder(tmp_path / "2022-09")
    return openpyxl.load_workbook(write_workbook(folder, config, SEPTEMBER))


def test_a_folder_without_some_files_leaves_their_sheets_out(made_up_book):
    assert made_up_book.sheetnames == ORDER[:6]
    assert table(made_up_book["Shared"])[1] == []


def test_ids_stay_text_with_their_leading_zeros(made_up_book):
    detail = made_up_book["Cost detail"]
    headers = [c.value for c in detail[1]]
    row = dict(zip(headers, detail[2]))
    for header, text in (("Billing account", "012345678901"), ("Project or account", "001122334455")):
        assert row[header].value == text and row[header].data_type == "s" and row[header].number_format == "@"
    assert dict(zip(headers, detail[3]))["Project or account"].value == "000000000042"
    assert made_up_book["Reconciliation"]["B2"].value == "012345678901"


def test_text_that_looks_like_a_formula_or_an_error_stays_text(made_up_book):
    name = made_up_book["Register"]["C2"]
    assert name.value == '=HYPERLINK("x")' and name.data_type == "s" and name.quotePrefix
    lines = made_up_book["Lines"]
    assert lines["F3"].value == "-5% off nothing: a service fee" and lines["F3"].data_type == "s"
    detail = made_up_book["Cost detail"]
    assert detail["G3"].value == "#N/A" and detail["G3"].data_type == "s"  # not the error #N/A
    assert detail["I2"].value == "team=@ops" and not detail["I2"].quotePrefix
    assert detail["I3"].value == "note=bell\ufffdhere"  # a control character xlsx cannot hold


def test_no_cell_is_a_formula_in_the_file_itself(tmp_path, config):
    path = write_workbook(made_up_folder(tmp_path / "2022-09"), config, SEPTEMBER)
    with zipfile.ZipFile(path) as archive:
        sheets = [archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/")]
    assert sheets and not any("<f>" in xml or "<f " in xml for xml in sheets)
    assert any('<t>=HYPERLINK("x")</t>' in xml for xml in sheets)


def test_yen_amounts_have_no_decimals_and_detail_keeps_full_precision(made_up_book):
    register = made_up_book["Register"]
    assert register["L3"].value == 1359 and register["L3"].number_format == "#,##0"
    assert register["L2"].number_format == "#,##0.00"
    detail = made_up_book["Cost detail"]
    assert decimal_of(detail["M2"].value) == Decimal("10.0061234567") and detail["M2"].number_format == "#,##0.00"
    assert detail["M3"].number_format == "#,##0"
    assert register["E3"].value == dt.datetime(2022, 10, 1) and register["F3"].value == dt.datetime(2022, 11, 15)
    assert made_up_book["Register"].column_dimensions["C"].width >= 17  # "=HYPERLINK(...)", and 4 wide characters


def test_the_same_folder_gives_the_same_bytes_whatever_the_clock(tmp_path, config, monkeypatch):
    folder = made_up_folder(tmp_path / "2022-09")
    first = write_workbook(folder, config, SEPTEMBER).read_bytes()

    later = time.time() + 3 * 365 * 86400
    real_datetime = dt.datetime

    class Later(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.fromtimestamp(later, tz)

    with monkeypatch.context() as clock:  # zipfile reads time.time(), openpyxl datetime.now()
        clock.setattr(time, "time", lambda: later)
        clock.setattr(dt, "datetime", Later)
        second = write_workbook(folder, config, SEPTEMBER).read_bytes()
    assert first == second
    with zipfile.ZipFile(folder / "billing-2022-09.xlsx") as archive:
        assert {info.date_time for info in archive.infolist()} == {(2022, 9, 1, 0, 0, 0)}
        core = archive.read("docProps/core.xml").decode()
    assert core.count("2022-09-01T00:00:00Z") == 2


def test_a_value_that_is_not_a_number_is_one_line_naming_file_row_and_column(tmp_path, config):
    folder = made_up_folder(tmp_path / "2022-09")
    text = (folder / "invoice-lines.csv").read_text(encoding="utf-8-sig").replace("10.01,0.00,10.01", "10.01,0.00,ten")
    (folder / "invoice-lines.csv").write_text(text, encoding="utf-8-sig")
    with pytest.raises(DataError, match=r"^invoice-lines\.csv: row 2, column amount: 'ten' is not a number$"):
        write_workbook(folder, config, SEPTEMBER)

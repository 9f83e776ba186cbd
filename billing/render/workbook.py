"""The month's workbook, ``billing-YYYY-MM.xlsx``: the month's CSV files as sheets finance can
sort and filter, each amount a number, each id text and each date a date.

It is made from the folder's CSV files (``csv_files.read_csv``), never from the computation, so
it says exactly what they say: invoice amounts rounded as invoiced, detail amounts at full
precision (shown to the currency's minor unit). A sheet's columns are its file's, in order, with
the headers of ``COLUMNS``. There are no totals rows and no formulas: a total written as a value
would not follow a filter, and a formula is what a reader of the file would have to trust.

Text cells are always stored as strings (``=HYPERLINK(...)`` in a community name stays text, a
12-digit account id keeps its leading zero) with the Text number format, so that editing a cell
in a spreadsheet does not turn it into a number or a formula either.

The same folder gives the same bytes: the document's created and modified times and the zip
entries' times are the first day of the month, not the clock.
"""

from __future__ import annotations

import datetime as dt
import io
import unicodedata
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Sequence

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from ..config import Config
from ..errors import DataError
from ..money import D, format_amount, minor_unit
from ..records import Month
from . import csv_files

# The kinds of cell a column makes.
TEXT, AMOUNT, INTEGER, WEIGHT, PERCENT, DATE = "text", "amount", "integer", "weight", "percent", "date"

# Each CSV column: its header in the workbook and its kind. Columns not listed are text, headed
# by their CSV name.
COLUMNS: dict[str, tuple[str, str]] = {
    "invoice_number": ("Invoice number", TEXT),
    "community_id": ("Community id", TEXT),
    "community_name": ("Community", TEXT),
    "invoice_month": ("Invoice month", TEXT),
    "issue_date": ("Issue date", DATE),
    "due_date": ("Due date", DATE),
    "currency": ("Currency", TEXT),
    "cloud_costs": ("Cloud costs", AMOUNT),
    "fees": ("Fees", AMOUNT),
    "discounts": ("Discounts", AMOUNT),
    "tax": ("Tax", AMOUNT),
    "taxable": ("Taxable", AMOUNT),
    "total": ("Total", AMOUNT),
    "status": ("Status", TEXT),
    "flags": ("Flags", TEXT),
    "type": ("Type", TEXT),
    "references": ("Cancels invoice", TEXT),
    "prepaid_applied": ("Paid from prepaid funds", AMOUNT),
    "amount_due": ("Amount due", AMOUNT),
    "line": ("Line", INTEGER),
    "section": ("Section", TEXT),
    "description": ("Description", TEXT),
    "provider": ("Provider", TEXT),
    "service": ("Service", TEXT),
    "cost": ("Cost", AMOUNT),
    "credits": ("Credits", AMOUNT),
    "amount": ("Amount", AMOUNT),
    "bucket": ("Bucket", TEXT),
    "assigned_to": ("Assigned to", TEXT),
    "billing_account": ("Billing account", TEXT),
    "project_or_account": ("Project or account", TEXT),
    "charge_type": ("Charge type", TEXT),
    "labels": ("Labels", TEXT),
    "net": ("Net", AMOUNT),
    "source": ("Source", TEXT),
    "reason": ("Reason", TEXT),
    "pool": ("Pool", TEXT),
    "split": ("Split", TEXT),
    "part": ("Part", TEXT),
    "pool_total": ("Pool total", AMOUNT),
    "weight": ("Weight", WEIGHT),
    "share_percent": ("Share", PERCENT),
    "adjustment": ("Adjustment", TEXT),
    "adjusts_invoice": ("Adjusts invoice", TEXT),
    "adjusts_month": ("Adjusts month", TEXT),
    "carried_by": ("Carried by invoice", TEXT),
    "source_total": ("Source total", AMOUNT),
    "attributed": ("Attributed", AMOUNT),
    "shared": ("Shared", AMOUNT),
    "absorbed": ("Absorbed", AMOUNT),
    "unattributed": ("Unattributed", AMOUNT),
    "provider_rounding": ("Provider rounding", AMOUNT),
    "difference": ("Difference", AMOUNT),
    "invoiced": ("Invoiced", AMOUNT),
    "credits_withheld": ("Credits withheld", AMOUNT),
    "invoice_rounding": ("Invoice rounding", AMOUNT),
}

# The sheets, in order: each from its CSV file (columns for a file without rows). Absorbed and
# Adjustments come last: finance reads them less often, but they are where the organisation's own
# cost and late changes to final invoices are.
SHEETS: tuple[tuple[str, str, Sequence[str]], ...] = (
    ("Register", "invoice-register.csv", csv_files.REGISTER_COLUMNS),
    ("Lines", "invoice-lines.csv", csv_files.LINE_COLUMNS),
    ("Cost detail", "cost-detail.csv", csv_files.DETAIL_COLUMNS),
    ("Shared", "shared-allocation.csv", csv_files.SHARED_COLUMNS),
    ("Unattributed", "unattributed.csv", csv_files.UNATTRIBUTED_COLUMNS),
    ("Reconciliation", "reconciliation.csv", csv_files.RECONCILIATION_COLUMNS),
    ("Absorbed", "absorbed.csv", csv_files.ABSORBED_COLUMNS),
    ("Adjustments", "adjustments.csv", csv_files.ADJUSTMENT_COLUMNS),
)

TEXT_FORMAT, DATE_FORMAT, INTEGER_FORMAT = "@", "yyyy-mm-dd", "0"
WEIGHT_FORMAT, PERCENT_FORMAT = "#,##0.00####", "0.00%"
MIN_WIDTH, MAX_WIDTH = 8, 60  # characters
HEADER_FONT, HEADER_FILL = Font(bold=True), PatternFill("solid", fgColor="DDE3EA")
MAX_ROWS = 1_048_575  # a sheet's rows, less the header


def workbook_name(month: Month) -> str:
    return f"billing-{month}.xlsx"


def amount_format(currency: str) -> str:
    """``#,##0.00`` for USD, ``#,##0`` for JPY: the currency's minor unit (two without one)."""
    places = minor_unit(currency) if currency else 2
    return "#,##0" + ("." + "0" * places if places else "")


def write_workbook(folder: Path, config: Config, month: Month) -> Path:
    """Write ``billing-YYYY-MM.xlsx`` into ``folder`` from its CSV files. A sheet whose file is not
    in the folder (a folder written before that file existed) is left out."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, name, default_columns in SHEETS:
        if (folder / name).is_file():
            _add_sheet(workbook.create_sheet(title), folder / name, default_columns)
    workbook.active = 0
    workbook.properties.title = f"Billing {month}"
    workbook.properties.creator = config.organisation.name
    path = folder / workbook_name(month)
    path.write_bytes(_fixed_bytes(workbook, month))
    return path


def _add_sheet(sheet: Worksheet, path: Path, default_columns: Sequence[str]) -> None:
    rows = csv_files.read_csv(path)
    if len(rows) > MAX_ROWS:
        raise DataError(f"{path.name}: {len(rows)} rows, more than a spreadsheet holds ({MAX_ROWS})")
    columns = list(rows[0]) if rows else list(default_columns)
    kinds = [COLUMNS.get(column, (column, TEXT))[1] for column in columns]
    widths = []
    for index, column in enumerate(columns, start=1):
        header = sheet.cell(row=1, column=index, value=COLUMNS.get(column, (column, TEXT))[0])
        header.data_type = "s"
        header.font, header.fill = HEADER_FONT, HEADER_FILL
        widths.append(_width(header.value) + 3)  # room for the filter button
    for number, row in enumerate(rows, start=2):
        currency = row.get("currency", "")
        for index, (column, kind) in enumerate(zip(columns, kinds), start=1):
            shown = _set(sheet.cell(row=number, column=index), kind, row[column] or "", currency,
                         f"{path.name}: row {number}, column {column}")
            widths[index - 1] = max(widths[index - 1], _width(shown) + 2)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(MAX_WIDTH, max(MIN_WIDTH, width))
    last = f"{get_column_letter(len(columns))}{len(rows) + 1}"
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{last}"
    sheet.print_title_rows = "1:1"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True


def _set(cell, kind: str, text: str, currency: str, where: str) -> str:
    """Give ``cell`` the value of the CSV ``text`` as a ``kind`` cell; return what it shows."""
    if kind == TEXT:
        cell.number_format = TEXT_FORMAT
    if kind == TEXT or not text:
        if text:
            cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)  # control characters xlsx cannot hold
            cell.data_type = "s"  # never a formula or an error code, whatever the text begins with
            cell.quotePrefix = text.startswith(csv_files.FORMULA_STARTS + (csv_files.TEXT_MARK,))
        return max(text.splitlines() or [""], key=len)
    if kind == DATE:
        try:
            cell.value = dt.date.fromisoformat(text)
        except ValueError:
            raise DataError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None
        cell.number_format = DATE_FORMAT
        return text
    try:
        number = D(text)
        if not number.is_finite():
            raise ValueError(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if kind == INTEGER:
        cell.value, cell.number_format = int(number), INTEGER_FORMAT
        return str(cell.value)
    if kind == PERCENT:
        cell.value, cell.number_format = _number(number / 100), PERCENT_FORMAT
        return f"{number:.2f}%"
    if kind == WEIGHT:
        cell.value, cell.number_format = _number(number), WEIGHT_FORMAT
        return f"{number:,.6f}".rstrip("0")
    try:
        cell.number_format = amount_format(currency)
    except ValueError:
        raise DataError(f"{where}: unknown currency {currency!r}") from None
    cell.value = _number(number)
    return format_amount(number, currency or "USD")


def _number(value: Decimal) -> float:
    """The one place an amount becomes a float: an xlsx number cell holds a double. A double
    keeps 15 significant digits, so every invoice amount exactly as written (below 10^13, in
    cents) and a full-precision detail amount to far below a cent; nothing is summed as floats."""
    return float(value)


def _width(text: str) -> int:
    """Characters a column needs to show ``text``; a wide (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fixed_bytes(workbook: Workbook, month: Month) -> bytes:
    """The xlsx file, with the month's first day for every time openpyxl and zipfile would take
    from the clock (the document's created and modified times, each zip entry's time)."""
    stamp = dt.datetime(max(month.year, 1980), month.month, 1)
    workbook.properties.created = workbook.properties.modified = stamp
    written = io.BytesIO()
    ExcelWriter(workbook, zipfile.ZipFile(written, "w", zipfile.ZIP_DEFLATED)).save()
    fixed = io.BytesIO()
    with zipfile.ZipFile(written) as source, zipfile.ZipFile(fixed, "w") as target:
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=stamp.timetuple()[:6])
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
            target.writestr(info, source.read(entry.filename))
    return fixed.getvalue()

"""The CSV files finance reviews and imports.

Invoice files (``invoice-register.csv``, ``invoice-lines.csv``) carry the rounded amounts printed
on the invoices. Detail files (``cost-detail.csv``, ``unattributed.csv``) carry full-precision
amounts, so that sums over them are exact. ``reconciliation.csv`` rounds its columns to the
cent so that the buckets add up to the source total as printed (a cent of rounding goes to the
bucket rounding moved most); its ``difference`` is computed at full precision before rounding,
and its ``invoice_rounding`` is what makes ``invoiced`` add up as printed.

Every file is UTF-8 with a byte order mark (so that Excel on Windows reads "×" as "×"), with
``.`` decimals, amounts without currency symbols beside an ISO 4217 ``currency`` column. A text
cell that a spreadsheet would run as a formula (beginning with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) is written with a leading ``'``, as is one already beginning with ``'``, so
that ``read_csv`` gives back exactly what was written; amount columns are never touched.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

from ..money import ZERO, plain_amount, quantize, round_to_total
from ..adjustments import Adjustment
from ..allocation import Share
from ..config import Config
from ..errors import DataError
from ..records import PROVISIONAL, Attributed, Invoice, ReconciliationRow

REGISTER_COLUMNS = ("invoice_number", "community_id", "community_name", "invoice_month", "issue_date",
                    "due_date", "currency", "cloud_costs", "fees", "discounts", "tax", "total", "status", "flags",
                    "type", "references", "prepaid_applied", "amount_due")
LINE_COLUMNS = ("invoice_number", "community_id", "invoice_month", "line", "section", "description",
                "provider", "service", "currency", "cost", "credits", "amount", "taxable", "tax")
DETAIL_COLUMNS = ("invoice_month", "bucket", "assigned_to", "provider", "billing_account",
                  "project_or_account", "service", "charge_type", "labels", "currency", "cost",
                  "credits", "net", "source")
UNATTRIBUTED_COLUMNS = ("invoice_month", "provider", "billing_account", "project_or_account", "service",
                        "charge_type", "labels", "currency", "cost", "credits", "net", "source")
ABSORBED_COLUMNS = ("invoice_month", "reason", "provider", "billing_account", "project_or_account", "service",
                    "charge_type", "labels", "currency", "cost", "credits", "net", "source")
SHARED_COLUMNS = ("pool", "description", "split", "part", "currency", "pool_total", "community_id", "weight",
                  "share_percent", "amount")
ADJUSTMENT_COLUMNS = ("adjustment", "community_id", "adjusts_invoice", "adjusts_month", "description", "currency",
                      "amount", "carried_by")
RECONCILIATION_COLUMNS = ("provider", "billing_account", "invoice_month", "currency", "source_total",
                          "attributed", "shared", "absorbed", "unattributed", "provider_rounding", "difference",
                          "invoiced", "credits_withheld", "invoice_rounding")


# Columns holding numbers (amounts, weights, percentages, line numbers): written as they are.
NUMERIC_COLUMNS = frozenset((
    "cloud_costs", "fees", "discounts", "tax", "taxable", "total", "prepaid_applied", "amount_due", "line", "cost",
    "credits", "amount", "net", "pool_total", "weight", "share_percent", "source_total", "attributed", "shared",
    "absorbed", "unattributed", "provider_rounding", "difference", "invoiced", "credits_withheld",
    "invoice_rounding"))
# What a spreadsheet reads as the start of a formula, and the mark that makes a cell text.
FORMULA_STARTS, TEXT_MARK = ("=", "+", "-", "@", "\t", "\r"), "'"
ENCODING = "utf-8-sig"  # UTF-8 with a byte order mark


def neutralised(text: str) -> str:
    """``=HYPERLINK("x")`` -> ``'=HYPERLINK("x")``: a text cell a spreadsheet will not run."""
    return TEXT_MARK + text if text.startswith(FORMULA_STARTS + (TEXT_MARK,)) else text


def restored(text: str) -> str:
    """What ``neutralised`` was given."""
    return text[1:] if text.startswith(TEXT_MARK) else text


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file this module wrote, as written before neutralising (see the module
    docstring): what later files (the workbook, the accounting imports, the review page) read."""
    rows = []
    with path.open(encoding=ENCODING, newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if None in row or None in row.values():
                raise DataError(f"{path}:{reader.line_num}: a row with another number of values than the "
                                f"{len(reader.fieldnames or ())} columns of its header")
            rows.append({column: value if column in NUMERIC_COLUMNS else restored(value)
                         for column, value in row.items()})
    return rows


def exact(amount: Decimal) -> str:
    """Full precision without trailing zeros, but at least two decimals: ``1.500000000`` -> ``1.50``."""
    text = format(amount.normalize().copy_abs() if amount.is_zero() else amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]],
              numeric: frozenset[str] = NUMERIC_COLUMNS) -> None:
    """A CSV file for spreadsheets: with a byte order mark, and every text cell (a column not in
    ``numeric``) neutralised against formula injection."""
    with path.open("w", encoding=ENCODING, newline="") as handle:
        _write_rows(handle, columns, rows, numeric, path.name)


def _write_rows(handle: TextIO, columns: Sequence[str], rows: Iterable[Sequence[object]],
                numeric: frozenset[str], name: str) -> None:
    text = [column not in numeric for column in columns]
    writer = csv.writer(handle)
    writer.writerow(columns)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"{name}: a row of {len(row)} cells for {len(columns)} columns")
        writer.writerow([neutralised(str(cell)) if is_text else cell for cell, is_text in zip(row, text)])




def write_register(path: Path, invoices: Sequence[Invoice]) -> None:
    write_csv(path, REGISTER_COLUMNS, (
        (i.number, i.community_id, i.community_name, str(i.month), i.issue_date.isoformat(),
         i.due_date.isoformat(), i.currency,
         *(plain_amount(a, i.currency) for a in (i.cloud_costs, i.fees, i.discounts, i.tax, i.total)),
         PROVISIONAL if i.status == "draft" and i.provisional else i.status, "; ".join(i.flags), i.kind,
         i.references, plain_amount(-i.prepaid, i.currency), plain_amount(i.amount_due, i.currency))
        for i in invoices))


def _line_rows(invoice: Invoice) -> Iterator[tuple[object, ...]]:
    for n, line in enumerate(invoice.lines, start=1):
        yield (invoice.number, invoice.community_id, str(invoice.month), n, line.section, line.description,
               line.provider, line.service, invoice.currency, plain_amount(line.cost, invoice.currency),
               plain_amount(line.credits, invoice.currency), plain_amount(line.amount, invoice.currency),
               *("" if part is None else plain_amount(part, invoice.currency) for part in (line.taxable, line.tax)))


def write_lines(path: Path, invoices: Sequence[Invoice]) -> None:
    write_csv(path, LINE_COLUMNS, (row for invoice in invoices for row in _line_rows(invoice)))


def invoice_lines_text(invoice: Invoice) -> str:
    """One invoice's rows of ``invoice-lines.csv``, as the text of a CSV file (what its PDF embeds)."""
    buffer = io.StringIO()
    _write_rows(buffer, LINE_COLUMNS, _line_rows(invoice), NUMERIC_COLUMNS, "invoice lines")
    return buffer.getvalue()


def labels_text(labels: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{k}={v}" for k, v in labels)


def _amounts(item: Attributed) -> tuple[str, str, str]:
    return exact(item.row.cost), exact(item.row.credit_total), exact(item.row.net)


def write_cost_detail(path: Path, attributed: Sequence[Attributed]) -> None:
    """Every cost row with its bucket, so the file adds up to the source totals.

    ``assigned_to`` is the community id, the shared pool id, or the reason a cost is absorbed.
    """
    write_csv(path, DETAIL_COLUMNS, (
        (r.invoice_month, a.bucket.kind, a.bucket.name, r.provider, r.billing_account,
         r.project_or_account, r.service, r.charge_type, labels_text(r.labels), r.currency,
         *_amounts(a), r.source)
        for a in sorted(attributed, key=lambda a: (a.bucket.kind, a.bucket.name, a.row))
        for r in (a.row,)))


def write_unattributed(path: Path, attributed: Sequence[Attributed]) -> None:
    """Rows no rule matched, largest first: what to write a rule for next."""
    items = sorted((a for a in attributed if a.bucket.kind == "unattributed"),
                   key=lambda a: (-a.row.net, a.row))
    write_csv(path, UNATTRIBUTED_COLUMNS, (
        (r.invoice_month, r.provider, r.billing_account, r.project_or_account, r.service,
         r.charge_type, labels_text(r.labels), r.currency, *_amounts(a), r.source)
        for a in items for r in (a.row,)))


def write_absorbed(path: Path, attributed: Sequence[Attributed]) -> None:
    """Costs the organisation carries itself, with the reason its rule gives; never invoiced."""
    items = sorted((a for a in attributed if a.bucket.kind == "absorbed"), key=lambda a: (a.bucket.name, a.row))
    write_csv(path, ABSORBED_COLUMNS, (
        (r.invoice_month, a.bucket.name, r.provider, r.billing_account, r.project_or_account, r.service,
         r.charge_type, labels_text(r.labels), r.currency, *_amounts(a), r.source)
        for a in items for r in (a.row,)))


def write_shared_allocation(path: Path, shares: Sequence[Share], config: Config) -> None:
    """How each shared pool was split: the pool, the total of each of its parts (its tax, and the
    rest), each community's weight and share."""
    weights: dict[tuple[str, str, str], Decimal] = {}
    for share in shares:
        key = (share.pool, share.currency, share.part)
        weights[key] = weights.get(key, ZERO) + share.weight
    write_csv(path, SHARED_COLUMNS, (
        (s.pool, config.pool(s.pool).description, config.pool(s.pool).split, s.part, s.currency,
         exact(s.pool_total), s.community, format(s.weight.normalize(), "f"),
         f"{s.percent(weights[(s.pool, s.currency, s.part)]):.4f}", plain_amount(s.amount, s.currency))
        for s in shares))


def write_reconciliation(path: Path, rows: Sequence[ReconciliationRow]) -> None:
    """Each account's buckets, rounded so that they add up to the source total as printed, and
    what the invoices passed through, with the rounding that makes it add up as printed."""

    def printed(r: ReconciliationRow) -> list[Decimal]:
        source, difference = quantize(r.source_total, r.currency), quantize(r.difference, r.currency)
        buckets = round_to_total([r.attributed, r.shared, r.absorbed, r.unattributed, r.provider_rounding],
                                 r.currency, source - difference)
        invoiced, withheld = quantize(r.invoiced, r.currency), quantize(r.credits_withheld, r.currency)
        return [source, *buckets, difference, invoiced, withheld, invoiced - (buckets[0] + buckets[1] + withheld)]

    write_csv(path, RECONCILIATION_COLUMNS, (
        (r.provider, r.billing_account, r.invoice_month, r.currency,
         *(plain_amount(a, r.currency) for a in printed(r)))
        for r in rows))


def write_adjustments(path: Path, found: Sequence[Adjustment], invoices: Sequence[Invoice]) -> None:
    """Late data: the differences this run found for the month's finalized invoices (``found``,
    to be carried by each community's next draft), and the adjustments this month's invoices
    carry (``carried``, from earlier months)."""
    rows = [("found", a.community_id, a.invoice_number, a.month, a.description, a.currency,
             plain_amount(a.amount, a.currency), "") for a in found]
    for invoice in invoices:
        for line in invoice.lines:
            if line.description.startswith("Adjustment to "):
                adjusted, _, description = line.description[len("Adjustment to "):].partition(": ")
                number, _, label = adjusted.partition(" (")
                rows.append(("carried", invoice.community_id, number, _month_of(label.rstrip(")")), description,
                             invoice.currency, plain_amount(line.amount, invoice.currency), invoice.number))
    write_csv(path, ADJUSTMENT_COLUMNS, rows)


def _month_of(label: str) -> str:
    """``September 2022`` -> ``2022-09`` (the label an adjustment line prints)."""
    try:
        return dt.datetime.strptime(label, "%B %Y").strftime("%Y-%m")
    except ValueError:
        return label


FINDING_COLUMNS = ("kind", "subject", "status", "message")


def write_findings(path: Path, findings: Sequence, warnings: Sequence[str]) -> None:
    """``findings.csv``: what a person should know before sending the month's invoices. First the
    guards' findings accepted with ``--allow`` (``guards.Finding``; ``status`` allowed, with their
    ``kind`` and ``subject``, e.g. ``cost-change``, ``ciroh``), then the run's warnings (``status``
    warning), in the order the run gave them. The warning recording who allowed a finding is left
    out (the ledger keeps it): the finding's own row says what was accepted."""
    allowed = tuple(f"allowed: {finding.key} by " for finding in findings)
    rows = [(f.kind, f.subject, "allowed", f.message) for f in findings]
    rows += [("", "", "warning", warning) for warning in warnings if not warning.startswith(allowed)]
    write_csv(path, FINDING_COLUMNS, rows)

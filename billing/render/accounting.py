"""The month's invoices as accounting systems import them: ``xero-invoices.csv`` (Xero's sales
invoice import) and ``quickbooks-invoices.csv`` (QuickBooks Online's invoice import), made from
the folder's ``invoice-register.csv`` and ``invoice-lines.csv``; never recomputed.

One row per invoice line, the invoice's own fields repeated on each. An accounting system
computes tax per line from the line's tax type, so the invoice's tax lines are not imported:
every other line carries its part of the invoice's tax as priced (the ``taxable`` and ``tax``
columns of ``invoice-lines.csv``, which add up to the tax line's base and amount), with the
"taxed" type when it is in the contract's tax base and the "not taxed" type when it is not. A line
only partly in the base (a discount, when the base is the fees only, counts by the fees' share of
it) becomes two rows, its taxed part and its untaxed part, so that every row's tax is its
amount at the tax type's rate. (Lines priced before the ledger kept these parts are split again
from the config's terms, ``pricing.line_taxes``.) Prepaid funds are a line coded to the account that holds them, so an imported invoice
comes to the register's ``amount_due``; without prepaid funds that is its ``total``.

Credit notes (a voided invoice's cancellation) take the form each importer expects:

- Xero imports a credit note with the invoice template: its lines negative, so that its total
  is negative.
- QuickBooks Online does not take a credit note in the invoice import (an invoice cannot be
  negative); it imports credit notes with a tool of their own, with positive amounts. They are
  written to ``quickbooks-credit-notes.csv``, which a month has only when it has a credit note,
  with any invoice that comes to less than zero (credits above its charges).

A voided invoice stays in both files, as the invoice it was: it was issued, and its credit note
cancels it. Drafts are written too (numbered ``DRAFT-<YYYYMM>-<community>``), for a finance team
that wants to look at them in its system; the normal flow imports finalized numbers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple, Sequence

from ..config import Config
from ..config.accounting import DATE_FORMATS
from ..errors import DataError
from ..money import D, ZERO, plain_amount
from ..pricing import line_taxes, purchase_order
from ..records import Month
from .csv_files import read_csv, write_csv

XERO_FILE = "xero-invoices.csv"
QUICKBOOKS_FILE = "quickbooks-invoices.csv"
QUICKBOOKS_CREDIT_NOTES_FILE = "quickbooks-credit-notes.csv"

# Xero's sales invoice import template, column for column as Xero's template file has them (a
# leading * marks a column Xero requires). Xero Central, "Import invoices" (Business > Invoices >
# Import: "Download template file"); dates in the organisation's region's format, amounts tax
# exclusive or inclusive as chosen when importing; a negative total imports as a credit note.
XERO_COLUMNS = (
    "*ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3", "POAddressLine4",
    "POCity", "PORegion", "POPostalCode", "POCountry", "*InvoiceNumber", "Reference", "*InvoiceDate", "*DueDate",
    "InventoryItemCode", "*Description", "*Quantity", "*UnitAmount", "Discount", "*AccountCode", "*TaxType",
    "TaxAmount", "TrackingName1", "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency",
    "BrandingTheme")
XERO_NUMERIC = frozenset({"*Quantity", "*UnitAmount", "Discount", "TaxAmount"})

# QuickBooks Online's invoice import (Settings > Import data > Invoices), the column headings of
# its sample file for a company that charges tax per line (* marks a mandatory column); QuickBooks
# help, "Import invoices". The date format is chosen while mapping the columns.
QUICKBOOKS_INVOICE_COLUMNS = (
    "*InvoiceNo", "*Customer", "*InvoiceDate", "*DueDate", "Memo", "Item(Product/Service)", "ItemDescription",
    "ItemQuantity", "ItemRate", "*ItemAmount", "*ItemTaxCode", "ItemTaxAmount", "Currency")
# QuickBooks Online's credit note import (Settings > Import data > Credit notes; QuickBooks help,
# "How to import credit notes") has the invoice import's line columns; its number and date are the
# credit note's. Headings it does not recognise are matched to its fields in its mapping step.
QUICKBOOKS_CREDIT_NOTE_COLUMNS = (
    "*CreditNoteNo", "*Customer", "*CreditNoteDate", "Memo", "Item(Product/Service)", "ItemDescription",
    "ItemQuantity", "ItemRate", "*ItemAmount", "*ItemTaxCode", "ItemTaxAmount", "Currency")
QUICKBOOKS_NUMERIC = frozenset({"ItemQuantity", "ItemRate", "*ItemAmount", "ItemTaxAmount"})

CREDIT_NOTE = "credit_note"
TAX = "tax"


class ImportLine(NamedTuple):
    """An invoice line as the imports carry it.

    Attributes:
        section: ``cloud``, ``fees``, ``discounts`` or ``prepaid`` (never ``tax``).
        description: the line's text on the invoice.
        amount: what the line (or this part of it) charges, before tax.
        tax: its part of the invoice's tax.
        taxed: whether it is in the contract's tax base (the "taxed" type) or not.
    """

    section: str
    description: str
    amount: Decimal
    tax: Decimal
    taxed: bool


class Document(NamedTuple):
    """An invoice or credit note of the register, with its lines as the imports carry them.

    Attributes:
        number, community_id, community_name, currency: as in the register.
        month: the month it bills.
        issue_date, due_date: its dates.
        kind: ``invoice`` or ``credit_note``.
        references: for a credit note, the invoice it cancels.
        lines: its lines but for tax lines, in order.
    """

    number: str
    community_id: str
    community_name: str
    month: Month
    issue_date: dt.date
    due_date: dt.date
    currency: str
    kind: str
    references: str
    lines: tuple[ImportLine, ...]
    purchase_order: str | None = None

    @property
    def reference(self) -> str:
        """What the document is for, in words: ``September 2022``, ``Cancels INV-2022-00008``;
        then the purchase order the invoice quotes, if any (``September 2022, PO-2022-0417``)."""
        if self.kind == CREDIT_NOTE:
            return f"Cancels {self.references}"
        words = self.month.first_day.strftime("%B %Y")
        return f"{words}, {self.purchase_order}" if self.purchase_order else words


def documents(folder: Path, config: Config) -> list[Document]:
    """The register's documents in its order, each with its lines and their tax; ``DataError`` if
    a document's lines and tax do not come to its amount due."""
    lines: dict[str, list[dict[str, str]]] = {}
    for line in read_csv(folder / "invoice-lines.csv"):
        lines.setdefault(line["invoice_number"], []).append(line)
    found = []
    for row in read_csv(folder / "invoice-register.csv"):
        mine = sorted(lines.get(row["invoice_number"], []), key=lambda line: int(line["line"]))
        month = Month.parse(row["invoice_month"])
        amounts = [D(line["amount"]) for line in mine]
        if all(line.get("taxable") and line.get("tax") for line in mine):
            parts = [(D(line["taxable"]), D(line["tax"])) for line in mine]
        else:  # priced before each line kept its part of the tax
            parts = list(line_taxes(config, row["community_id"], month,
                                    [(line["section"], line["service"], a) for line, a in zip(mine, amounts)],
                                    D(row["tax"])))
        kept = tuple(part for line, amount, (taxable, tax) in zip(mine, amounts, parts) if line["section"] != TAX
                     for part in _import_lines(line["section"], line["description"], amount, taxable, tax))
        imported = sum((line.amount + line.tax for line in kept), Decimal(0))
        if imported != D(row["amount_due"]):
            raise DataError(f"{folder.name}/invoice-register.csv: {row['invoice_number']} is due "
                            f"{row['amount_due']} {row['currency']} but its lines in invoice-lines.csv come to "
                            f"{imported}; run the month again")
        found.append(Document(row["invoice_number"], row["community_id"], row["community_name"], month,
                              dt.date.fromisoformat(row["issue_date"]), dt.date.fromisoformat(row["due_date"]),
                              row["currency"], row["type"], row["references"], kept,
                              purchase_order(config.community(row["community_id"]), month)))
    return found


def _import_lines(section: str, description: str, amount: Decimal, taxable: Decimal,
                  tax: Decimal) -> tuple[ImportLine, ...]:
    """A line as imported: taxed, not taxed, or (partly in the tax base) its two parts."""
    if not taxable:
        return (ImportLine(section, description, amount, tax, False),)
    if taxable == amount:
        return (ImportLine(section, description, amount, tax, True),)
    return (ImportLine(section, f"{description} (taxed part)", taxable, tax, True),
            ImportLine(section, f"{description} (untaxed part)", amount - taxable, ZERO, False))


def _date(day: dt.date, date_format: str) -> str:
    return day.strftime(DATE_FORMATS[date_format])


def xero_rows(docs: Sequence[Document], config: Config) -> list[tuple[str, ...]]:
    """One row per line, in Xero's template (``XERO_COLUMNS``); a credit note's lines negative."""
    rows = []
    for doc in docs:
        xero = config.accounting.xero_for(doc.community_id)
        community = config.community(doc.community_id)
        email = community.contact.email if community.contact and community.contact.email else ""
        address = (list(community.address[:4]) + ["", "", "", ""])[:4]
        for line in doc.lines:
            code = getattr(xero.account_codes, line.section) or ""  # none set up: Xero asks on import
            rows.append((
                doc.community_name, email, *address, "", "", "", "", doc.number, doc.reference,
                _date(doc.issue_date, xero.date_format), _date(doc.due_date, xero.date_format), "",
                line.description, "1", plain_amount(line.amount, doc.currency), "", code,
                xero.tax_types.taxed if line.taxed else xero.tax_types.not_taxed, plain_amount(line.tax, doc.currency),
                "", "", "", "", doc.currency, xero.branding_theme or ""))
    return rows


def quickbooks_rows(docs: Sequence[Document], config: Config) -> list[tuple[str, ...]]:
    """One row per line, in QuickBooks Online's layout: an invoice's lines as they are, a credit
    note's with the signs QuickBooks gives a credit note (its amounts positive)."""
    rows = []
    for doc in docs:
        quickbooks = config.accounting.quickbooks_for(doc.community_id)
        credit = _credit_in_quickbooks(doc)
        sign = -1 if credit else 1
        for line in doc.lines:
            amount = plain_amount(sign * line.amount, doc.currency)
            rows.append((
                doc.number, doc.community_name, _date(doc.issue_date, quickbooks.date_format),
                *(() if credit else (_date(doc.due_date, quickbooks.date_format),)),
                doc.reference, getattr(quickbooks.items, line.section), line.description, "1", amount, amount,
                quickbooks.tax_codes.taxed if line.taxed else quickbooks.tax_codes.not_taxed,
                plain_amount(sign * line.tax, doc.currency), doc.currency))
    return rows


def _credit_in_quickbooks(doc: Document) -> bool:
    """A credit note, or an invoice whose credits exceed its charges (it comes to less than zero):
    QuickBooks takes no invoice below zero, so it goes to the credit-note import, as a credit."""
    return doc.kind == CREDIT_NOTE or sum((line.amount + line.tax for line in doc.lines), Decimal(0)) < 0


def write_accounting_imports(folder: Path, config: Config) -> None:
    """Write ``xero-invoices.csv`` and ``quickbooks-invoices.csv`` (and, when the month has a credit
    note, ``quickbooks-credit-notes.csv``) into ``folder`` from its register and lines."""
    docs = documents(folder, config)
    write_csv(folder / XERO_FILE, XERO_COLUMNS, xero_rows(docs, config), numeric=XERO_NUMERIC)
    invoices = [d for d in docs if not _credit_in_quickbooks(d)]
    credit_notes = [d for d in docs if _credit_in_quickbooks(d)]
    write_csv(folder / QUICKBOOKS_FILE, QUICKBOOKS_INVOICE_COLUMNS, quickbooks_rows(invoices, config),
              numeric=QUICKBOOKS_NUMERIC)
    if credit_notes:
        write_csv(folder / QUICKBOOKS_CREDIT_NOTES_FILE, QUICKBOOKS_CREDIT_NOTE_COLUMNS,
                  quickbooks_rows(credit_notes, config), numeric=QUICKBOOKS_NUMERIC)
    else:
        (folder / QUICKBOOKS_CREDIT_NOTES_FILE).unlink(missing_ok=True)

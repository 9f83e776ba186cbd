"""The accounting-system imports: xero-invoices.csv and quickbooks-invoices.csv, read as Xero and
QuickBooks Online would read them."""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.config import load_config
from billing.errors import DataError
from billing.records import Invoice, InvoiceLine, Month
from billing.render import csv_files
from billing.render.accounting import write_accounting_imports

from conftest import ROOT, said

DEMO_CONFIG = ROOT / "config" / "billing.yaml"

# Xero Central, "Import invoices": the sales invoice template's columns (Business > Invoices >
# Import > Download template file), and those it marks required (* in the template's heading).
XERO_DOCUMENTED = [
    "ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3", "POAddressLine4",
    "POCity", "PORegion", "POPostalCode", "POCountry", "InvoiceNumber", "Reference", "InvoiceDate", "DueDate",
    "InventoryItemCode", "Description", "Quantity", "UnitAmount", "Discount", "AccountCode", "TaxType",
    "TaxAmount", "TrackingName1", "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency",
    "BrandingTheme"]
XERO_REQUIRED = {"ContactName", "InvoiceNumber", "InvoiceDate", "DueDate", "Description", "Quantity", "UnitAmount",
                 "AccountCode", "TaxType"}
# QuickBooks Online help, "Import invoices": the sample file's headings for a company that charges
# tax per line, and the mandatory ones.
QUICKBOOKS_DOCUMENTED = [
    "InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Terms", "Location", "Memo", "Item(Product/Service)",
    "ItemDescription", "ItemQuantity", "ItemRate", "ItemAmount", "ItemTaxCode", "ItemTaxAmount", "Currency",
    "Service Date"]
QUICKBOOKS_REQUIRED = {"InvoiceNo", "Customer", "InvoiceDate", "DueDate", "ItemAmount"}

CENTS = re.compile(r"-?\d+\.\d\d")


def parse(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A file as an importer reads it: its headings, and its rows as written (nothing restored)."""
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), f"{path.name} has no byte order mark"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def cli(*args: str, ledger: Path):
    return CliRunner().invoke(main, [*args, "--config", str(DEMO_CONFIG)],
                              env={"BILLING_LEDGER_URL": f"sqlite:///{ledger}"})


@pytest.fixture(scope="module")
def september(tmp_path_factory) -> Path:
    """September 2022 of the demo, with Temple's invoice finalized and then voided by a credit note
    (in a ledger of its own)."""
    root = tmp_path_factory.mktemp("accounting")
    ledger, out = root / "ledger.sqlite", str(root / "out")
    for args in (("run", "--month", "2022-09"), ("finalize", "--month", "2022-09", "--community", "temple"),
                 ("void", "INV-2022-00001", "--reason", "billed to the wrong department")):
        result = cli(*args, "--output", out, ledger=ledger)
        assert result.exit_code == 0, said(result) or result.output
    return root / "out" / "2022-09"


def test_the_headings_are_the_importers_documented_columns(september):
    for name, documented, required in (("xero-invoices.csv", XERO_DOCUMENTED, XERO_REQUIRED),
                                       ("quickbooks-invoices.csv", QUICKBOOKS_DOCUMENTED, QUICKBOOKS_REQUIRED)):
        headings, rows = parse(september / name)
        plain = [h.removeprefix("*") for h in headings]
        assert rows and len(plain) == len(set(plain)), name
        assert set(plain) <= set(documented), f"{name}: unknown columns {set(plain) - set(documented)}"
        assert plain == [c for c in documented if c in plain], f"{name}: not in the documented order"
        starred = {h[1:] for h in headings if h.startswith("*")}
        assert required <= starred, f"{name}: required columns missing or unmarked: {required - starred}"
    xero, _ = parse(september / "xero-invoices.csv")
    assert {h[1:] for h in xero if h.startswith("*")} == XERO_REQUIRED  # marked as Xero's template marks them


def test_the_reference_says_the_month_and_the_purchase_order_the_invoice_quotes(september):
    _, xero = parse(september / "xero-invoices.csv")
    _, quickbooks = parse(september / "quickbooks-invoices.csv")
    lis = "DRAFT-202209-lis"  # the demo's London Interdisciplinary School quotes PO-2022-0417
    assert {r["Reference"] for r in xero if r["*InvoiceNumber"] == lis} == {"September 2022, PO-2022-0417"}
    assert {r["Memo"] for r in quickbooks if r["*InvoiceNo"] == lis} == {"September 2022, PO-2022-0417"}
    assert {r["Reference"] for r in xero if r["*InvoiceNumber"] == "DRAFT-202209-paleohack"} == {"September 2022"}


def test_dates_are_in_the_configured_format_and_are_the_registers(september):
    register = {r["invoice_number"]: r for r in csv_files.read_csv(september / "invoice-register.csv")}
    config = load_config(DEMO_CONFIG)
    assert config.accounting.xero.date_format == config.accounting.quickbooks.date_format == "mm/dd/yyyy"
    _, xero = parse(september / "xero-invoices.csv")
    _, quickbooks = parse(september / "quickbooks-invoices.csv")
    for rows, number, issued, due in ((xero, "*InvoiceNumber", "*InvoiceDate", "*DueDate"),
                                      (quickbooks, "*InvoiceNo", "*InvoiceDate", "*DueDate")):
        for row in rows:
            invoice = register[row[number]]
            assert dt.datetime.strptime(row[issued], "%m/%d/%Y").date().isoformat() == invoice["issue_date"]
            assert dt.datetime.strptime(row[due], "%m/%d/%Y").date().isoformat() == invoice["due_date"]


def test_each_invoices_lines_and_tax_come_to_its_total_to_the_cent(september):
    register = csv_files.read_csv(september / "invoice-register.csv")
    lines = csv_files.read_csv(september / "invoice-lines.csv")
    _, xero = parse(september / "xero-invoices.csv")
    _, quickbooks = parse(september / "quickbooks-invoices.csv")
    assert {r["currency"] for r in register} == {"USD", "CAD", "GBP"}
    taxes = {r["community_id"]: next(l["description"] for l in lines if l["invoice_number"] == r["invoice_number"]
                                     and l["section"] == "tax") for r in register if Decimal(r["tax"])}
    assert [taxes[c].split(" (")[0] for c in ("temple", "callysto", "lis")] == ["Sales tax", "GST", "VAT"]
    for invoice in register:
        number = invoice["invoice_number"]
        mine = [r for r in xero if r["*InvoiceNumber"] == number]
        assert len(mine) == sum(1 for l in lines if l["invoice_number"] == number and l["section"] != "tax")
        assert all(CENTS.fullmatch(r[c]) for r in mine for c in ("*UnitAmount", "TaxAmount"))
        assert all(r["*Quantity"] == "1" and r["Currency"] == invoice["currency"] for r in mine)
        assert sum(Decimal(r["*UnitAmount"]) + Decimal(r["TaxAmount"]) for r in mine) == Decimal(invoice["total"])
        assert sum(Decimal(r["TaxAmount"]) for r in mine) == Decimal(invoice["tax"])
        if invoice["type"] == "credit_note":
            assert not [r for r in quickbooks if r["*InvoiceNo"] == number]
            continue
        books = [r for r in quickbooks if r["*InvoiceNo"] == number]
        assert [(r["ItemDescription"], r["*ItemAmount"], r["ItemTaxAmount"]) for r in books] == \
               [(r["*Description"], r["*UnitAmount"], r["TaxAmount"]) for r in mine]
        assert all(r["ItemRate"] == r["*ItemAmount"] and CENTS.fullmatch(r["*ItemAmount"]) for r in books)


def test_a_line_carrying_tax_has_the_taxed_type_and_one_without_the_other(september):
    _, xero = parse(september / "xero-invoices.csv")
    _, quickbooks = parse(september / "quickbooks-invoices.csv")
    taxed = {"Temple University": ("Tax on Sales", "TAX"), "Callysto": ("GST on Income", "GST"),
             "London Interdisciplinary School": ("20% (VAT on Income)", "20.0% S")}
    untaxed = {"Callysto": ("GST Free Income", "Exempt"), "London Interdisciplinary School": ("No VAT", "No VAT")}
    for row in xero:
        names = taxed.get(row["*ContactName"]) if Decimal(row["TaxAmount"]) else \
            untaxed.get(row["*ContactName"], ("Tax Exempt", "NON"))
        assert row["*TaxType"] == names[0], row
    for row in quickbooks:
        names = taxed.get(row["*Customer"]) if Decimal(row["ItemTaxAmount"]) else \
            untaxed.get(row["*Customer"], ("Tax Exempt", "NON"))
        assert row["*ItemTaxCode"] == names[1], row
    # the provider's own tax passed through is never taxed again; Temple's fees are
    temple = {r["*Description"]: r for r in xero if r["*ContactName"] == "Temple University"}
    assert Decimal(temple["Google Cloud: Tax"]["TaxAmount"]) == 0
    assert temple["Google Cloud: Tax"]["*TaxType"] == "Tax Exempt"
    fee = temple["Managed JupyterHub service fee (dedicated cluster)"]
    assert abs(abs(Decimal(fee["TaxAmount"])) - Decimal("90.00")) <= Decimal("0.01")  # 6% of 1,500.00
    assert fee["*AccountCode"] == "4010"


def test_a_voided_invoice_and_its_credit_note_take_each_importers_credit_form(september):
    register = csv_files.read_csv(september / "invoice-register.csv")
    temple = [(r["invoice_number"], r["status"], r["type"], r["references"]) for r in register
              if r["community_id"] == "temple"]
    assert temple == [("INV-2022-00001", "void", "invoice", ""),
                      ("INV-2022-00002", "finalized", "credit_note", "INV-2022-00001")]
    _, xero = parse(september / "xero-invoices.csv")
    invoice = [r for r in xero if r["*InvoiceNumber"] == "INV-2022-00001"]
    note = [r for r in xero if r["*InvoiceNumber"] == "INV-2022-00002"]
    assert invoice and len(note) == len(invoice)
    # Xero: a credit note in the invoice template, every amount negated, so its total is negative
    for sold, credited in zip(invoice, note):
        assert (credited["*Description"], credited["*AccountCode"], credited["*TaxType"]) == \
               (sold["*Description"], sold["*AccountCode"], sold["*TaxType"])
        assert Decimal(credited["*UnitAmount"]) == -Decimal(sold["*UnitAmount"])
        assert Decimal(credited["TaxAmount"]) == -Decimal(sold["TaxAmount"])
    total = Decimal(next(r["total"] for r in register if r["invoice_number"] == "INV-2022-00001"))
    assert total > 0
    assert sum(Decimal(r["*UnitAmount"]) + Decimal(r["TaxAmount"]) for r in note) == -total
    assert note[0]["Reference"] == "Cancels INV-2022-00001" and invoice[0]["Reference"] == "September 2022"
    # QuickBooks: the voided invoice in the invoice import; its credit note in a file of its own, positive
    _, books = parse(september / "quickbooks-invoices.csv")
    assert [r["*ItemAmount"] for r in books if r["*InvoiceNo"] == "INV-2022-00001"] == \
           [r["*UnitAmount"] for r in invoice]
    headings, credits = parse(september / "quickbooks-credit-notes.csv")
    assert headings[:3] == ["*CreditNoteNo", "*Customer", "*CreditNoteDate"] and "*DueDate" not in headings
    assert {r["*CreditNoteNo"] for r in credits} == {"INV-2022-00002"}
    assert [(r["ItemDescription"], r["*ItemAmount"], r["ItemTaxAmount"]) for r in credits] == \
           [(r["*Description"], r["*UnitAmount"], r["TaxAmount"]) for r in invoice]
    assert sum(Decimal(r["*ItemAmount"]) + Decimal(r["ItemTaxAmount"]) for r in credits) == total


# --- a small made-up month -------------------------------------------------------------------

CONFIG = """\
organisation: {name: Example Org, payment_instructions: Pay by transfer}
sources: [{id: gcp, type: gcp-export-files, path: data}]
communities:
  - id: hack
    name: '=HYPERLINK("x")'
    contact: {name: Hack team, email: team@hack.example}
    address: [1 Lab Road, Springfield]
    contract:
      fees: [{description: Service fee, amount: 100.00}]
      tax: {description: Sales tax, rate_percent: 10}
      prepaid: {amount: 50.00, start: 2022-01}
accounting:
  xero:
    account_codes: {cloud: "4000", fees: "4010", discounts: "4020", prepaid: "2400"}
"""


def made_up_month(tmp_path: Path, config_text: str = CONFIG, kept: bool = True):
    """A config and a folder with one invoice: cloud 20.00, the provider's tax 1.00, a fee 100.00,
    10% tax on 120.00 (12.00), and 50.00 paid from prepaid funds (83.00 due). ``kept``: its lines
    carry their parts of the tax base and of the tax, as priced; else they are empty, as for an
    invoice priced before they were kept (split again from the config)."""
    (tmp_path / "billing.yaml").write_text(config_text)
    config = load_config(tmp_path / "billing.yaml")
    D = Decimal
    parts = [(D("20.00"), D("2.00")), (D(0), D(0)), (D("100.00"), D("10.00")), (D(0), D(0)), (D(0), D(0))]
    lines = tuple(line._replace(taxable=taxable if kept else None, tax=tax if kept else None) for line, (taxable, tax) in zip((
        InvoiceLine("cloud", "Google Cloud: Compute Engine", "gcp", "Compute Engine", D("21.00"), D("-1.00"), D("20.00")),
        InvoiceLine("cloud", "Google Cloud: Tax", "gcp", "Tax", D("1.00"), D(0), D("1.00")),
        InvoiceLine("fees", "-fee that looks like a formula", "", "", D("100.00"), D(0), D("100.00")),
        InvoiceLine("tax", "Sales tax (10% of 120.00)", "", "", D("12.00"), D(0), D("12.00")),
        InvoiceLine("prepaid", "Paid from prepaid funds", "", "", D("-50.00"), D(0), D("-50.00"))), parts))
    invoice = Invoice("DRAFT-202209-hack", "draft", "hack", '=HYPERLINK("x")', Month(2022, 9), dt.date(2022, 10, 1),
                      dt.date(2022, 10, 31), "USD", lines)
    folder = tmp_path / "2022-09"
    folder.mkdir()
    csv_files.write_register(folder / "invoice-register.csv", [invoice])
    csv_files.write_lines(folder / "invoice-lines.csv", [invoice])
    return config, folder


def test_a_formula_in_a_name_is_neutralised_and_amounts_never_are(tmp_path):
    config, folder = made_up_month(tmp_path)
    write_accounting_imports(folder, config)
    _, xero = parse(folder / "xero-invoices.csv")
    _, books = parse(folder / "quickbooks-invoices.csv")
    assert {r["*ContactName"] for r in xero} == {r["*Customer"] for r in books} == {"'=HYPERLINK(\"x\")"}
    assert [r["*Description"] for r in xero][2] == "'-fee that looks like a formula"
    assert [r["*UnitAmount"] for r in xero] == ["20.00", "1.00", "100.00", "-50.00"]
    assert [r["*ItemAmount"] for r in books] == ["20.00", "1.00", "100.00", "-50.00"]
    assert not (folder / "quickbooks-credit-notes.csv").exists()


@pytest.mark.parametrize("kept", [True, False], ids=["as priced", "split again from the config"])
def test_prepaid_funds_are_a_line_to_their_account_and_tax_is_split_over_the_taxed_lines(tmp_path, kept):
    config, folder = made_up_month(tmp_path, kept=kept)
    write_accounting_imports(folder, config)
    first = (folder / "xero-invoices.csv").read_bytes()
    _, xero = parse(folder / "xero-invoices.csv")
    assert [(r["*AccountCode"], r["*TaxType"], r["TaxAmount"]) for r in xero] == [
        ("4000", "Tax on Sales", "2.00"), ("4000", "Tax Exempt", "0.00"), ("4010", "Tax on Sales", "10.00"),
        ("2400", "Tax Exempt", "0.00")]
    assert sum(Decimal(r["*UnitAmount"]) + Decimal(r["TaxAmount"]) for r in xero) == Decimal("83.00")  # amount due
    # the defaults: Xero's and QuickBooks' dates day first, QuickBooks' US items and tax codes
    assert {(r["*InvoiceDate"], r["*DueDate"]) for r in xero} == {("01/10/2022", "31/10/2022")}
    _, books = parse(folder / "quickbooks-invoices.csv")
    assert [(r["Item(Product/Service)"], r["*ItemTaxCode"], r["ItemTaxAmount"]) for r in books] == [
        ("Cloud costs", "TAX", "2.00"), ("Cloud costs", "NON", "0.00"), ("Service fees", "TAX", "10.00"),
        ("Prepaid funds", "NON", "0.00")]
    assert {(r["*InvoiceDate"], r["*DueDate"], r["Memo"]) for r in books} == {("01/10/2022", "31/10/2022",
                                                                                 "September 2022")}
    write_accounting_imports(folder, config)
    assert (folder / "xero-invoices.csv").read_bytes() == first  # the same folder gives the same bytes


def test_a_register_its_lines_do_not_add_up_to_is_refused_naming_the_invoice(tmp_path):
    config, folder = made_up_month(tmp_path)
    path = folder / "invoice-lines.csv"
    path.write_text(path.read_text(encoding="utf-8-sig").replace(",100.00,0.00,100.00", ",100.00,0.00,100.01"),
                    encoding="utf-8-sig")
    with pytest.raises(DataError, match=r"DRAFT-202209-hack is due 83\.00 USD but its lines in invoice-lines\.csv "
                                        r"come to 83\.01"):
        write_accounting_imports(folder, config)


@pytest.mark.parametrize("old, new, words", [
    ('    account_codes: {cloud: "4000", fees: "4010", discounts: "4020", prepaid: "2400"}',
     '    account_codes: {cloud: "4000", fees: "4010", discounts: "4020", prepaid: "2400", tax: "4030"}',
     "billing.yaml:14: accounting.xero.account_codes.tax: unknown key 'tax'"),
    ('    account_codes: {cloud: "4000", fees: "4010", discounts: "4020", prepaid: "2400"}',
     '    account_codes: {cloud: "4000", discounts: "4020", prepaid: "2400"}',
     "billing.yaml:14: accounting.xero.account_codes.fees: field required"),
    ('    account_codes: {cloud: "4000", fees: "4010", discounts: "4020", prepaid: "2400"}',
     '    account_codes: {cloud: "4000", fees: "4010", discounts: "4020"}',
     "accounting: xero.account_codes: community 'hack' has prepaid funds; give the account that holds them as "
     "prepaid"),
    ("accounting:\n", "accounting:\n  communities: {hak: {quickbooks: {tax_codes: {taxed: GST}}}}\n",
     "accounting: communities: 'hak' is not a community of the config (did you mean 'hack'?)"),
    ("  xero:\n", "  xero:\n    tax_type: {taxed: GST on Income}\n",
     "accounting.xero.tax_type: unknown key 'tax_type' (did you mean 'tax_types'?)"),
])
def test_a_config_mistake_in_the_accounting_section_is_one_line(tmp_path, old, new, words):
    assert old in CONFIG
    (tmp_path / "billing.yaml").write_text(CONFIG.replace(old, new))
    result = CliRunner().invoke(main, ["check-config", "--config", str(tmp_path / "billing.yaml")])
    assert result.exit_code == 2
    problems = [line for line in said(result).splitlines() if line.startswith("  ")]
    assert len(problems) == 1 and words in problems[0], said(result)


def test_a_line_partly_in_the_tax_base_is_imported_as_its_taxed_and_untaxed_parts(tmp_path):
    """Cloud 1000 and fees 2000, a 10% discount, 6% tax on the fees only: the discount's -300 is
    two thirds in the base (the fees' share of what it discounts)."""
    from billing.metrics import Metrics
    from billing.pricing import price_invoice
    from billing.records import Attributed, Bucket
    from builders import cost_row

    text = CONFIG.replace("      fees: [{description: Service fee, amount: 100.00}]\n"
                          "      tax: {description: Sales tax, rate_percent: 10}\n"
                          "      prepaid: {amount: 50.00, start: 2022-01}\n",
                          "      fees: [{description: Service fee, amount: 2000.00}]\n"
                          "      discounts: [{description: Partner discount, percent: 10}]\n"
                          "      tax: {description: Sales tax, rate_percent: 6, base: [fees]}\n")
    (tmp_path / "billing.yaml").write_text(text)
    config = load_config(tmp_path / "billing.yaml")
    month = Month(2022, 9)
    invoice = price_invoice(config, config.communities[0], month,
                            [Attributed(cost_row(cost="1000"), Bucket("community", "hack"), 0)], [], [],
                            Metrics(None, month))
    assert invoice.tax == Decimal("108.00")  # 6% of 2000 - 200
    folder = tmp_path / "2022-09"
    folder.mkdir()
    csv_files.write_register(folder / "invoice-register.csv", [invoice])
    csv_files.write_lines(folder / "invoice-lines.csv", [invoice])
    write_accounting_imports(folder, config)
    _, xero = parse(folder / "xero-invoices.csv")
    assert [(r["*Description"], r["*UnitAmount"], r["*TaxType"], r["TaxAmount"]) for r in xero] == [
        ("Google Cloud: Compute Engine", "1000.00", "Tax Exempt", "0.00"),
        ("Service fee", "2000.00", "Tax on Sales", "120.00"),
        ("Partner discount (10% of 3,000.00) (taxed part)", "-200.00", "Tax on Sales", "-12.00"),
        ("Partner discount (10% of 3,000.00) (untaxed part)", "-100.00", "Tax Exempt", "0.00")]
    for row in xero:  # what the importer computes from the tax type's rate is what the invoice charged
        rate = Decimal("0.06") if row["*TaxType"] == "Tax on Sales" else 0
        assert Decimal(row["TaxAmount"]) == (Decimal(row["*UnitAmount"]) * rate).quantize(Decimal("0.01"))
    assert sum(Decimal(r["*UnitAmount"]) + Decimal(r["TaxAmount"]) for r in xero) == invoice.total


def test_the_imports_of_an_invoice_never_change_with_a_later_config(september, tmp_path):
    """Temple's finalized (and voided) invoice was taxed on its fees; a config that now taxes its
    cloud costs, or has no contract for September any more, changes nothing already priced."""
    before = (september / "xero-invoices.csv").read_bytes()
    text = DEMO_CONFIG.read_text().replace("../demo/", f"{ROOT}/demo/")
    changed = text.replace("rate_percent: 6, base: [fees]}", "rate_percent: 6, base: [cloud]}")
    assert changed != text
    (tmp_path / "billing.yaml").write_text(changed)
    copy = tmp_path / "2022-09"
    copy.mkdir()
    for name in ("invoice-register.csv", "invoice-lines.csv"):
        (copy / name).write_bytes((september / name).read_bytes())
    write_accounting_imports(copy, load_config(tmp_path / "billing.yaml"))
    assert (copy / "xero-invoices.csv").read_bytes() == before


def test_without_xero_set_up_prepaid_funds_are_no_config_error_and_xero_asks_for_their_account(tmp_path):
    text = CONFIG[:CONFIG.index("accounting:")]  # no accounting section at all
    config, folder = made_up_month(tmp_path, text)
    write_accounting_imports(folder, config)
    _, xero = parse(folder / "xero-invoices.csv")
    assert [r["*AccountCode"] for r in xero] == ["200", "200", "200", ""]  # the prepaid line's is left to Xero


def test_an_invoice_below_zero_goes_to_quickbooks_as_a_credit(tmp_path):
    config, folder = made_up_month(tmp_path)
    refund = InvoiceLine("cloud", "Amazon Web Services: Refund", "aws", "Refund", Decimal("-30.00"), Decimal(0),
                         Decimal("-30.00"), Decimal(0), Decimal(0))
    invoice = Invoice("DRAFT-202209-hack", "draft", "hack", "Hack", Month(2022, 9), dt.date(2022, 10, 1),
                      dt.date(2022, 10, 31), "USD", (refund,))
    csv_files.write_register(folder / "invoice-register.csv", [invoice])
    csv_files.write_lines(folder / "invoice-lines.csv", [invoice])
    write_accounting_imports(folder, config)
    _, invoices = parse(folder / "quickbooks-invoices.csv")
    _, credits = parse(folder / "quickbooks-credit-notes.csv")
    assert invoices == [] and [(r["*CreditNoteNo"], r["*ItemAmount"]) for r in credits] == [("DRAFT-202209-hack",
                                                                                            "30.00")]
    _, xero = parse(folder / "xero-invoices.csv")
    assert [r["*UnitAmount"] for r in xero] == ["-30.00"]  # Xero files a negative invoice as a credit note

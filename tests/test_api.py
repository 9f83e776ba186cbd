"""`billing.api`: a month's folder and the months under an output folder as pandas tables, with
amounts as exact Decimals, read from small folders made up here (written as a run writes them)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from billing import api
from billing.errors import DataError, UsageError
from billing.ledger import Document
from billing.render import csv_files

USD = "USD"


def register_row(community: str, total: str, month: str = "2022-09", status: str = "draft", currency: str = USD,
                 name: str | None = None, kind: str = "invoice", number: str | None = None, **more) -> dict:
    row = {"invoice_number": number or f"DRAFT-{month.replace('-', '')}-{community}", "community_id": community,
           "community_name": name or community.title(), "invoice_month": month, "issue_date": "2022-10-01",
           "due_date": "2022-10-31", "currency": currency, "cloud_costs": total, "fees": "0.00",
           "discounts": "0.00", "tax": "0.00", "total": total, "status": status, "flags": "", "type": kind,
           "references": "", "prepaid_applied": "0.00", "amount_due": total}
    return {**row, **more}


def detail_row(bucket: str, assigned_to: str, net: str, provider: str = "gcp", month: str = "2022-09",
               charge_type: str = "usage", cost: str | None = None, project: str = "hubs") -> dict:
    return {"invoice_month": month, "bucket": bucket, "assigned_to": assigned_to, "provider": provider,
            "billing_account": "01A2B3-C4D5E6-F7A8B9" if provider == "gcp" else "111111111111",
            "project_or_account": project, "service": "Compute Engine", "charge_type": charge_type, "labels": "",
            "currency": USD, "cost": cost or net, "credits": "0.00", "net": net, "source": provider}


def share_row(pool: str, community: str, amount: str, pool_total: str, part: str = "costs", weight: str = "1",
              percent: str = "50.0000", split: str = "even") -> dict:
    return {"pool": pool, "description": f"Pool {pool}", "split": split, "part": part, "currency": USD,
            "pool_total": pool_total, "community_id": community, "weight": weight, "share_percent": percent,
            "amount": amount}


def reconciliation_row(provider: str, source_total: str, unattributed: str = "0.00", month: str = "2022-09") -> dict:
    return {"provider": provider, "billing_account": "01A2B3-C4D5E6-F7A8B9" if provider == "gcp" else "111111111111",
            "invoice_month": month, "currency": USD, "source_total": source_total, "attributed": source_total,
            "shared": "0.00", "absorbed": "0.00", "unattributed": unattributed, "provider_rounding": "0.00",
            "difference": "0.00", "invoiced": source_total, "credits_withheld": "0.00", "invoice_rounding": "0.00"}


def unattributed_row(net: str, cost: str | None = None, project: str = "lost-project", month: str = "2022-09") -> dict:
    return {"invoice_month": month, "provider": "gcp", "billing_account": "01A2B3-C4D5E6-F7A8B9",
            "project_or_account": project, "service": "Compute Engine", "charge_type": "usage", "labels": "",
            "currency": USD, "cost": cost or net, "credits": "0.00", "net": net, "source": "gcp"}


FILES = {
    "register": ("invoice-register.csv", csv_files.REGISTER_COLUMNS),
    "lines": ("invoice-lines.csv", csv_files.LINE_COLUMNS),
    "detail": ("cost-detail.csv", csv_files.DETAIL_COLUMNS),
    "shares": ("shared-allocation.csv", csv_files.SHARED_COLUMNS),
    "unattributed": ("unattributed.csv", csv_files.UNATTRIBUTED_COLUMNS),
    "reconciliation": ("reconciliation.csv", csv_files.RECONCILIATION_COLUMNS),
    "findings": ("findings.csv", csv_files.FINDING_COLUMNS),
}


def write_month(folder: Path, **tables: list[dict]) -> Path:
    """A month folder as a run writes it (``csv_files.write_csv``), with the given rows; a table
    not given is not written (an older folder may lack a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        file, columns = FILES[name]
        csv_files.write_csv(folder / file, columns, [[row[c] for c in columns] for row in rows])
    return folder


def test_a_month_comes_back_with_exact_decimals_dates_and_text_as_written(tmp_path):
    folder = write_month(
        tmp_path / "2022-09",
        register=[register_row("paleohack", "1748.01", name='=HYPERLINK("x")')],
        lines=[{"invoice_number": "DRAFT-202209-paleohack", "community_id": "paleohack", "invoice_month": "2022-09",
                "line": "1", "section": "cloud", "description": "-5% of nothing", "provider": "gcp",
                "service": "Compute Engine", "currency": USD, "cost": "1748.01", "credits": "0.00",
                "amount": "1748.01", "taxable": "0.00", "tax": "0.00"}],
        detail=[detail_row("community", "paleohack", "0.1"), detail_row("community", "paleohack", "0.2")],
    )
    assert (folder / "invoice-register.csv").read_text(encoding="utf-8-sig").count("'=HYPERLINK") == 1

    month = api.load_month("unused when a folder is given", "2022-09", folder=folder)

    assert month.register.loc[0, "community_name"] == '=HYPERLINK("x")'  # neutralised in the file, not here
    assert month.lines.loc[0, "description"] == "-5% of nothing" and month.lines.loc[0, "line"] == 1
    assert month.register.loc[0, "total"] == Decimal("1748.01")
    assert month.register["total"].dtype == object and isinstance(month.register.loc[0, "total"], Decimal)
    assert month.cost_detail["net"].sum() == Decimal("0.3")  # 0.1 + 0.2 as floats would not be
    assert pd.api.types.is_datetime64_any_dtype(month.register["issue_date"])
    assert month.register.loc[0, "due_date"] == pd.Timestamp("2022-10-31")
    for table in ("register", "lines", "cost_detail"):
        frame = getattr(month, table)
        for column in api.AMOUNT_COLUMNS & set(frame.columns):
            assert all(isinstance(value, Decimal) for value in frame[column]), (table, column)
    # Files this folder does not have: empty tables with their columns.
    assert month.absorbed.empty and list(month.absorbed.columns) == list(csv_files.ABSORBED_COLUMNS)
    assert month.findings.empty and list(month.findings.columns) == list(csv_files.FINDING_COLUMNS)
    assert month.files == ("cost-detail.csv", "invoice-lines.csv", "invoice-register.csv")


def test_the_config_may_be_a_path_and_names_the_output_folder(own_demo):
    write_month(own_demo / "out" / "2022-09", register=[register_row("ciroh", "10.00")])
    month = api.load_month(own_demo / "billing.yaml", "2022-09")
    assert list(month.register["community_id"]) == ["ciroh"]
    assert month.month == "2022-09" and month.folder == (own_demo / "out" / "2022-09").resolve()


@pytest.mark.parametrize("change, words", [
    (lambda text: text.replace("1748.01,0.00,0.00,0.00,1748.01", "1748.01,0.00,0.00,0.00,\"1,748.01\""),
     "invoice-register.csv:2: total '1,748.01' is not an amount"),
    (lambda text: text.replace("1748.01,0.00,0.00,0.00,1748.01", "1748.01,0.00,0.00,0.00,NaN"),
     "invoice-register.csv:2: total 'NaN' is not an amount"),
    (lambda text: text.replace(",amount_due", ",amount"), "invoice-register.csv: no column amount_due"),
    (lambda text: text.replace("2022-10-31", "31/10/2022"), "invoice-register.csv: a due_date is not a date"),
    (lambda text: text + "one,two\n", "invoice-register.csv:3: a row with another number of values than the 18 columns"),
    (lambda text: text.rstrip("\n") + ",extra\n", "invoice-register.csv:2: a row with another number of values"),
])
def test_a_damaged_file_is_one_line_naming_it(tmp_path, change, words):
    folder = write_month(tmp_path / "2022-09", register=[register_row("paleohack", "1748.01")])
    path = folder / "invoice-register.csv"
    path.write_text(change(path.read_text(encoding="utf-8-sig")), encoding="utf-8-sig")
    with pytest.raises(DataError) as raised:
        api.load_month("", "2022-09", folder=folder)
    assert words in raised.value.message and raised.value.message.count("\n") == 0


def test_a_folder_that_is_not_a_month_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"has no invoice-register.csv\); run `billing run --month 2022-09`"):
        api.load_month("", "2022-09", folder=tmp_path)
    with pytest.raises(UsageError, match="not of the form YYYY-MM"):
        api.load_month("", "2022-9", folder=tmp_path)


def test_cloud_costs_are_direct_costs_plus_shares_by_the_provider_of_their_pool(tmp_path):
    folder = write_month(
        tmp_path / "2022-09",
        register=[register_row("a", "1.00"), register_row("b", "1.00")],
        detail=[detail_row("community", "a", "10.005"), detail_row("community", "a", "2.50", provider="aws"),
                detail_row("community", "b", "4.00"),
                # pool "mixed": 30 from Google Cloud, 10 from AWS; its tax: Google Cloud only
                detail_row("shared", "mixed", "30.00"), detail_row("shared", "mixed", "10.00", provider="aws"),
                detail_row("shared", "mixed", "0.90", charge_type="tax"),
                detail_row("absorbed", "staging", "99.00"), detail_row("unattributed", "", "7.00")],
        shares=[share_row("mixed", "a", "8.00", "40.00", percent="20.0000"),
                share_row("mixed", "b", "32.00", "40.00", percent="80.0000"),
                share_row("mixed", "a", "0.45", "0.90", part="tax"),
                share_row("mixed", "b", "0.45", "0.90", part="tax")],
    )
    costs = api.cloud_costs(api.load_month("", "2022-09", folder=folder))
    found = {(r.community_id, r.provider): r.cost for r in costs.itertuples(index=False)}
    assert found == {("a", "gcp"): Decimal("10.005") + Decimal("6.00") + Decimal("0.45"),
                     ("a", "aws"): Decimal("2.50") + Decimal("2.00"),
                     ("b", "gcp"): Decimal("4.00") + Decimal("24.00") + Decimal("0.45"),
                     ("b", "aws"): Decimal("8.00")}
    assert set(costs["month"]) == {"2022-09"} and set(costs["currency"]) == {USD}


def two_months(output: Path) -> None:
    write_month(output / "2022-08",
                register=[register_row("a", "100.00", month="2022-08", status="finalized", number="INV-1"),
                          register_row("b", "80.00", month="2022-08", status="finalized", number="INV-2",
                                       currency="CAD")],
                detail=[detail_row("community", "a", "60.00", month="2022-08")],
                reconciliation=[reconciliation_row("gcp", "60.00", month="2022-08")])
    write_month(output / "2022-09",
                register=[register_row("a", "120.50", status="finalized", number="INV-3"),
                          register_row("b", "90.00", currency="CAD"),
                          register_row("c", "10.00", prepaid_applied="4.00", amount_due="6.00"),
                          # a void invoice and its credit note cancel out: not counted
                          register_row("c", "50.00", status="void", number="INV-4"),
                          register_row("c", "-50.00", status="finalized", number="INV-5", kind="credit_note")],
                detail=[detail_row("community", "a", "70.00"), detail_row("community", "c", "5.00", provider="aws")],
                reconciliation=[reconciliation_row("gcp", "40.00", unattributed="1.00"),
                                reconciliation_row("aws", "10.00")])
    (output / "2022-10").mkdir()  # no register: not a month folder (yet)
    (output / "notes").mkdir()


def test_history_is_one_table_per_grain_across_the_months(own_demo, own_ledger):
    output = own_demo / "out"
    two_months(output)

    history = api.history(own_demo / "billing.yaml")

    assert history.months[["month", "status", "invoices"]].values.tolist() == [
        ["2022-08", "finalized", 2], ["2022-09", "partly finalized", 3]]
    assert history.months["ledger_status"].tolist() == [None, None]  # no ledger: none is created
    assert not own_ledger.exists()
    totals = {(r.month, r.currency): (r.invoices, r.total, r.amount_due) for r in history.totals.itertuples()}
    assert totals == {("2022-08", "CAD"): (1, Decimal("80.00"), Decimal("80.00")),
                      ("2022-08", USD): (1, Decimal("100.00"), Decimal("100.00")),
                      ("2022-09", "CAD"): (1, Decimal("90.00"), Decimal("90.00")),
                      ("2022-09", USD): (2, Decimal("130.50"), Decimal("126.50"))}
    assert history.invoices[history.invoices["month"] == "2022-09"]["invoice_number"].tolist() == [
        "INV-3", "DRAFT-202209-b", "DRAFT-202209-c"]
    sources = history.sources.set_index("month")
    assert sources.loc["2022-09", "source_total"] == Decimal("50.00")
    assert sources.loc["2022-09", "unattributed_percent"] == Decimal(2)
    assert history.cloud_costs[["month", "community_id", "provider", "cost"]].values.tolist() == [
        ["2022-08", "a", "gcp", Decimal("60.00")], ["2022-09", "a", "gcp", Decimal("70.00")],
        ["2022-09", "c", "aws", Decimal("5.00")]]

    only = api.history(own_demo / "billing.yaml", months=["2022-09"], detail=False)
    assert only.months["month"].tolist() == ["2022-09"] and only.cloud_costs.empty
    with pytest.raises(UsageError, match="no month folder for 2022-07, 2022-10 under"):
        api.history(own_demo / "billing.yaml", months=["2022-07", "2022-10"])


def test_the_ledger_says_what_it_holds_beside_the_register(tmp_path):
    two_months(tmp_path)
    documents = [Document("2022-09", "a", "invoice", "finalized", "INV-3", USD, Decimal("120.50"), False),
                 Document("2022-09", "b", "invoice", "finalized", "INV-6", "CAD", Decimal("90.00"), False),
                 Document("2022-09", "c", "invoice", "finalized", "INV-7", USD, Decimal("10.00"), False),
                 Document("2022-09", "c", "invoice", "void", "INV-4", USD, Decimal("50.00"), False),
                 Document("2022-09", "c", "credit_note", "finalized", "INV-5", USD, Decimal("-50.00"), False),
                 Document("2022-08", "a", "invoice", "draft", None, USD, Decimal("100.00"), True)]
    history = api.read_history(api.month_folders(tmp_path), documents)
    assert history.months[["month", "status", "ledger_status"]].values.tolist() == [
        ["2022-08", "finalized", "provisional"], ["2022-09", "partly finalized", "finalized"]]


@pytest.mark.parametrize("statuses, status", [
    ([], "no invoices"), (["draft", "draft"], "draft"), (["draft", "provisional"], "provisional"),
    (["finalized", "provisional"], "partly finalized"), (["finalized", "finalized"], "finalized"),
])
def test_a_months_status_follows_its_invoices(statuses, status):
    assert api.month_status(statuses) == status


def test_a_voided_invoice_not_drafted_again_leaves_its_month_partly_finalized(tmp_path):
    """Temple's invoice was voided and its credit note issued; no new draft yet: the month is not
    final, in the register as in the ledger."""
    folder = write_month(tmp_path / "2022-09", register=[
        register_row("paleohack", "10.00", status="finalized", number="INV-2022-00001"),
        register_row("temple", "20.00", status="void", number="INV-2022-00002"),
        register_row("temple", "-20.00", status="finalized", number="INV-2022-00003", kind="credit_note",
                     references="INV-2022-00002")])
    month = api.load_month("", "2022-09", folder=folder)
    assert api.register_status(month.register) == "partly finalized"
    documents = [Document("2022-09", "paleohack", "invoice", "finalized", "INV-2022-00001", USD, Decimal("10"), False),
                 Document("2022-09", "temple", "invoice", "void", "INV-2022-00002", USD, Decimal("20"), False),
                 Document("2022-09", "temple", "credit_note", "finalized", "INV-2022-00003", USD, Decimal("-20"),
                          False)]
    assert api.ledger_statuses(documents) == {"2022-09": "partly finalized"}
    redrafted = documents + [Document("2022-09", "temple", "invoice", "finalized", "INV-2022-00004", USD,
                                      Decimal("18"), False)]
    assert api.ledger_statuses(redrafted) == {"2022-09": "finalized"}

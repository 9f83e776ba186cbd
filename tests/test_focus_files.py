"""The focus-files source: FOCUS 1.0 to 1.2 files of any provider, as CSV, gzip'd CSV or Parquet.

The FinOps Foundation's FOCUS 1.0 sample (``../shared/data/focus-sample/focus_sample.csv``:
FinOps Foundation, FOCUS Sample Data, CC BY 4.0) is billed for its 2024-09 period; the Azure
FOCUS 1.2 rows of ``focus_data`` cover the edge cases.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.collectors import focus_files
from billing.config import FocusFiles, load_config
from billing.errors import ConfigError, DataError, SourceError
from billing.records import Month
from billing.run import compute_month

import focus_data
from focus_data import ACCOUNT, EURO_ACCOUNT, HUBS, LAB, month_rows, row
from conftest import said

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "focus-sample" / "focus_sample.csv"
SEPTEMBER = Month(2024, 9)
needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the FOCUS sample is not at {SAMPLE}")


def source(path: Path, version: str | None = None) -> FocusFiles:
    return FocusFiles(type="focus-files", id="focus", path=path, version=version)


def collect(path: Path, keys: tuple[str, ...] = (), version: str | None = None, month: Month = SEPTEMBER):
    return focus_files.collect(source(path, version), month, keys)


def independent_totals(path: Path, month: str) -> dict[tuple[str, str], Decimal]:
    """BilledCost per provider name and billing account, for rows of ``month``, with Python's csv."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with open(path, newline="", encoding="utf-8") as file:
        for record in csv.DictReader(file):
            if record["BillingPeriodStart"].startswith(month):
                totals[(record["ProviderName"], record["BillingAccountId"])] += Decimal(record["BilledCost"])
    return dict(totals)


@needs_sample
def test_the_focus_sample_totals_equal_an_independent_sum_per_provider_and_account():
    collection = collect(SAMPLE)
    expected = independent_totals(SAMPLE, "2024-09")
    names = {"AWS": "aws", "Microsoft": "azure", "Oracle": "oci"}
    assert {(t.provider, t.billing_account): t.total for t in collection.totals} == {
        (names[p], a): total for (p, a), total in expected.items()}
    assert all(t.currency == "USD" and t.invoice_month == "2024-09" for t in collection.totals)
    by_account: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in collection.rows:
        by_account[(r.provider, r.billing_account)] += r.net
    assert dict(by_account) == {(t.provider, t.billing_account): t.total for t in collection.totals}
    assert {r.charge_type for r in collection.rows} == {"usage", "credit", "adjustment"}
    assert "read 1 FOCUS 1.0 CSV file(s) (version told from the columns)" in collection.notes


SAMPLE_CONFIG = """\
organisation:
  name: Open Hub Hosting Cooperative
  payment_instructions: Bank transfer; quote the invoice number.
ledger: {{url: "sqlite:///{ledger}"}}
sources:
  - id: focus-sample
    type: focus-files
    path: {sample}
communities:
  - id: sunbird
    name: SunBird research hub
  - id: azure-lab
    name: Azure lab
  - id: viennaai
    name: ViennaAI
attribution:
  - community: viennaai
    match: {{tag: {{business_unit: ViennaAI}}}}
  - community: azure-lab
    match: {{provider: azure}}
  - community: sunbird
    match: {{provider: aws, sub_account: ["43883916739", "51738928782"]}}
  - absorbed: Oracle test tenancy
    match: {{provider: oci}}
"""


@needs_sample
def test_the_focus_sample_bills_its_period_and_every_row_lands_in_a_bucket(tmp_path):
    path = tmp_path / "billing.yaml"
    path.write_text(SAMPLE_CONFIG.format(ledger=tmp_path / "ledger.sqlite", sample=SAMPLE))
    result = compute_month(load_config(path), SEPTEMBER)
    expected = independent_totals(SAMPLE, "2024-09")
    assert sum(r.source_total for r in result.reconciliation) == sum(expected.values())
    for line in result.reconciliation:  # buckets add up to the source total, per provider and account
        assert line.source_total == (line.attributed + line.shared + line.absorbed + line.unattributed
                                     + line.provider_rounding)
    buckets = {(a.bucket.kind, a.bucket.name) for a in result.attributed}
    assert {("community", "viennaai"), ("community", "azure-lab"), ("community", "sunbird"),
            ("absorbed", "Oracle test tenancy"), ("unattributed", "")} <= buckets
    azure = [a for a in result.attributed if a.row.provider == "azure"]
    assert azure and all(a.bucket.name in ("azure-lab", "viennaai") for a in azure)
    invoice = next(i for i in result.invoices if i.community_id == "azure-lab")
    assert any(line.description.startswith("Microsoft Azure: ") for line in invoice.lines)


def test_azure_focus_1_2_rows_become_cost_rows_with_credits_tax_and_corrections(tmp_path):
    path = focus_data.write_csv(tmp_path / "azure.csv", month_rows())
    collection = collect(path, ("hub", "x_cost-center"))
    assert collection.notes == ("read 1 FOCUS 1.2 CSV file(s) (version told from the columns)",)
    rows = {(r.billing_account, r.project_or_account, r.service, r.charge_type, r.labels): r for r in collection.rows}
    hub = (("hub", "oceanhackweek"),)
    assert rows[(ACCOUNT, HUBS, "Virtual Machines", "usage", hub)].cost == Decimal("120.125")
    assert rows[(ACCOUNT, HUBS, "Storage", "usage", hub + (("x_cost-center", "42"),))].cost == Decimal("30.0000000001")
    assert rows[(ACCOUNT, HUBS, "Storage", "usage", ())].cost == Decimal("7.5")
    credit = rows[(ACCOUNT, HUBS, "Virtual Machines", "credit", hub)]
    assert (credit.cost, credit.credits) == (Decimal(0), (("Credit", Decimal("-20.00")),))
    assert rows[(ACCOUNT, HUBS, "Tax", "tax", ())].cost == Decimal("9.64")
    assert rows[(ACCOUNT, HUBS, "Virtual Machines", "adjustment", hub)].cost == Decimal("-3.25")
    assert rows[(ACCOUNT, HUBS, "Reserved VM Instances", "other", ())].cost == Decimal("100")
    assert rows[(ACCOUNT, LAB, "Virtual Machines", "usage", (("hub", "lab"),))].cost == Decimal("11.11")
    assert rows[(ACCOUNT, LAB, "Virtual Machines", "usage", ())].cost == Decimal("4.40")
    assert {r.provider for r in collection.rows} == {"azure"}
    totals = {(t.billing_account, t.currency): t.total for t in collection.totals}
    assert totals == {(ACCOUNT, "USD"): Decimal("120.125") + Decimal("30.0000000001") + Decimal("7.5")
                      + Decimal("11.11") + Decimal("4.40") - 20 + Decimal("9.64") - Decimal("3.25") + 100,
                      (EURO_ACCOUNT, "EUR"): Decimal("61.10")}
    assert collection.label_keys == {"hub", "x_cost-center"}


def test_csv_gzipped_csv_and_parquet_give_the_same_rows(tmp_path):
    rows = month_rows()
    results = []
    for name in ("a.csv", "b.csv.gz", "c.parquet"):
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        writer = focus_data.write_parquet if name.endswith("parquet") else focus_data.write_csv
        collection = collect(writer(folder / name, rows), ("hub",))
        results.append((collection.rows, collection.totals))
    assert results[0] == results[1] == results[2]


def test_an_export_split_over_files_is_read_whole_and_other_months_are_left_out(tmp_path):
    rows = month_rows()
    focus_data.write_csv(tmp_path / "part-1.csv", rows[:5] + [row("2024-08", "999")])
    focus_data.write_csv(tmp_path / "part-2.csv.gz", rows[5:] + [row("2024-10", "888")])
    whole = collect(focus_data.write_csv(tmp_path.parent / f"{tmp_path.name}-whole.csv", rows))
    split = collect(tmp_path)
    assert (split.rows, split.totals) == (whole.rows, whole.totals)


def test_rows_found_in_two_files_are_refused_naming_both(tmp_path):
    rows = month_rows()
    focus_data.write_csv(tmp_path / "export-a.csv", rows)
    focus_data.write_csv(tmp_path / "export-b.csv", rows[3:6] + [row("2024-09", "1.23")])
    with pytest.raises(DataError) as error:
        collect(tmp_path)
    assert str(error.value) == (f"source 'focus': 3 row(s) of {tmp_path / 'export-b.csv'} are also in "
                                f"{tmp_path / 'export-a.csv'} (the same export read twice, or two exports that "
                                "overlap); remove one copy")


def test_identical_rows_within_one_file_are_two_charges(tmp_path):
    path = focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.10"), row("2024-09", "1.10")])
    assert collect(path).rows[0].cost == Decimal("2.20")


def test_a_missing_required_column_is_named_with_its_file(tmp_path):
    columns = tuple(c for c in focus_data.COLUMNS if c != "BillingCurrency")
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows(), columns)
    with pytest.raises(DataError) as error:
        collect(path)
    assert str(error.value) == (f"source 'focus': {path}: FOCUS 1.2 (told from its columns) file without the column "
                                "BillingCurrency")


def test_a_1_2_file_needs_a_provider_column(tmp_path):
    columns = tuple(c for c in focus_data.COLUMNS if c != "ProviderName")
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows(), columns)
    with pytest.raises(DataError, match="FOCUS 1.2 .* without the column ProviderName$"):
        collect(path)


def test_service_provider_name_is_the_provider_where_a_file_has_it(tmp_path):
    """FOCUS's later versions name the provider in ServiceProviderName (and deprecate ProviderName)."""
    columns = tuple(c if c != "ProviderName" else "ServiceProviderName" for c in focus_data.COLUMNS)
    rows = [{**r, "ServiceProviderName": "Oracle"} for r in month_rows()]
    path = focus_data.write_csv(tmp_path / "a.csv", rows, columns)
    assert {r.provider for r in collect(path).rows} == {"oci"}
    assert {r.provider for r in collect(path, version="1.2").rows} == {"oci"}
    with pytest.raises(DataError, match=r"FOCUS 1\.0 file without the column ProviderName$"):
        collect(path, version="1.0")


def test_a_version_the_tool_does_not_know_is_a_config_error_at_its_line(tmp_path):
    path = tmp_path / "billing.yaml"
    path.write_text(SAMPLE_CONFIG.format(ledger=tmp_path / "l.sqlite", sample=tmp_path).replace(
        "    type: focus-files\n", "    type: focus-files\n    version: '1.3'\n"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(f"{path}:8: sources[0].version: ")
    assert "'1.0', '1.1' or '1.2'" in error.value.problems[0]


def test_an_account_billing_in_two_currencies_is_refused(tmp_path):
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows() + [row("2024-09", "1.00", currency="EUR")])
    with pytest.raises(DataError) as error:
        collect(path)
    assert str(error.value) == (f"source 'focus': billing account {ACCOUNT} (azure) bills 2024-09 in EUR and USD "
                                f"(BillingCurrency, in {path}); an account bills in one currency: give each its own "
                                "source or check the export")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("change, problem", [
    ({"Tags": "{not json"}, "Tags is not a JSON object"),
    ({"Tags": '["a", "b"]'}, "Tags is not a JSON object"),
    ({"BilledCost": "12,50"}, "BilledCost is not a number"),
    ({"BilledCost": ""}, "BilledCost is not a number"),
    ({"BilledCost": "1e15"}, "BilledCost is beyond +-10,000,000,000,000 or has more than 18 decimal places"),
    ({"BilledCost": "1e-20"}, "BilledCost is beyond +-10,000,000,000,000 or has more than 18 decimal places"),
    ({"BilledCost": "0.0000000000000000001"}, "BilledCost is beyond +-10,000,000,000,000 or has more than 18 "
                                              "decimal places"),
    ({"ChargeCategory": "Refund"}, "ChargeCategory is not one of Usage, Purchase, Tax, Credit, Adjustment"),
    ({"ChargeClass": "Rebill"}, "ChargeClass is neither empty nor Correction"),
    ({"BillingCurrency": "usd"}, "BillingCurrency is not a three-letter currency code"),
    ({"BillingPeriodStart": "September"}, "BillingPeriodStart is not a date and time"),
])
def test_a_row_that_cannot_be_billed_is_named_by_file_and_row(tmp_path, kind, change, problem):
    rows = month_rows()
    rows[6] = {**rows[6], **change}
    cost = change.get("BilledCost", "0")
    if kind == "parquet" and (not cost.replace(".", "").isdigit() or len(cost.partition(".")[2]) > 18):
        pytest.skip("the test's Parquet DECIMAL(38, 18) column cannot hold it")
    if kind == "parquet" and "BillingPeriodStart" in change:
        pytest.skip("a Parquet timestamp column cannot hold it")
    writer = focus_data.write_parquet if kind == "parquet" else focus_data.write_csv
    path = writer(tmp_path / f"a.{kind}", rows)
    with pytest.raises(DataError) as error:
        collect(path, ("hub",))
    where = "row 7 after the header" if kind == "csv" else "row 7"
    assert str(error.value) == f"source 'focus': {path}, {where}: {problem}; 1 row(s) of 2024-09 cannot be billed"


def test_another_months_unbillable_row_is_that_months_problem(tmp_path):
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows() + [{**row("2024-10", "1"), "BilledCost": "oops"}])
    assert collect(path).totals
    with pytest.raises(DataError, match="row 12 after the header: BilledCost is not a number"):
        collect(path, month=Month(2024, 10))


def test_a_gzip_cut_short_and_a_row_cut_short_stop_the_reader(tmp_path):
    whole = focus_data.write_csv(tmp_path / "whole.csv.gz", month_rows() * 50)
    data = whole.read_bytes()
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "a.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read the FOCUS files under .*: IO Error: Unexpected end of GZIP stream: .*a.csv.gz$"):
        collect(cut)
    text = gzip.decompress(data).decode()
    (cut / "a.csv.gz").unlink()
    (cut / "b.csv").write_text(text[: len(text) - 300])  # the last row cut short
    with pytest.raises(DataError) as error:
        collect(cut)
    assert str(error.value) == (f"source 'focus': {cut / 'b.csv'}, line 551: 29 fields where the header has 58 (a row "
                                "cut short, or a file that is not comma-separated FOCUS)")


def test_no_files_and_mixed_formats_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no FOCUS files at"):
        collect(tmp_path)
    focus_data.write_csv(tmp_path / "a.csv", month_rows())
    focus_data.write_parquet(tmp_path / "b.parquet", month_rows())
    with pytest.raises(SourceError, match="mixes CSV and Parquet files"):
        collect(tmp_path)


def test_a_month_without_rows_is_a_data_error(tmp_path):
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows("2024-08"))
    with pytest.raises(DataError, match="no rows with a BillingPeriodStart in 2024-09"):
        collect(path)


def test_tag_keys_are_kept_as_written_and_missing_ones_listed_for_a_hint(tmp_path):
    path = focus_data.write_csv(tmp_path / "a.csv", month_rows())
    collection = collect(path, ("hubb",))
    assert collection.label_keys == {"hub", "environment", "x_cost-center"}


CLI_CONFIG = """\
organisation:
  name: Open Hub Hosting Cooperative
  payment_instructions: Bank transfer; quote the invoice number.
ledger: {url: "sqlite:///ledger.sqlite"}
output: out
sources:
  - id: azure
    type: focus-files
    path: azure
communities:
  - id: oceanhackweek
    name: OceanHackWeek
  - id: lab
    name: Lab
    currency: EUR
exchange_rates:
  - {month: 2024-09, from: USD, to: EUR, rate: 0.9}
attribution:
  - community: oceanhackweek
    match: {provider: azure, sub_account: "/subscriptions/0b5f2c1e-0000-4000-8000-00000000a001"}
  - community: lab
    match: {tag: {hub: lab}}
"""


def test_a_billing_run_of_azure_focus_files_reconciles_and_reports_what_it_could_not_attribute(tmp_path):
    (tmp_path / "azure").mkdir()
    focus_data.write_csv(tmp_path / "azure" / "focus.csv", month_rows())
    (tmp_path / "billing.yaml").write_text(CLI_CONFIG)
    result = CliRunner().invoke(main, ["run", "--month", "2024-09", "--config", str(tmp_path / "billing.yaml"),
                                       "--today", "2024-11-01", "--allow", "unattributed"])
    assert result.exit_code == 0, said(result)
    folder = tmp_path / "out" / "2024-09"
    with open(folder / "reconciliation.csv", encoding="utf-8-sig", newline="") as file:
        lines = {(r["provider"], r["billing_account"]): r for r in csv.DictReader(file)}
    assert lines[("azure", ACCOUNT)]["source_total"] == "259.53"  # 259.5250000001
    assert lines[("azure", ACCOUNT)]["unattributed"] == "4.40"  # the lab's untagged usage
    assert lines[("azure", EURO_ACCOUNT)]["source_total"] == "61.10"
    with open(folder / "unattributed.csv", encoding="utf-8-sig", newline="") as file:
        unattributed = list(csv.DictReader(file))
    assert sorted((r["provider"], r["project_or_account"], r["currency"], r["net"]) for r in unattributed) == [
        ("azure", LAB, "EUR", "5.55"), ("azure", LAB, "USD", "4.40")]  # untagged: the lab's usage and the EUR tax


def test_rules_on_a_provider_a_source_cannot_hold_are_reported(tmp_path):
    (tmp_path / "azure").mkdir()
    shutil.copy(focus_data.write_csv(tmp_path / "x.csv", month_rows()), tmp_path / "azure" / "focus.csv")
    text = CLI_CONFIG + "  - community: lab\n    match: {tag: {hubb: lab}}\n"
    (tmp_path / "billing.yaml").write_text(text)
    result = CliRunner().invoke(main, ["run", "--month", "2024-09", "--config", str(tmp_path / "billing.yaml"),
                                       "--today", "2024-11-01"])
    assert result.exit_code == 1
    assert said(result).startswith("Error: attribution[2] matches key 'hubb', which no row of any source carries "
                                   "(did you mean 'hub'?)")


@pytest.mark.parametrize("written, read", [("100e-20", "1E-18"), ("1.2E-7", "1.2E-7"), ("1.50000000000000000000000", "1.5"),
                                           ("-0.000000000000000001", "-1E-18"), ("12E3", "12000")])
def test_amounts_are_read_exactly_in_every_plain_form(tmp_path, written, read):
    path = focus_data.write_csv(tmp_path / "a.csv", [{**row("2024-09", "0"), "BilledCost": written}])
    assert collect(path).totals[0].total == Decimal(read)


def test_the_demos_azure_export_has_the_columns_of_focus_1_2():
    """demo/generate.py (standard library only) keeps its own copy of the column list."""
    demo = Path(__file__).resolve().parents[1] / "demo" / "data" / "azure"
    for path in sorted(demo.glob("*.csv")):
        assert focus_files.csv_header(path) == list(focus_data.COLUMNS), path


def test_a_run_on_a_focus_file_with_broken_tags_says_so_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "azure").mkdir()
    rows = month_rows()
    rows[2] = {**rows[2], "Tags": '{"hub": "lab"'}
    focus_data.write_csv(tmp_path / "azure" / "focus.csv", rows)
    (tmp_path / "billing.yaml").write_text(CLI_CONFIG)
    result = CliRunner().invoke(main, ["run", "--month", "2024-09", "--config", str(tmp_path / "billing.yaml"),
                                       "--today", "2024-11-01"])
    assert result.exit_code == 1
    assert said(result) == (f"Error: source 'azure': {tmp_path / 'azure' / 'focus.csv'}, row 3 after the header: Tags "
                            "is not a JSON object; 1 row(s) of 2024-09 cannot be billed\n")
    assert not (tmp_path / "out" / "2024-09").exists()


def test_two_spellings_of_one_provider_are_one_provider_with_one_total(tmp_path):
    rows = [{**row("2024-09", "1.25"), "ProviderName": "Microsoft"},
            {**row("2024-09", "2.50"), "ProviderName": "Microsoft Azure"}]
    collection = collect(focus_data.write_csv(tmp_path / "a.csv", rows))
    assert [(r.provider, r.cost) for r in collection.rows] == [("azure", Decimal("3.75"))]
    assert [(t.provider, t.total) for t in collection.totals] == [("azure", Decimal("3.75"))]

"""`billing run` end to end on the bundled demo data, as finance and an engineer would check it."""

import gzip
import json
import re
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

import billing.attribution
from billing.cli import main
from billing.config import load_config
from billing.render.csv_files import read_csv

from conftest import ROOT, said

DEMO_CONFIG = ROOT / "config" / "billing.yaml"
MONTHS = ["2022-08", "2022-09", "2022-10"]
CSV_FILES = {"invoice-register.csv", "invoice-lines.csv", "cost-detail.csv", "unattributed.csv", "adjustments.csv",
             "reconciliation.csv", "absorbed.csv", "shared-allocation.csv", "xero-invoices.csv",
             "quickbooks-invoices.csv", "findings.csv", "index.html"}


def run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("output")
    for month in MONTHS:
        result = run("--month", month, "--config", str(DEMO_CONFIG), "--output", str(output))
        assert result.exit_code == 0, result.output
    return output


@pytest.mark.parametrize("month", MONTHS)
def test_each_demo_month_has_every_file_and_balances(demo_output, month):
    folder = demo_output / month
    names = {p.name for p in folder.iterdir()}
    community_ids = [c.id for c in load_config(DEMO_CONFIG).communities]
    assert names == CSV_FILES | {f"billing-{month}.xlsx", f"focus-{month}.csv", f"focus-{month}.parquet"} | {
        f"invoice-{month}-{cid}.pdf" for cid in community_ids}

    reconciliation = read_csv(folder / "reconciliation.csv")
    assert {(r["provider"], r["billing_account"]) for r in reconciliation} == {
        ("gcp", "01A2B3-C4D5E6-F7A8B9"), ("aws", "111111111111"),
        ("azure", "/providers/Microsoft.Billing/billingAccounts/7654321")}
    for row in reconciliation:
        assert row["invoice_month"] == month and row["difference"] == "0.00"
        buckets = ("attributed", "absorbed") if row["provider"] == "azure" else ("attributed", "shared", "absorbed")
        assert all(Decimal(row[column]) > 0 for column in buckets)  # the demo's Azure has no shared pool
        assert Decimal(row["source_total"]) == sum(Decimal(row[c]) for c in ("attributed", "shared", "absorbed",
                                                                             "unattributed", "provider_rounding"))


@pytest.mark.parametrize("month", MONTHS)
def test_detail_files_add_up_to_the_source_totals_exactly(demo_output, month):
    folder = demo_output / month
    detail = read_csv(folder / "cost-detail.csv")
    for row in read_csv(folder / "reconciliation.csv"):
        mine = [d for d in detail if d["billing_account"] == row["billing_account"]]
        total = sum(Decimal(d["net"]) for d in mine)
        assert total.quantize(Decimal("0.01")) == Decimal(row["source_total"])
        for bucket in ("community", "shared", "absorbed", "unattributed"):
            column = "attributed" if bucket == "community" else bucket
            part = sum((Decimal(d["net"]) for d in mine if d["bucket"] == bucket), Decimal(0))
            assert abs(part - Decimal(row[column])) <= Decimal("0.01"), column  # printed to add up
    for name, bucket in (("unattributed.csv", "unattributed"), ("absorbed.csv", "absorbed")):
        listed = sum(Decimal(u["net"]) for u in read_csv(folder / name))
        assert listed == sum(Decimal(d["net"]) for d in detail if d["bucket"] == bucket)


@pytest.mark.parametrize("month", MONTHS)
def test_each_pool_is_split_to_the_cent_and_billed(demo_output, month):
    folder = demo_output / month
    shares = read_csv(folder / "shared-allocation.csv")
    detail = read_csv(folder / "cost-detail.csv")
    assert {s["pool"] for s in shares} == {"gke-overhead", "gke-support", "eks-shared"}
    for pool, part in {(s["pool"], s["part"]) for s in shares}:  # its tax, and the rest, each split to the cent
        mine = [s for s in shares if (s["pool"], s["part"]) == (pool, part)]
        pool_total = sum(Decimal(d["net"]) for d in detail if d["bucket"] == "shared" and d["assigned_to"] == pool
                         and (d["charge_type"] == "tax") == (part == "tax"))
        assert sum(Decimal(s["amount"]) for s in mine) == pool_total.quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert sum(Decimal(s["share_percent"]) for s in mine) == pytest.approx(Decimal(100), abs=Decimal("0.001"))
    lines = read_csv(folder / "invoice-lines.csv")
    rates = {"lis": load_config(DEMO_CONFIG).exchange_rate(month, "USD", "GBP")}  # the one pool member in GBP
    for share in shares:
        rate = rates.get(share["community_id"], Decimal(1))
        billed = (Decimal(share["amount"]) * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
        shown = "Shared tax: " if share["part"] == "tax" else "Shared: "
        assert any(l["community_id"] == share["community_id"] and l["description"].startswith(shown)
                   and Decimal(l["amount"]) == billed for l in lines), share


@pytest.mark.parametrize("month", MONTHS)
def test_register_totals_are_the_sums_of_the_invoice_lines(demo_output, month):
    folder = demo_output / month
    lines = read_csv(folder / "invoice-lines.csv")
    for invoice in read_csv(folder / "invoice-register.csv"):
        mine = [l for l in lines if l["invoice_number"] == invoice["invoice_number"]]
        cloud = sum(Decimal(l["amount"]) for l in mine if l["section"] == "cloud")
        fees = sum(Decimal(l["amount"]) for l in mine if l["section"] == "fees")
        discounts = sum(Decimal(l["amount"]) for l in mine if l["section"] == "discounts")
        tax = sum(Decimal(l["amount"]) for l in mine if l["section"] == "tax")
        assert Decimal(invoice["cloud_costs"]) == cloud and Decimal(invoice["fees"]) == fees
        assert (Decimal(invoice["discounts"]), Decimal(invoice["tax"])) == (discounts, tax)
        assert Decimal(invoice["total"]) == cloud + fees + discounts + tax
        assert all(Decimal(l["cost"]) + Decimal(l["credits"]) == Decimal(l["amount"]) for l in mine)


def test_each_pdf_shows_the_total_of_its_register_row(demo_output):
    folder = demo_output / "2022-09"
    register = read_csv(folder / "invoice-register.csv")
    assert len(register) == 8
    for invoice in register:
        text = "\n".join(page.extract_text() for page in
                         PdfReader(folder / f"invoice-2022-09-{invoice['community_id']}.pdf").pages)
        text = " ".join(text.split())
        symbol = {"USD": "$", "CAD": "$", "GBP": "£"}[invoice["currency"]]  # callysto (CAD) writes as en_CA does
        assert f"Total due {symbol}{Decimal(invoice['total']):,.2f}" in text, (invoice["community_id"], text)
        assert invoice["invoice_number"] in text and invoice["community_name"] in text
        assert f"{Decimal(invoice['cloud_costs']):,.2f}" in text and "DRAFT" in text.upper()
        period = ("1 September 2022 to 30 September 2022" if invoice["community_id"] == "lis"  # en_GB
                  else "September 1, 2022 to September 30, 2022")
        assert f"Billing period {period}" in text, (invoice["community_id"], text)


def test_the_demo_shows_every_contract_term_on_some_invoice(demo_output):
    folder = demo_output / "2022-09"
    text = {p.stem.split("-", 3)[3]: " ".join(" ".join(page.extract_text() for page in PdfReader(p).pages).split())
            for p in folder.glob("*.pdf")}
    shown = {
        "pass-through": ("paleohack", "Google Cloud: Compute Engine"),
        "shared pool": ("paleohack", "Shared: GKE cluster nodes"),
        "metric pool": ("lis", "by memory requested"),  # the display name of the metric
        "markup": ("oceanhackweek", "Cloud management markup (3% of"),
        "proration": ("oceanhackweek", "(prorated: 14 of 30 days)"),
        "credit policy": ("temple", "do not reduce this invoice: Promotional credit"),
        "percentage of fees": ("temple", "Dedicated cluster surcharge (50% of 1,500.00)"),
        "tiered fee with cap": ("neurohackademy", "Per-user fee: 406 monthly active users"),
        "cloud cap": ("neurohackademy", "Cloud costs above the monthly limit of 2,500.00 (not charged)"),
        "minimum": ("coessing", "Monthly minimum true-up (minimum 600.00)"),
        "recurring discount": ("coessing", "Education partner discount (20% of 599.23, cloud costs and fees "
                                                "without the provider's tax) -119.85"),
        "one-month discount": ("ciroh", "Goodwill credit after the August overrun (10% of 5,069.31, cloud costs and "
                                        "fees without the provider's tax) -506.93"),
        "tax": ("temple", "Sales tax (6% of 2,250.00)"),  # on the fees only
        # not on Google's own tax of 35.69, which the line says
        "tax on cloud and fees": ("callysto", "GST (5% of 4,138.27, cloud costs and fees without the provider's tax)"),
        "currency": ("callysto", "converted at 1 USD = 1.3543 CAD, the rate for September 2022"),
        "another currency": ("lis", "1 USD = 0.8967 GBP"),
    }
    for term, (community, words) in shown.items():
        assert words in text[community], (term, community)
    register = {r["community_id"]: r for r in read_csv(folder / "invoice-register.csv")}
    assert register["ciroh"]["flags"] == "cloud costs 3,226.89 exceed the monthly limit of 3,000.00"
    assert register["callysto"]["currency"] == "CAD" and register["lis"]["currency"] == "GBP"


def test_the_summary_names_every_community_and_the_folder(tmp_path):
    result = run("--month", "2022-09", "--config", str(DEMO_CONFIG), "--output", str(tmp_path))
    assert result.exit_code == 0
    assert "Invoices for September 2022:" in result.output
    assert re.search(r"CIROH\s+3,226\.89\s+2,000\.00\s+-506\.93\s+0\.00\s+4,719\.96\s+USD", result.output)
    assert re.search(r"Callysto\s+2,173\.96\s+2,000\.00\s+0\.00\s+206\.91\s+4,380\.87\s+CAD", result.output)
    assert "run: warning: CIROH: cloud costs 3,226.89 exceed the monthly limit of 3,000.00" in result.stderr
    assert "London Interdisciplinary School" in result.output
    assert "Reconciliation: 3 billing account(s) balance to the cent." in result.output
    assert f"Wrote {len(list((tmp_path / '2022-09').iterdir()))} files to {tmp_path / '2022-09'}" in result.output


def test_a_rerun_gives_the_same_bytes_and_replaces_the_folder_whole(tmp_path, demo_output):
    stale = tmp_path / "2022-09" / "invoice-2022-09-former-community.pdf"
    stale.parent.mkdir(parents=True)
    stale.write_text("left over from an earlier config")
    shutil.copytree(demo_output / "2022-08", tmp_path / "2022-08")  # the review page compares with the month before
    assert run("--month", "2022-09", "--config", str(DEMO_CONFIG), "--output", str(tmp_path)).exit_code == 0
    assert not stale.exists()
    for path in (demo_output / "2022-09").iterdir():
        assert (tmp_path / "2022-09" / path.name).read_bytes() == path.read_bytes(), path.name
    assert visible(tmp_path) == ["2022-08", "2022-09", "index.html"] and not leftovers(tmp_path)


def visible(folder: Path) -> list[str]:
    """What a person sees in an output folder (``.locks`` and ``.versions`` are bookkeeping)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def leftovers(folder: Path) -> list[str]:
    """Version folders no month links to: what a failed or killed run would leave behind."""
    versions = folder / ".versions"
    shown = {(folder / name).resolve() for name in visible(folder)}
    return sorted(p.name for p in versions.iterdir() if p.resolve() not in shown) if versions.exists() else []


# --- bad input: one line, a documented exit code, nothing written -------------------------------

@pytest.mark.parametrize("month", ["2022-9", "2022-13", "September", "2022-09-01"])
def test_a_malformed_month_is_a_usage_error(tmp_path, month):
    result = run("--month", month, "--config", str(DEMO_CONFIG), "--output", str(tmp_path))
    assert result.exit_code == 2
    assert said(result) == (f"Error: --month {month!r} is neither YYYY-MM (for example 2022-09) nor 'last' (the month "
                            "before today's, UTC)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_config_is_a_usage_error(tmp_path):
    result = run("--month", "2022-09", "--config", str(tmp_path / "billing.yaml"))
    assert result.exit_code == 2
    assert said(result) == f"Error: config file {tmp_path / 'billing.yaml'} not found (give one with --config PATH)\n"


def test_missing_data_files_are_a_usage_error_naming_the_source(own_demo):
    shutil.rmtree(own_demo / "data" / "gcp")
    result = run("--month", "2022-09", "--config", str(own_demo / "billing.yaml"))
    assert result.exit_code == 2
    assert said(result).startswith(f"Error: source 'gcp-export': no export files at {own_demo / 'data' / 'gcp'}")
    assert visible(own_demo / "out") == [] and not leftovers(own_demo / "out")


def test_a_month_with_no_data_is_a_data_error(own_demo):
    result = run("--month", "2022-12", "--config", str(own_demo / "billing.yaml"))
    assert result.exit_code == 1
    assert said(result).startswith("Error: source 'gcp-export': no rows with invoice month 2022-12")
    assert visible(own_demo / "out") == [] and not leftovers(own_demo / "out")


def test_a_failed_run_leaves_the_previous_outputs_untouched(own_demo):
    config = str(own_demo / "billing.yaml")
    assert run("--month", "2022-09", "--config", config).exit_code == 0
    before = {p.name: p.read_bytes() for p in (own_demo / "out" / "2022-09").iterdir()}
    (own_demo / "data" / "aws" / "2022-09" / "usage" / "page-2.json").write_text('{"ResultsByTime": [')
    result = run("--month", "2022-09", "--config", config)
    assert result.exit_code == 1
    assert "page-2.json: not a readable JSON response" in said(result)
    assert {p.name: p.read_bytes() for p in (own_demo / "out" / "2022-09").iterdir()} == before
    assert visible(own_demo / "out") == ["2022-09", "index.html"] and not leftovers(own_demo / "out")


def test_a_file_made_from_the_csvs_that_fails_is_one_line_and_publishes_nothing(own_demo, monkeypatch):
    config = str(own_demo / "billing.yaml")
    assert run("--month", "2022-09", "--config", config).exit_code == 0
    before = {p.name: p.read_bytes() for p in (own_demo / "out" / "2022-09").iterdir()}

    def broken(*args):  # an unforeseen failure of one of the writers the folder's files feed
        raise RuntimeError("no room for the chart")

    monkeypatch.setattr("billing.render.derived.write_workbook", broken)
    result = run("--month", "2022-09", "--config", config)
    assert result.exit_code == 2
    assert said(result) == ("Error: 2022-09: the workbook could not be written (RuntimeError: no room for the chart); "
                            "nothing was published (run with -v for the details)\n")
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in (own_demo / "out" / "2022-09").iterdir()} == before


def test_a_rule_on_a_tag_no_source_carries_is_refused(own_demo):
    path = own_demo / "billing.yaml"
    path.write_text(path.read_text().replace('aws_tag: {"2i2c:hub-name": lis}', 'aws_tag: {"hub-name": lis}'))
    result = run("--month", "2022-09", "--config", str(path))
    assert result.exit_code == 1
    assert said(result) == ("Error: attribution[8] matches Amazon Web Services key 'hub-name', which no row of any "
                             "aws source carries (did you mean '2i2c:hub-name'?); keys carried (aws-payer: "
                             "2i2c:hub-name)\n")


def test_a_typo_in_a_gcp_label_key_is_refused_with_the_right_spelling(own_demo):
    path = own_demo / "billing.yaml"
    path.write_text(path.read_text().replace("gcp_label: {k8s-namespace: coessing}", "gcp_label: {k8s-namespce: coessing}"))
    result = run("--month", "2022-09", "--config", str(path))
    assert result.exit_code == 1
    assert said(result).startswith("Error: attribution[3] matches Google Cloud key 'k8s-namespce', which no row of "
                                    "any gcp source carries (did you mean 'k8s-namespace'?)")


def test_a_label_key_only_other_months_carry_is_a_warning(own_demo):
    path = own_demo / "billing.yaml"
    text = path.read_text()
    rule = "  - community: coessing\n    match: {gcp_project: hubs-shared-gke, gcp_label: {k8s-namespace: coessing}}\n"
    assert rule in text
    path.write_text(text.replace(rule, rule + "  - community: coessing\n    match: {gcp_project: hubs-shared-gke, "
                                 "gcp_label: {k8s-label/team: retired}}\n"))
    data = own_demo / "data" / "gcp" / "billing-export-2022-09.json.gz"
    rows = gzip.decompress(data.read_bytes()).decode().splitlines()
    late = json.loads(rows[0])
    late.update(invoice={"month": "202208"}, labels=[{"key": "k8s-label/team", "value": "retired"}])
    data.write_bytes(gzip.compress(("\n".join(rows + [json.dumps(late)]) + "\n").encode(), mtime=0))
    refused = run("--month", "2022-09", "--config", str(path))  # a community's rule matching nothing: a finding
    assert refused.exit_code == 1 and "rule-unmatched:coessing: attribution[4]" in said(refused)
    result = run("--month", "2022-09", "--config", str(path), "--allow", "rule-unmatched:coessing")
    assert result.exit_code == 0, said(result)
    assert ("run: warning: attribution[4] matches Google Cloud key 'k8s-label/team', which no 2022-09 cost "
            "carries (it is in the data of other months)") in result.stderr


def test_a_reconciliation_that_does_not_balance_fails_and_writes_nothing(own_demo, monkeypatch):
    """Fault injection: attribution loses one row, as a bug would; the run must catch it."""
    real = billing.attribution.attribute

    def lossy(rows, rules):
        return real(rows, rules)[:-1]

    monkeypatch.setattr(billing.attribution, "attribute", lossy)
    result = run("--month", "2022-09", "--config", str(own_demo / "billing.yaml"))
    assert result.exit_code == 1
    assert re.match(r"Error: reconciliation failed: (aws billing account 111111111111|azure billing account "
                    r"/providers/Microsoft.Billing/billingAccounts/7654321) 2022-09: source total [\d.]+ USD, buckets add up to [\d.]+, difference [\d.]+\n", said(result))
    assert visible(own_demo / "out") == [] and not leftovers(own_demo / "out")


def _copy_gcp_file(root):
    (root / "data" / "gcp" / "again").mkdir()
    shutil.copy(root / "data" / "gcp" / "billing-export-2022-09.json.gz", root / "data" / "gcp" / "again")


def _second_source_on_the_same_export(root):
    path = root / "billing.yaml"
    path.write_text(path.read_text().replace("sources:\n", "sources:\n  - {id: gcp-copy, type: gcp-export-files, "
                                                           "path: data/gcp/billing-export-2022-09.json.gz}\n", 1))


def _metrics(text):
    return lambda root: (root / "data" / "metrics" / "2022-09.csv").write_bytes(text)


def _aws_metric_as_text(root):
    path = root / "data" / "aws" / "2022-09" / "usage" / "page-1.json"
    page = json.loads(path.read_text())
    page["ResultsByTime"][0]["Groups"][0]["Metrics"]["UnblendedCost"] = "12.00"
    path.write_text(json.dumps(page))


def _gcp_currency(root):
    path = root / "data" / "gcp" / "billing-export-2022-09.json.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b'"USD"', b'"XYZ"'), mtime=0))


def _drop_rate(root):
    path = root / "billing.yaml"
    path.write_text(path.read_text().replace("  - {month: 2022-09, from: USD, to: CAD, rate: 1.3543}\n", ""))


def _metrics_folder(root):
    (root / "data" / "metrics" / "2022-09.csv").unlink()
    (root / "data" / "metrics" / "2022-09.csv").mkdir()


@pytest.mark.parametrize("breakage, code, words", [
    (_copy_gcp_file, 1, "billing-export-2022-09.json.gz are also in"),
    (_second_source_on_the_same_export, 2, "both read gcp billing account 01A2B3-C4D5E6-F7A8B9 for 2022-09"),
    (_metrics(b"community,metric,value\nlis\n"), 1, "2022-09.csv:2: expected 3 values"),
    (_metrics(b"community,metric,value\nlis,memory-request-byte-hours,\xff\n"), 1, "cannot be read"),
    (_metrics_folder, 1, "cannot be read"),
    (_aws_metric_as_text, 1, "usage/page-1.json: not the shape of a GetCostAndUsage response"),
    (_gcp_currency, 1, "bills in 'XYZ', which is not an ISO 4217 currency code"),
    (_drop_rate, 2, "add the 2022-09 rate from USD to CAD to exchange_rates"),
])
def test_bad_input_is_one_line_with_its_exit_code_never_a_traceback(own_demo, breakage, code, words):
    breakage(own_demo)
    result = run("--month", "2022-09", "--config", str(own_demo / "billing.yaml"))
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code
    assert said(result).startswith("Error: ") and said(result).count("\n") == 1, said(result)
    assert words in said(result)
    assert visible(own_demo / "out") == [] and not leftovers(own_demo / "out")


def test_a_metrics_file_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(own_demo):
    path = own_demo / "data" / "metrics" / "2022-09.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert run("--month", "2022-09", "--config", str(own_demo / "billing.yaml")).exit_code == 0


def test_a_month_on_provisional_data_says_so_on_every_invoice_and_cannot_be_finalized(own_demo):
    """AWS still marks the month Estimated and the config accepts it: the invoices are drafts
    marked PROVISIONAL (PDF, register status and flags), and finalize refuses the month."""
    path = own_demo / "billing.yaml"
    text = path.read_text()
    assert 'payer_account: "111111111111"\n' in text
    path.write_text(text.replace('payer_account: "111111111111"\n',
                                 'payer_account: "111111111111"\n    accept_estimated: true\n', 1))
    for page in (own_demo / "data" / "aws" / "2022-09").rglob("page-*.json"):
        page.write_text(page.read_text().replace('"Estimated":false', '"Estimated":true'))
    result = run("--month", "2022-09", "--config", str(path))
    assert result.exit_code == 0, said(result)
    folder = own_demo / "out" / "2022-09"
    register = read_csv(folder / "invoice-register.csv")
    assert {row["status"] for row in register} == {"provisional"}
    assert all("provisional: the cloud data for 2022-09 is not final yet" in row["flags"] for row in register)
    text = " ".join(page.extract_text() for page in PdfReader(folder / "invoice-2022-09-paleohack.pdf").pages)
    assert "PROVISIONAL" in text.upper()
    refused = CliRunner().invoke(main, ["finalize", "--month", "2022-09", "--config", str(path)])
    assert refused.exit_code == 1, said(refused)
    assert said(refused).startswith("Error: billing finalize: 2022-09 is provisional")

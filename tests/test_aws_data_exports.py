"""The AWS Data Exports (CUR 2.0, Parquet) collector, on CUR files made here with DuckDB.

Amounts are written as DOUBLE, as AWS writes them; every expected sum is worked out by hand.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import boto3
import duckdb
import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.collectors import COLLECTORS, aws_data_exports
from billing.config import AwsDataExports
from billing.errors import DataError, SourceError
from billing.records import Month, SourceTotal
from billing.render.csv_files import read_csv

import focus_data

from conftest import said
from delivery_servers import enforce_aws_auth, powerless_credentials

MARCH = Month(2024, 3)
PAYER, HUBS, STAFF = "111111111111", "222222222222", "333333333333"
EC2, S3 = "Amazon Elastic Compute Cloud", "Amazon Simple Storage Service"
EXPORT = "cur"
DATA = f"{EXPORT}/data/BILLING_PERIOD=2024-03"
META = f"{EXPORT}/metadata/BILLING_PERIOD=2024-03"

COLUMNS = {
    "bill_billing_period_start_date": "TIMESTAMP",
    "bill_payer_account_id": "VARCHAR",
    "bill_invoice_id": "VARCHAR",
    "line_item_usage_account_id": "VARCHAR",
    "line_item_line_item_type": "VARCHAR",
    "line_item_product_code": "VARCHAR",
    "product_servicecode": "VARCHAR",
    "product": "MAP(VARCHAR, VARCHAR)",
    "line_item_currency_code": "VARCHAR",
    "line_item_unblended_cost": "DOUBLE",
    "line_item_net_unblended_cost": "DOUBLE",
    "resource_tags": "MAP(VARCHAR, VARCHAR)",
}


def line(type="Usage", cost="1", account=HUBS, code="AmazonEC2", name=EC2, tags=None, currency="USD",
         payer=PAYER, period="2024-03-01", invoice="EUINGB24-000001", net=None) -> dict:
    """One CUR 2.0 line item; ``cost`` as text, written as a DOUBLE."""
    return {"bill_billing_period_start_date": period, "bill_payer_account_id": payer, "bill_invoice_id": invoice,
            "line_item_usage_account_id": account, "line_item_line_item_type": type, "line_item_product_code": code,
            "product_servicecode": code, "product": {} if name is None else {"product_name": name, "region": "us-east-1"},
            "line_item_currency_code": currency, "line_item_unblended_cost": cost,
            "line_item_net_unblended_cost": cost if net is None else net, "resource_tags": tags or {}}


def write_parquet(path: Path, rows: list[dict], drop: tuple[str, ...] = (), types: dict[str, str] | None = None) -> Path:
    """``rows`` as a Parquet file of CUR 2.0's columns (less ``drop``; ``types`` changes a column's type)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        written = {**COLUMNS, **(types or {})}
        db.execute("CREATE TABLE cur (" + ", ".join(f"{k} {v}" for k, v in written.items()) + ")")
        values = []
        for name, kind in COLUMNS.items():
            values.append("MAP(?::VARCHAR[], ?::VARCHAR[])" if kind.startswith("MAP") else f"CAST(? AS {written[name]})")
        for row in rows:
            params = []
            for name, kind in COLUMNS.items():
                params += [list(row[name]), list(row[name].values())] if kind.startswith("MAP") else [row[name]]
            db.execute(f"INSERT INTO cur VALUES ({', '.join(values)})", params)
        kept = ", ".join(k for k in COLUMNS if k not in drop)
        db.execute(f"COPY (SELECT {kept} FROM cur) TO '{path}' (FORMAT parquet, COMPRESSION snappy)")
    return path


def manifest(path: Path, files: list[str], bucket="s3://billing-exports/cur2", **extra) -> Path:
    """A manifest as Data Exports writes it; ``files`` relative to the export folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"executionId": "0b1c2d3e", "billingPeriod": {"start": "2024-03-01T00:00:00.000Z",
                                                          "end": "2024-04-01T00:00:00.000Z"},
            "columns": [{"name": k, "type": "string"} for k in COLUMNS],
            "dataFiles": [f"{bucket}/{EXPORT}/{f}" for f in files], **extra}
    path.write_text(json.dumps(body))
    return path


def export(root: Path, *chunks: list[dict], with_manifest: bool = True) -> Path:
    """An export in overwrite mode: the chunks of the month and their manifest."""
    names = [f"data/BILLING_PERIOD=2024-03/cur-{n:05d}.snappy.parquet" for n in range(1, len(chunks) + 1)]
    for name, rows in zip(names, chunks):
        write_parquet(root / EXPORT / name, rows)
    if with_manifest:
        manifest(root / META / "cur-Manifest.json", names)
    return root


def source(path, **options) -> AwsDataExports:
    return AwsDataExports(**{"type": "aws-data-exports", "id": "cur", "path": path, "payer_account": PAYER, **options})


def collect(src, keys=()):
    return aws_data_exports.collect(src, MARCH, tuple(keys))


def refused(src, keys=(), error=DataError) -> str:
    with pytest.raises(error) as info:
        collect(src, keys)
    assert "\n" not in info.value.message
    return info.value.message


def rows_of(collection):
    return [(r.project_or_account, r.service, r.charge_type, r.labels, r.cost, r.credits) for r in collection.rows]


# --- what is read ---------------------------------------------------------------------------------

MONTH_LINES = [
    line(cost="10.004", tags={"user_team": "geo"}),
    line(cost="5.003", tags={"user_team": "geo", "user_owner": "ana"}),   # owner is not asked: no split
    line("DiscountedUsage", cost="0.5", tags={"user_team": "geo"}),       # usage too: the same row
    line("SavingsPlanCoveredUsage", cost="2", tags={"user_team": "geo"}),
    line("SavingsPlanNegation", cost="-2", tags={"user_team": "geo"}),   # a credit of its own type
    line("Credit", cost="-1.25", tags={"user_team": "geo"}),
    line("EdpDiscount", cost="-0.75", tags={"user_team": "geo"}),
    line("EdpDiscount", cost="-0.05", tags={"user_team": "geo"}),
    line("Refund", cost="-3"),
    line("Tax", cost="1.2"),
    line("Fee", cost="29", account=PAYER, code="OCBPremiumSupport", name="AWS Support (Business)"),
    line("RIFee", cost="7.3", account=STAFF),
    line(cost="0.1", account=STAFF, code="AmazonS3", name=S3),
    line(cost="0.2", account=STAFF, code="AmazonS3", name=S3),            # 0.1 + 0.2 is 0.3, not 0.30000000000000004
    line(cost="0.000000123", account=STAFF, code="AWSLambda", name=None),  # no product name: the service code
]
TINY = [line(cost="0.000000123", account=STAFF, code="AWSLambda", name=None)] * 9


def test_usage_tax_credits_discounts_and_fees_become_rows_with_exact_sums(tmp_path):
    export(tmp_path, MONTH_LINES, TINY + [line(cost="99", period="2024-02-01")])
    got = collect(source(tmp_path), ["team"])
    geo = (("team", "geo"),)
    assert rows_of(got) == [
        (PAYER, "AWS Support (Business)", "other", (), Decimal("29"), ()),
        (HUBS, EC2, "credit", geo, Decimal(0), (("Credit", Decimal("-1.25")), ("EdpDiscount", Decimal("-0.80")),
                                               ("SavingsPlanNegation", Decimal("-2")))),
        (HUBS, EC2, "refund", (), Decimal(0), (("Refund", Decimal("-3")),)),
        (HUBS, EC2, "tax", (), Decimal("1.2"), ()),
        (HUBS, EC2, "usage", geo, Decimal("17.507"), ()),
        (STAFF, "AWSLambda", "usage", (), Decimal("0.00000123"), ()),
        (STAFF, EC2, "other", (), Decimal("7.3"), ()),
        (STAFF, S3, "usage", (), Decimal("0.3"), ()),
    ]
    # 29 - 4.05 - 3 + 1.2 + 17.507 + 0.00000123 + 7.3 + 0.3
    assert got.totals == (SourceTotal("aws", PAYER, "2024-03", "USD", Decimal("48.25700123")),)
    assert sum(r.net for r in got.rows) == got.totals[0].total
    assert all(isinstance(r.cost, Decimal) for r in got.rows)
    assert {r.billing_account for r in got.rows} == {PAYER} and {r.source for r in got.rows} == {"cur"}
    assert got.provisional is False and got.label_keys == {"team"}
    assert got.warnings == ("1 row(s) of other billing periods (2024-02) in the files of 2024-03 were left out "
                            "(bill_billing_period_start_date not in 2024-03)",)
    assert got.notes == (f"read 2 Parquet file(s) of 2024-03 listed by {tmp_path / META / 'cur-Manifest.json'}",)


def test_the_collector_is_registered_for_its_type():
    assert COLLECTORS["aws-data-exports"] == "aws_data_exports"


@pytest.mark.parametrize("types", [
    {"bill_billing_period_start_date": "TIMESTAMP WITH TIME ZONE", "line_item_unblended_cost": "DECIMAL(38, 12)"},
    {"bill_billing_period_start_date": "DATE", "line_item_unblended_cost": "VARCHAR"},
    {"bill_billing_period_start_date": "VARCHAR", "line_item_unblended_cost": "FLOAT"},
], ids=["timestamptz-decimal", "date-text", "text-float"])
def test_other_column_types_read_the_same_month_and_amounts(tmp_path, types):
    rows = [line(cost="0.1"), line(cost="0.2"), line("Tax", cost="0.05"), line(cost="5", period="2024-04-01")]
    write_parquet(tmp_path / DATA / "cur-00001.snappy.parquet", rows, types=types)
    got = collect(source(tmp_path))
    assert got.totals[0].total == Decimal("0.35")  # a FLOAT's shortest text too: 0.1, not 0.10000000149011612
    assert [(r.charge_type, r.cost) for r in got.rows] == [("tax", Decimal("0.05")), ("usage", Decimal("0.3"))]


def test_the_configured_cost_column_is_the_one_summed(tmp_path):
    export(tmp_path, [line(cost="10", net="8.5"), line("Tax", cost="1", net="1")])
    got = collect(source(tmp_path, cost_column="line_item_net_unblended_cost"))
    assert got.totals[0].total == Decimal("9.5")


# --- tags -------------------------------------------------------------------------------------------

def test_a_tag_key_matches_as_written_or_with_the_user_prefix_and_empty_is_untagged(tmp_path):
    export(tmp_path, [
        line(cost="1", tags={"user_team": "geo"}),
        line(cost="2", tags={"team": "bio"}),                     # as written wins over user_team
        line(cost="4", tags={"team": "bio", "user_team": "geo"}),
        line(cost="64", tags={"team": "", "user_team": "geo"}),   # an empty value falls through to user_team
        line(cost="8", tags={"user_team": ""}),                   # empty: untagged
        line(cost="16", tags={"user_user_team": "odd"}),          # a rule on user_team reads user_user_team too
        line(cost="32"),
    ])
    got = collect(source(tmp_path), ["team", "user_team"])
    assert [(r.labels, r.cost) for r in got.rows] == [
        ((), Decimal("40")),
        ((("team", "bio"),), Decimal("2")),
        ((("team", "bio"), ("user_team", "geo")), Decimal("4")),
        ((("team", "geo"), ("user_team", "geo")), Decimal("65")),
        ((("user_team", "odd"),), Decimal("16")),
    ]
    assert got.label_keys == {"team", "user_team"}


def test_a_tag_no_row_carries_lists_the_keys_the_rows_do_carry_without_their_prefix(tmp_path):
    export(tmp_path, [line(tags={"user_team": "geo", "aws_createdBy": "x"}), line(cost="2")])
    got = collect(source(tmp_path), ["tema"])
    assert [(r.labels, r.cost) for r in got.rows] == [((), Decimal("3"))]
    assert got.label_keys == {"team", "aws_createdBy"}


def test_a_whole_run_refuses_a_rule_on_a_tag_no_row_carries_and_suggests_the_key(tmp_path):
    config = run_config(tmp_path, tag="tema")
    result = CliRunner().invoke(main, ["run", "--month", "2024-03", "--config", str(config)])
    assert result.exit_code == 1
    assert "key 'tema', which no row of any aws source carries (did you mean 'team'?)" in said(result)


# --- a period AWS has not closed ----------------------------------------------------------------------

def test_a_period_not_closed_is_refused(tmp_path):
    export(tmp_path, [line(cost="3"), line(cost="4", invoice="")], [line(cost="5", invoice=None)])
    message = refused(source(tmp_path))
    assert message == (f"source 'cur': {tmp_path / DATA / 'cur-00001.snappy.parquet'}: 2 row(s) of 2024-03 have no "
                       "bill_invoice_id: AWS has not closed the billing period yet; run again once it has (a few days "
                       "into the next month), or set accept_provisional: true for provisional invoices")


def test_a_period_not_closed_is_provisional_when_accepted(tmp_path):
    export(tmp_path, [line(cost="3"), line(cost="4", invoice="")])
    got = collect(source(tmp_path, accept_provisional=True))
    assert got.provisional is True
    assert got.warnings == ("2024-03 is not closed by AWS (1 row(s) without bill_invoice_id): invoices are provisional",)
    assert got.totals[0].total == Decimal("7")


# --- bad input: one line naming the file and column ------------------------------------------------------

@pytest.mark.parametrize("column", ["bill_invoice_id", "line_item_currency_code", "line_item_unblended_cost"])
def test_a_missing_column_is_named_with_its_file(tmp_path, column):
    path = write_parquet(tmp_path / DATA / "cur-00001.snappy.parquet", [line()], drop=(column,))
    message = refused(source(tmp_path))
    assert message.startswith(f"source 'cur': {path}: no column {column}, which ")
    assert message.endswith("; include it in the export's query")


def test_resource_tags_are_needed_only_when_rules_look_at_tags(tmp_path):
    path = write_parquet(tmp_path / DATA / "cur-00001.snappy.parquet", [line(cost="2")], drop=("resource_tags",))
    assert collect(source(tmp_path)).totals[0].total == Decimal("2")
    assert refused(source(tmp_path), ["team"]) == (
        f"source 'cur': {path}: no column resource_tags, which the tag rules (team) need; include it in the "
        "export's query")


def test_two_manifests_for_one_period_are_both_named(tmp_path):
    export(tmp_path, [line()])
    first = tmp_path / META / "cur-Manifest.json"
    second = manifest(tmp_path / META / "cur-copy-Manifest.json", ["data/BILLING_PERIOD=2024-03/cur-00001.snappy.parquet"])
    assert refused(source(tmp_path)) == (
        f"source 'cur': two manifests for 2024-03, {first} and {second}; which one lists the period's files cannot "
        "be told: keep one")


def create_new(root: Path, executions: dict[str, list[dict]], latest: str | None) -> None:
    """An export in 'create new' mode: one folder per execution, each with its manifest, and the
    latest execution's manifest in the period's own metadata folder."""
    for execution, rows in executions.items():
        name = f"data/BILLING_PERIOD=2024-03/{execution}/cur-00001.snappy.parquet"
        write_parquet(root / EXPORT / name, rows)
        manifest(root / META / execution / "cur-Manifest.json", [name])
        if execution == latest:
            manifest(root / META / "cur-Manifest.json", [name])


def test_re_exports_in_create_new_mode_are_read_from_the_latest_manifest_only(tmp_path):
    create_new(tmp_path, {"20240402T0100Z-aaa": [line(cost="10")], "20240403T0100Z-bbb": [line(cost="12")]},
               latest="20240403T0100Z-bbb")
    assert collect(source(tmp_path)).totals[0].total == Decimal("12")


def test_re_exports_without_the_latest_manifest_are_refused_naming_two(tmp_path):
    create_new(tmp_path, {"20240402T0100Z-aaa": [line(cost="10")], "20240403T0100Z-bbb": [line(cost="12")]},
               latest=None)
    message = refused(source(tmp_path))
    assert message == (
        f"source 'cur': 2 manifests for 2024-03 in execution folders, e.g. "
        f"{tmp_path / META / '20240402T0100Z-aaa' / 'cur-Manifest.json'} and "
        f"{tmp_path / META / '20240403T0100Z-bbb' / 'cur-Manifest.json'} (re-exports with 'create new'), and none in "
        f"{tmp_path / META}/ to say which is current; copy that one too, or keep one execution")


def test_without_a_manifest_the_parquet_files_of_one_folder_are_read(tmp_path):
    export(tmp_path, [line(cost="1")], [line(cost="2")], with_manifest=False)
    got = collect(source(tmp_path))
    assert got.totals[0].total == Decimal("3") and got.notes == (
        f"read 2 Parquet file(s) of 2024-03 under {tmp_path}",)


def test_without_a_manifest_files_of_several_executions_are_refused(tmp_path):
    for execution in ("a", "b"):
        write_parquet(tmp_path / DATA / execution / "cur-00001.snappy.parquet", [line()])
    assert refused(source(tmp_path)).startswith(
        f"source 'cur': the Parquet files of 2024-03 are in 2 folders ({tmp_path / DATA / 'a'}/ and "
        f"{tmp_path / DATA / 'b'}/, re-exports with 'create new')")


def test_a_file_the_manifest_lists_that_is_not_there_is_named(tmp_path):
    export(tmp_path, [line()])
    manifest(tmp_path / META / "cur-Manifest.json", ["data/BILLING_PERIOD=2024-03/cur-00001.snappy.parquet",
                                                     "data/BILLING_PERIOD=2024-03/cur-00002.snappy.parquet"])
    assert refused(source(tmp_path)) == (
        f"source 'cur': {tmp_path / META / 'cur-Manifest.json'} lists {tmp_path / DATA / 'cur-00002.snappy.parquet'}, "
        "which is not there (1 of 2 listed files missing); copy the export again")


def test_chunks_the_manifest_does_not_list_are_not_read(tmp_path):
    export(tmp_path, [line(cost="4")])
    write_parquet(tmp_path / DATA / "cur-00002.snappy.parquet", [line(cost="100")])  # left from an earlier refresh
    assert collect(source(tmp_path)).totals[0].total == Decimal("4")


def test_rows_in_two_currencies_are_refused_naming_both(tmp_path):
    export(tmp_path, [line(cost="1")], [line(cost="1", currency="EUR")])
    assert refused(source(tmp_path)) == (
        f"source 'cur': column line_item_currency_code holds USD ({tmp_path / DATA / 'cur-00001.snappy.parquet'}) and "
        f"EUR ({tmp_path / DATA / 'cur-00002.snappy.parquet'}) for payer {PAYER} in 2024-03; one payer must bill in "
        "one currency")


def test_another_payers_rows_are_refused(tmp_path):
    export(tmp_path, [line(), line(payer="999999999999"), line(payer="999999999999")])
    assert refused(source(tmp_path)) == (
        f"source 'cur': {tmp_path / DATA / 'cur-00001.snappy.parquet'}: column bill_payer_account_id is "
        f"'999999999999' on 2 row(s) of 2024-03, not the configured payer_account {PAYER}; point the source at that "
        "payer's export, or correct payer_account")


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    export(tmp_path, [line()], [line()])
    broken = tmp_path / DATA / "cur-00002.snappy.parquet"
    broken.write_text("bill_payer_account_id,cost\n111111111111,1\n")
    message = refused(source(tmp_path))
    assert message.startswith(f"source 'cur': {broken}: not a readable Parquet file (")


def test_a_cost_that_is_not_a_number_is_named_with_its_row(tmp_path):
    export(tmp_path, [line(cost="1"), line(cost="nan"), line(cost="inf")])
    assert refused(source(tmp_path)) == (
        f"source 'cur': {tmp_path / DATA / 'cur-00001.snappy.parquet'}: row 2: column line_item_unblended_cost is "
        "not a number (or too large to be one); 2 such row(s)")


def test_no_data_for_the_month_is_refused(tmp_path):
    export(tmp_path, [line(period="2024-02-01")])
    assert refused(source(tmp_path)) == (
        "source 'cur': no data for 2024-03: no row of 1 file(s) has bill_billing_period_start_date in 2024-03 "
        "(they hold 2024-02)")
    other = tmp_path / "other"
    write_parquet(other / EXPORT / "data/BILLING_PERIOD=2024-02/cur-00001.snappy.parquet", [line()])
    assert refused(source(other)) == (
        f"source 'cur': no data for 2024-03: no Parquet files under {other / DATA}/ and no manifest under "
        f"{other / EXPORT}/metadata/BILLING_PERIOD=2024-03/")


def test_a_csv_export_is_refused_as_not_parquet(tmp_path):
    (tmp_path / DATA).mkdir(parents=True)
    (tmp_path / DATA / "cur-00001.csv.gz").write_bytes(b"")
    assert refused(source(tmp_path), error=SourceError) == (
        f"source 'cur': {tmp_path / DATA / 'cur-00001.csv.gz'} is not Parquet; this source reads CUR 2.0 in Parquet "
        "(set the export's file format to Parquet)")


def test_a_missing_folder_is_a_source_error(tmp_path):
    assert refused(source(tmp_path / "nowhere"), error=SourceError) == (
        f"source 'cur': folder {tmp_path / 'nowhere'} not found")


# --- S3, through moto in server mode on 127.0.0.1 ------------------------------------------------------

BUCKET = "billing-exports"


@pytest.fixture
def s3(moto, monkeypatch):
    moto.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")


def upload(client, root: Path, prefix: str) -> None:
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}{path.relative_to(root).as_posix()}")


def s3_source(moto, url=f"s3://{BUCKET}/cur2/", **options) -> AwsDataExports:
    return AwsDataExports(type="aws-data-exports", id="cur", s3=url, endpoint_url=moto.url, payer_account=PAYER,
                          **options)


def test_an_export_in_s3_is_read_like_the_same_files_on_disk(tmp_path, moto, s3):
    export(tmp_path / "local", MONTH_LINES, TINY)
    upload(s3, tmp_path / "local", "cur2/")
    got = collect(s3_source(moto), ["team"])
    assert got.rows == collect(source(tmp_path / "local"), ["team"]).rows
    assert got.totals == (SourceTotal("aws", PAYER, "2024-03", "USD", Decimal("48.25700123")),)
    assert got.notes == (f"read 2 Parquet file(s) of 2024-03 listed by s3://{BUCKET}/cur2/{META}/cur-Manifest.json",)


def test_a_file_in_s3_is_named_by_its_url(tmp_path, moto, s3):
    export(tmp_path / "local", [line(), line(payer="999999999999")])
    upload(s3, tmp_path / "local", "exports/")
    message = refused(s3_source(moto, url=f"s3://{BUCKET}/exports"))
    assert message.startswith(f"source 'cur': s3://{BUCKET}/exports/{DATA}/cur-00001.snappy.parquet: column "
                              "bill_payer_account_id is '999999999999'")


def test_a_bucket_that_does_not_exist_is_one_line(moto, s3):
    assert refused(s3_source(moto, url="s3://no-such-bucket/cur2/"), error=SourceError) == (
        f"source 'cur': bucket no-such-bucket does not exist (NoSuchBucket); check the source's s3 URL and "
        f"endpoint_url {moto.url}")


def test_access_denied_and_refused_credentials_are_one_line_each(tmp_path, moto, s3, monkeypatch):
    export(tmp_path / "local", [line()])
    upload(s3, tmp_path / "local", "cur2/")
    powerless_credentials(moto.url, monkeypatch)
    try:
        denied = refused(s3_source(moto), error=SourceError)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        wrong = refused(s3_source(moto), error=SourceError)
    finally:
        enforce_aws_auth(moto.url, False)
    assert denied == (f"source 'cur': bucket {BUCKET}: access denied (AccessDenied on ListObjectsV2); the credentials "
                      "need s3:ListBucket on the bucket and s3:GetObject on the export's objects")
    assert wrong == (f"source 'cur': bucket {BUCKET}: AWS credentials refused (InvalidAccessKeyId); refresh them, "
                     "e.g. `aws sso login`, or new access keys")


def test_no_credentials_is_one_line_saying_what_to_do(moto, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    assert refused(s3_source(moto), error=SourceError) == (
        f"source 'cur': bucket {BUCKET}: no AWS credentials found; set `profile:` in the source, run `aws configure` "
        "or `aws sso login`, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


# --- a whole run ------------------------------------------------------------------------------------

def run_config(root: Path, tag="team") -> Path:
    export(root / "exports", MONTH_LINES, TINY)
    path = root / "billing.yaml"
    path.write_text(f"""\
organisation:
  name: Open Hub Hosting Cooperative
  payment_instructions: Bank transfer; quote the invoice number.
sources:
  - id: cur
    type: aws-data-exports
    path: exports
    payer_account: "{PAYER}"
communities:
  - id: geo
    name: GeoHub
  - id: staff
    name: Staff Hub
attribution:
  - community: geo
    match: {{aws_account: "{HUBS}", aws_tag: {{{tag}: geo}}}}
  - community: geo
    match: {{aws_account: "{HUBS}"}}
  - community: staff
    match: {{aws_account: "{STAFF}"}}
  - absorbed: payer (management) account
    match: {{aws_account: "{PAYER}"}}
output: out
""")
    return path


def test_a_whole_run_on_an_export_reconciles_to_the_cent(tmp_path):
    config = run_config(tmp_path)
    result = CliRunner().invoke(main, ["run", "--month", "2024-03", "--config", str(config)])
    assert result.exit_code == 0, result.output + result.stderr
    folder = tmp_path / "out" / "2024-03"
    (row,) = read_csv(folder / "reconciliation.csv")
    assert (row["provider"], row["billing_account"], row["currency"]) == ("aws", PAYER, "USD")
    assert row["source_total"] == "48.26" and row["difference"] == "0.00"
    # geo: usage 17.507, credits -4.05, refund -3, tax 1.2; staff: 7.3 + 0.3 + 0.00000123; the payer's fee 29
    assert (row["attributed"], row["absorbed"], row["unattributed"]) == ("19.26", "29.00", "0.00")
    register = {r["community_id"]: r for r in read_csv(folder / "invoice-register.csv")}
    assert (register["geo"]["cloud_costs"], register["staff"]["cloud_costs"]) == ("11.66", "7.60")
    detail = read_csv(folder / "cost-detail.csv")
    assert sum(Decimal(d["net"]) for d in detail) == Decimal("48.25700123")


def focus_export(root: Path, rows: list[dict[str, str]]) -> Path:
    """Data Exports' FOCUS 1.0 table in the same layout: one chunk of the month and its manifest."""
    name = "data/BILLING_PERIOD=2024-03/cur-00001.snappy.parquet"
    (root / DATA).mkdir(parents=True, exist_ok=True)
    focus_data.write_parquet(root / EXPORT / name, rows)
    manifest(root / META / "cur-Manifest.json", [name])
    return root


def aws_focus_rows(payer: str = PAYER) -> list[dict[str, str]]:
    """FOCUS rows as AWS writes them: AWS provider, the payer as billing account, linked accounts."""
    aws = {"ProviderName": "AWS", "ServiceProviderName": "", "HostProviderName": "", "PublisherName": "AWS",
           "InvoiceIssuerName": "Amazon Web Services, Inc."}
    return [{**focus_data.row("2024-03", cost, account=payer, subscription=account, service=service, tags=tags,
                              category=category), **aws}
            for cost, account, service, tags, category in (
                ("10.10", HUBS, EC2, {"user_team": "lis"}, "Usage"), ("0.30", HUBS, EC2, None, "Usage"),
                ("2.00", STAFF, EC2, None, "Tax"), ("-1.50", HUBS, EC2, {"user_team": "lis"}, "Credit"))]


def test_the_focus_table_of_a_data_export_is_read_as_focus_files_read_it(tmp_path):
    got = collect(source(focus_export(tmp_path, aws_focus_rows()), table="focus"), ["user_team"])
    assert rows_of(got) == [
        (HUBS, EC2, "credit", (("user_team", "lis"),), Decimal(0), (("Credit", Decimal("-1.50")),)),
        (HUBS, EC2, "usage", (), Decimal("0.30"), ()),
        (HUBS, EC2, "usage", (("user_team", "lis"),), Decimal("10.10"), ()),
        (STAFF, EC2, "tax", (), Decimal("2.00"), ())]
    assert got.totals == (SourceTotal("aws", PAYER, "2024-03", "USD", Decimal("10.90")),)
    assert got.notes == (f"read 1 FOCUS Parquet file(s) of 2024-03 listed by {tmp_path / META}/cur-Manifest.json",)


def test_a_focus_export_of_another_payer_is_refused(tmp_path):
    assert refused(source(focus_export(tmp_path, aws_focus_rows("999999999999")), table="focus")) == (
        "source 'cur': the FOCUS export of 2024-03 bills billing account 999999999999 (BillingAccountId), not the "
        f"payer {PAYER}; give each payer its own source")


def test_a_focus_export_in_s3_names_its_files_by_url(tmp_path, moto, s3):
    rows = aws_focus_rows()
    rows[1]["BilledCost"] = "1e15"
    upload(s3, focus_export(tmp_path / "local", rows), "cur2/")
    message = refused(s3_source(moto, table="focus"))
    assert message == (f"source 'cur': s3://{BUCKET}/cur2/{DATA}/cur-00001.snappy.parquet, row 2: BilledCost is beyond "
                       "+-10,000,000,000,000 or has more than 18 decimal places; 1 row(s) of 2024-03 cannot be billed")

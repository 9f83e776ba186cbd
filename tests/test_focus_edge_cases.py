"""FOCUS sources at their edges: files as providers write them that once went wrong.

Inputs are made up here (rows from ``focus_data``); each test says what a tester would see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from billing import attribution, guards
from billing.collectors import aws_data_exports, focus_files
from billing.config import AwsDataExports, FocusFiles, Match, load_config
from billing.errors import DataError
from billing.records import CostRow, Month

import focus_data
from focus_data import COLUMNS, row

SEPTEMBER = Month(2024, 9)


def collect(path: Path, keys: tuple[str, ...] = ()):
    return focus_files.collect(FocusFiles(type="focus-files", id="focus", path=path), SEPTEMBER, keys)


def test_parquet_timestamptz_billing_period_is_read_in_utc_whatever_the_machine_timezone(tmp_path):
    """A Parquet FOCUS file (AWS's FOCUS export, Azure's Parquet export) stores BillingPeriodStart
    as a UTC instant. On a machine in America/Los_Angeles, 2024-10-01T00:00Z is read as
    2024-09-30 17:00-07 and billed in September (and September's rows in August)."""
    path = tmp_path / "focus.parquet"
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        db.execute(f"""COPY (SELECT * FROM (VALUES
            ('1.00', TIMESTAMPTZ '2024-09-01 00:00:00+00'), ('2.00', TIMESTAMPTZ '2024-10-01 00:00:00+00'))
            t(BilledCost, BillingPeriodStart))
            TO '{path}' (FORMAT parquet)""")
        db.execute(f"""COPY (SELECT BilledCost, 'acct' AS BillingAccountId, 'USD' AS BillingCurrency,
            BillingPeriodStart, 'Usage' AS ChargeCategory, NULL::VARCHAR AS ChargeClass, 'svc' AS ServiceName,
            'Microsoft' AS ProviderName FROM '{path}') TO '{tmp_path / "a.parquet"}' (FORMAT parquet)""")
    path.unlink()
    code = ("import sys; from pathlib import Path; from billing.collectors import focus_files; "
            "from billing.config import FocusFiles; from billing.records import Month; "
            "c = focus_files.collect(FocusFiles(type='focus-files', id='f', path=Path(sys.argv[1])), Month(2024, 9), ()); "
            "print(sum(t.total for t in c.totals))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "TZ": "America/Los_Angeles"}, check=False)
    assert result.returncode == 0, result.stderr
    assert Decimal(result.stdout.strip()) == Decimal("1.00")


def test_tags_of_one_file_are_kept_when_another_file_has_no_tags_column(tmp_path):
    """Two files of one source, only one with the optional Tags column: the tags of the file that
    has them are dropped too (the columns read are those every file has)."""
    focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.00", tags={"hub": "a"})])
    focus_data.write_csv(tmp_path / "b.csv", [row("2024-09", "2.00")], tuple(c for c in COLUMNS if c != "Tags"))
    rows = collect(tmp_path, ("hub",)).rows
    assert {(r.labels, r.cost) for r in rows} == {((("hub", "a"),), Decimal("1.00")), ((), Decimal("2.00"))}


def test_sub_accounts_of_one_file_are_kept_when_another_file_has_no_sub_account_column(tmp_path):
    focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.00", subscription="/subscriptions/x")])
    focus_data.write_csv(tmp_path / "b.csv", [row("2024-09", "2.00")],
                         tuple(c for c in COLUMNS if c != "SubAccountId"))
    assert {r.project_or_account for r in collect(tmp_path).rows} == {"/subscriptions/x", ""}


def test_the_bad_row_named_is_the_row_of_the_month_billed(tmp_path):
    """Row 1 (August) and row 3 (September) have a BilledCost that is not a number; the September
    run must name row 3, not the August row it does not bill."""
    rows = [row("2024-08", "1.00"), row("2024-09", "2.00"), row("2024-09", "3.00")]
    rows[0]["BilledCost"] = rows[2]["BilledCost"] = "n/a"
    focus_data.write_csv(tmp_path / "a.csv", rows)
    with pytest.raises(DataError) as info:
        collect(tmp_path)
    assert "row 3 after the header" in str(info.value)


def test_a_parquet_decimal_billed_cost_with_scale_above_18_is_read(tmp_path):
    """BilledCost as DECIMAL(38, 20): 1.5 is written 1.50000000000000000000 and refused as having
    'more than 18 decimal places' although it has one."""
    path = tmp_path / "a.parquet"
    with duckdb.connect() as db:
        db.execute(f"""COPY (SELECT 1.5::DECIMAL(38, 20) AS BilledCost, 'acct' AS BillingAccountId,
            'USD' AS BillingCurrency, '2024-09-01T00:00:00Z' AS BillingPeriodStart, 'Usage' AS ChargeCategory,
            NULL::VARCHAR AS ChargeClass, 'svc' AS ServiceName, 'Microsoft' AS ProviderName)
            TO '{path}' (FORMAT parquet)""")
    assert [t.total for t in collect(tmp_path).totals] == [Decimal("1.5")]


def test_a_tag_key_starting_with_a_slash_is_read_as_written(tmp_path):
    """Tag keys are looked up with DuckDB's json_extract_string, which reads a key starting with
    '/' as a JSON pointer: the rule's key '/team' takes the value of the tag 'team'."""
    focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.00", tags={"team": "x"})])
    assert [r.labels for r in collect(tmp_path, ("/team",)).rows] == [()]


def test_a_tag_key_starting_with_a_dollar_is_not_a_reading_error(tmp_path):
    focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.00", tags={"$team": "x"})])
    assert [r.labels for r in collect(tmp_path, ("$team",)).rows] == [(("$team", "x"),)]


def test_a_rule_on_provider_microsoft_matches_azure_rows_or_is_reported(tmp_path):
    """The Match docstring says a provider is named 'as a FOCUS file writes it, lower case with
    hyphens'; Azure's files write 'Microsoft'. `provider: microsoft` is accepted by check-config,
    matches no row (they are 'azure') and no guard says why."""
    path = tmp_path / "billing.yaml"
    path.write_text(f"""\
organisation: {{name: Org, payment_instructions: Pay.}}
sources:
  - {{id: az, type: focus-files, path: {tmp_path}}}
communities:
  - {{id: lab, name: Lab}}
attribution:
  - community: lab
    match: {{provider: microsoft}}
""")
    focus_data.write_csv(tmp_path / "a.csv", [row("2024-09", "1.00")])
    config = load_config(path)
    azure_row = collect(tmp_path).rows[0]
    matched = attribution.matcher(config.attribution[0].match)(azure_row)
    assert matched or guards.never_match(config)


def test_a_row_in_two_files_is_counted_once_in_the_message(tmp_path):
    """Two identical rows in a.csv, the same two in b.csv: the message says 4 rows of b.csv are in
    a.csv (the pairs joined), b.csv has 2."""
    rows = [row("2024-09", "1.00"), row("2024-09", "1.00")]
    focus_data.write_csv(tmp_path / "a.csv", rows)
    focus_data.write_csv(tmp_path / "b.csv", rows)
    with pytest.raises(DataError) as info:
        collect(tmp_path)
    assert "2 row(s)" in str(info.value)


def test_a_focus_table_in_s3_is_named_by_its_s3_url(tmp_path):
    """aws-data-exports with table: focus passes Path('s3://bucket/prefix/') on as the FOCUS
    source's path: messages then say 's3:/bucket/prefix'."""
    focus_data.write_parquet(tmp_path / "x.parquet", [row("2024-08", "1.00")])

    class Store:
        where = "s3://billing-exports/cur2/"

        def name(self, key):
            return self.where + key

    source = AwsDataExports(type="aws-data-exports", id="cur", s3="s3://billing-exports/cur2/",
                            payer_account="111111111111", table="focus")
    name = "s3://billing-exports/cur2/focus/data/BILLING_PERIOD=2024-09/x.parquet"
    with pytest.raises(DataError) as info:
        aws_data_exports._focus(source, Store(), aws_data_exports.Plan([name], None), [tmp_path / "x.parquet"],
                                [name], SEPTEMBER, ())
    assert "s3:/billing-exports" not in str(info.value), str(info.value)

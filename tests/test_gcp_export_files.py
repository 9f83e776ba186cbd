"""The GCP aggregation: one BigQuery-dialect SQL text, run by DuckDB over export copies."""

from decimal import Decimal

import duckdb
import pytest

from billing.collectors import gcp_files, gcp_sql
from billing.errors import DataError, SourceError
from billing.records import Month, SourceTotal

from conftest import (ACCOUNT, EXPECTED, NS, SEPTEMBER, export_row, september_rows, source, summary,
                      write_export)

def test_groups_by_invoice_month_with_credits_per_type(tmp_path):
    write_export(tmp_path, september_rows())
    collection = gcp_files.collect(source(tmp_path), SEPTEMBER, (NS,))
    assert summary(collection.rows) == EXPECTED
    assert {r.invoice_month for r in collection.rows} == {"2022-09"}
    assert {r.billing_account for r in collection.rows} == {ACCOUNT}
    assert all(isinstance(r.cost, Decimal) for r in collection.rows)
    hub_a = collection.rows[3]
    assert hub_a.net == Decimal("13.2555")


def test_source_total_is_googles_invoice_total(tmp_path):
    write_export(tmp_path, september_rows())
    collection = gcp_files.collect(source(tmp_path), SEPTEMBER, (NS,))
    # costs 19.78244756, credits -1.7515
    assert collection.totals == (SourceTotal("gcp", ACCOUNT, "2022-09", "USD", Decimal("18.03094756")),)
    assert sum(r.net for r in collection.rows) == collection.totals[0].total


def test_only_configured_label_keys_split_rows(tmp_path):
    write_export(tmp_path, september_rows())
    rows = gcp_files.collect(source(tmp_path), SEPTEMBER, ()).rows
    compute = [r for r in rows if r.project_or_account == "hubs-shared" and r.charge_type == "usage"
               and r.service == "Compute Engine"]
    assert len(compute) == 1 and compute[0].labels == ()
    assert compute[0].cost == Decimal("18.757")


def test_parquet_and_gzipped_ndjson_give_the_same_rows(tmp_path):
    ndjson = write_export(tmp_path / "ndjson", september_rows())
    expected = gcp_files.collect(source(ndjson.parent), SEPTEMBER, (NS,)).rows

    write_export(tmp_path / "gz", september_rows(), gzipped=True)
    assert gcp_files.collect(source(tmp_path / "gz"), SEPTEMBER, (NS,)).rows == expected

    (tmp_path / "parquet").mkdir()
    reader = gcp_files._reader([ndjson], "ndjson")
    duckdb.sql(f"COPY (SELECT * FROM {reader}) TO '{tmp_path / 'parquet' / 'export.parquet'}' (FORMAT parquet)")
    assert gcp_files.collect(source(tmp_path / "parquet"), SEPTEMBER, (NS,)).rows == expected


def test_the_sql_is_bigquery_text_with_parameters_and_exact_numerics():
    text = gcp_sql.cost_query("`p.d.gcp_billing_export_v1_X`", 2)
    assert "@invoice_month" in text and "@label_key_1" in text
    assert "invoice.month = @invoice_month" in text
    duck = gcp_sql.to_duckdb(text, gcp_sql.parameters(SEPTEMBER, ("a", "b")))
    assert "'202209'" in duck and "DECIMAL(38, 9)" in duck
    assert "DECIMAL)" not in duck and "DECIMAL(18" not in duck
    with pytest.raises(KeyError, match="label_key_1"):
        gcp_sql.to_duckdb(text, gcp_sql.parameters(SEPTEMBER, ("a",)))


def test_a_month_with_no_rows_is_a_data_error(tmp_path):
    write_export(tmp_path, september_rows())
    with pytest.raises(DataError, match="no rows with invoice month 2022-11"):
        gcp_files.collect(source(tmp_path), Month(2022, 11), ())


def test_missing_files_are_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no export files at"):
        gcp_files.collect(source(tmp_path / "nowhere"), SEPTEMBER, ())
    (tmp_path / "notes.txt").write_text("not an export")
    with pytest.raises(SourceError, match="no export files at"):
        gcp_files.collect(source(tmp_path), SEPTEMBER, ())


def test_malformed_json_is_a_data_error_naming_the_source(tmp_path):
    write_export(tmp_path, [export_row(), '{"billing_account_id": "X", "cost": '])
    with pytest.raises(DataError, match=r"source 'gcp': .*export-000000000000.json:2: the row is not valid JSON"):
        gcp_files.collect(source(tmp_path), SEPTEMBER, ())


def test_mixed_formats_in_one_source_are_refused(tmp_path):
    write_export(tmp_path, [export_row()])
    (tmp_path / "other.parquet").write_bytes(b"PAR1")
    with pytest.raises(SourceError, match="mixes NDJSON and Parquet"):
        gcp_files.collect(source(tmp_path), SEPTEMBER, ())


def test_native_list_functions_give_the_same_result_as_the_plain_translation(tmp_path):
    path = write_export(tmp_path, september_rows())
    connection = duckdb.connect()
    connection.execute(f"CREATE VIEW {gcp_files.VIEW} AS SELECT * FROM {gcp_files._reader([path], 'ndjson')}")
    params = gcp_sql.parameters(SEPTEMBER, (NS, "goog-k8s-cluster-name"))
    for text in (gcp_sql.cost_query(gcp_files.VIEW, 2), gcp_sql.total_query(gcp_files.VIEW)):
        fast, plain = gcp_sql.to_duckdb(text, params), gcp_sql.to_duckdb(text, params, native_lists=False)
        assert "list_transform(" in fast and "list_transform(" not in plain
        assert sorted(connection.execute(fast).fetchall(), key=repr) == \
            sorted(connection.execute(plain).fetchall(), key=repr)


def test_a_credit_without_a_type_is_still_a_credit(tmp_path):
    row = export_row(cost="10", credits=[("PROMOTION", "-3")]).replace('"type": "PROMOTION"', '"type": null')
    write_export(tmp_path, [row])
    [cost_row] = gcp_files.collect(source(tmp_path), SEPTEMBER, ()).rows
    assert (cost_row.cost, cost_row.credits) == (Decimal("10"), (("UNSPECIFIED", Decimal("-3")),))

"""The local GCP collector reads the files once, into groups: the same sums as over the rows, in
bounded memory, with every check of the rows still made (issue: speed at scale)."""

import gzip
import json
from decimal import Decimal

import duckdb
import pytest

from billing.collectors import gcp_files, gcp_sql
from billing.config import GcpExportFiles
from billing.errors import DataError

from conftest import ACCOUNT, NS, SEPTEMBER, export_row, september_rows, source, write_export

KEYS = (NS, "goog-k8s-cluster-name")


def records(connection, table, label_keys=KEYS):
    params = gcp_sql.parameters(SEPTEMBER, label_keys)
    return [sorted(connection.execute(gcp_sql.to_duckdb(text, params)).fetchall(), key=repr)
            for text in (gcp_sql.cost_query(table, len(label_keys)), gcp_sql.total_query(table))]


@pytest.mark.parametrize("kind", ["ndjson", "parquet"])
def test_the_queries_over_the_groups_give_what_they_give_over_the_rows(tmp_path, kind):
    """The BigQuery-dialect queries run over ``VIEW`` (the groups one reading made) and over the
    rows themselves: the same records, amounts exact, for every group and credit type."""
    rows = september_rows() + [
        export_row(cost="0.1", labels=[(NS, "hub-a"), ("goog-k8s-cluster-name", "other")],
                   credits=[("PROMOTION", "-0.05"), ("PROMOTION", "-0.01")]),
        export_row(cost="7", credits=[("FREE_TIER", "-7")], invoice="202209", cost_type="adjustment"),
        export_row(cost="3.3", labels=[(NS, "hub-b"), (NS, "second-value-ignored")]),
    ]
    path = write_export(tmp_path / "n", rows)
    files = [path]
    if kind == "parquet":
        (tmp_path / "p").mkdir()
        files = [tmp_path / "p" / "export.parquet"]
        duckdb.sql(f"COPY (SELECT * FROM {gcp_files._reader([path], 'ndjson')}) TO '{files[0]}' (FORMAT parquet)")
    plain = duckdb.connect()
    plain.execute(f"CREATE VIEW rows_read AS SELECT * FROM {gcp_files._reader(files, kind)}")
    grouped = duckdb.connect()
    gcp_files.load(grouped, source(files[0].parent), files, kind, KEYS)
    assert records(grouped, gcp_files.VIEW) == records(plain, "rows_read")
    (cost_records, total_records) = records(grouped, gcp_files.VIEW)
    assert all(isinstance(r[-1], Decimal) for r in cost_records + total_records)
    # two September rows of hub-a in other clusters, and the adjustment: fewer groups than rows
    assert grouped.execute(f"SELECT count(*) FROM {gcp_files.GROUPS} WHERE per_group").fetchone()[0] < len(rows) + 5


def test_a_month_read_under_a_small_memory_limit_gives_the_same_sums(tmp_path, monkeypatch):
    """A quarter of the usual memory limit for 300,000 distinct rows: DuckDB works in it (spilling
    to a temporary folder of its own, which is gone afterwards) and nothing changes in the result."""
    (tmp_path / "p").mkdir()
    duckdb.sql(f"""COPY (SELECT '{ACCOUNT}' AS billing_account_id, {{'id': 'S', 'description': 'Compute Engine'}} AS service,
                         {{'id': 'p' || (i % 7), 'name': 'p'}} AS project,
                         [{{'key': '{NS}', 'value': 'hub-' || (i % 13)}}] AS labels,
                         (i % 1000) / 1000.0 AS cost, 'USD' AS currency,
                         [{{'name': 'x', 'amount': -(i % 10) / 1000.0, 'full_name': NULL, 'id': 'x',
                            'type': 'SUSTAINED_USAGE_DISCOUNT'}}] AS credits,
                         {{'month': '202209'}} AS invoice, 'regular' AS cost_type,
                         '2022-09-01 ' || i AS usage_start_time
                  FROM range(300000) t(i)) TO '{tmp_path / 'p' / 'a.parquet'}' (FORMAT parquet)""")
    spills = []
    real = gcp_files.tempfile.mkdtemp
    monkeypatch.setattr(gcp_files.tempfile, "mkdtemp", lambda **kw: spills.append(real(**kw)) or spills[-1])
    wide = gcp_files.collect(source(tmp_path / "p"), SEPTEMBER, (NS,))
    monkeypatch.setattr(gcp_files, "MEMORY_LIMIT", {"parquet": "64MB"})
    narrow = gcp_files.collect(source(tmp_path / "p"), SEPTEMBER, (NS,))
    assert narrow == wide
    # costs: 300 times 0..0.999 (499.5 each); credits: 30000 times 0..-0.009
    assert narrow.totals[0].total == Decimal("149850") - Decimal("1350")
    assert len(spills) == 2 and not any(gcp_files.Path(s).exists() for s in spills)


def test_an_extract_that_leaves_out_null_fields_is_read(tmp_path):
    """``bq extract`` may write a row without its null fields: no project, no labels, credits
    without id or name, a project without name."""
    row = {"billing_account_id": ACCOUNT, "service": {"id": "S", "description": "Compute Engine"},
           "project": {"id": "p1"}, "cost": 2.5, "currency": "USD",
           "credits": [{"amount": -0.5, "type": "PROMOTION"}], "invoice": {"month": "202209"}, "cost_type": "regular"}
    bare = {"billing_account_id": ACCOUNT, "service": {"id": "S", "description": "Invoice"}, "cost": 0.01,
            "currency": "USD", "invoice": {"month": "202209"}, "cost_type": "rounding_error"}
    write_export(tmp_path, [json.dumps(row), json.dumps(bare)])
    collection = gcp_files.collect(source(tmp_path), SEPTEMBER, (NS,))
    assert [(r.project_or_account, r.cost, r.credits) for r in collection.rows] == [
        ("", Decimal("0.01"), ()), ("p1", Decimal("2.5"), (("PROMOTION", Decimal("-0.5")),))]
    assert collection.totals[0].total == Decimal("2.01")


def test_lines_of_spaces_and_tabs_are_blank_and_still_counted_in_the_file(tmp_path):
    path = tmp_path / "export-000.json.gz"
    text = export_row(cost="1") + "\n   \n\t \n" + export_row(cost="2", usage_start="2022-09-02 00:00:00 UTC") + "\n"
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    assert gcp_files.collect(source(tmp_path), SEPTEMBER, ()).totals[0].total == Decimal("3")


@pytest.mark.parametrize("change, problem", [
    (('"service": {"id": "SVC", "description": "Compute Engine"}', '"service": ["Compute Engine"]'),
     "has a service that is not an object"),
    (('"invoice": {"month": "202209"}', '"invoice": "202209"'), "has an invoice that is not an object"),
    (('"labels": []', '"labels": [{"key": "k8s-namespace", "value": "a"}, 7]'), "has labels that are not a list"),
])
def test_a_record_of_the_wrong_kind_is_refused_with_its_line_even_when_unbillable_rows_are_reported(
        tmp_path, change, problem):
    row = export_row(cost="1")
    bad = row.replace(*change)
    assert bad != row
    write_export(tmp_path, [row, bad, bad])
    # (the JSON reader stops at such a row; the first is found again and shown)
    with pytest.raises(DataError, match=rf"export-000000000000.json:2: the row {problem}.*: {{\"billing_account_id"):
        gcp_files.collect(GcpExportFiles(type="gcp-export-files", id="gcp", path=tmp_path,
                                         unbillable_rows="report"), SEPTEMBER, ())


def test_rows_shared_by_three_files_name_every_pair(tmp_path):
    rows = [export_row(cost="1", usage_start=f"2022-09-03 {h:02d}:00:00 UTC") for h in range(6)]
    write_export(tmp_path, rows, name="a.json")
    write_export(tmp_path, rows[:4], name="b.json")
    write_export(tmp_path, rows[2:], name="c.json")
    with pytest.raises(DataError, match=r"4 row\(s\) of .*b.json are also in .*a.json .*; 2 more pair\(s\) of files "
                                        r"share rows too"):
        gcp_files.collect(source(tmp_path), SEPTEMBER, ())


def test_parquet_files_without_a_record_the_identity_reads_are_read(tmp_path):
    """A standard export has no ``resource``; an older one may lack ``location.zone``: the row's
    identity is taken from what every file has."""
    ndjson = write_export(tmp_path / "n", [export_row(cost="4"), export_row(cost="5", service="Networking")])
    (tmp_path / "p").mkdir()
    duckdb.sql(f"COPY (SELECT *, {{'location': 'US', 'country': 'US'}} AS location "
               f"FROM {gcp_files._reader([ndjson], 'ndjson')}) TO '{tmp_path / 'p' / 'a.parquet'}' (FORMAT parquet)")
    assert gcp_files.collect(source(tmp_path / "p"), SEPTEMBER, ()).totals[0].total == Decimal("9")

"""Every export row is read exactly once, and can be billed, or the run stops (issue: nothing
lost, nothing counted twice). Reconciliation cannot see any of these: it sums the rows read."""

import gzip
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from billing.collectors import gcp_files
from billing.config import GcpExportFiles
from billing.errors import DataError

from conftest import SEPTEMBER, export_row, september_rows, write_export


def collect(path, **options):
    return gcp_files.collect(GcpExportFiles(type="gcp-export-files", id="gcp", path=path, **options), SEPTEMBER, ())


def total(collection):
    return sum(t.total for t in collection.totals)


def usage_rows(count, start=0):
    """Distinct rows: no two share every column (hours differ), as in a real export."""
    return [export_row(cost="1.5", usage_start=f"2022-09-{1 + (start + i) // 24 % 28:02d} {(start + i) % 24:02d}:00:00 UTC")
            for i in range(count)]


# --- the same export read twice --------------------------------------------------------------

def test_plain_and_gzipped_copies_of_one_extract_are_refused(tmp_path):
    write_export(tmp_path, usage_rows(30))
    write_export(tmp_path, usage_rows(30), gzipped=True)
    with pytest.raises(DataError, match=r"30 row\(s\) of .*export-000000000000.json.gz are also in "
                                        r".*export-000000000000.json \(the same export rows in two files") as error:
        collect(tmp_path)
    assert "shards of one extract" not in str(error.value)  # a copy, not a second shard


def test_a_row_in_two_shards_of_one_extract_says_how_to_read_identical_rows_of_the_table(tmp_path):
    """An export table may hold two identical rows; a sharded extract may put them in two shards.
    That cannot be told from a copy, so it is refused too, saying what to do if that is the case."""
    twice = usage_rows(1, start=300)
    write_export(tmp_path, usage_rows(10) + twice, name="export-000000000000.json")
    write_export(tmp_path, usage_rows(10, start=100) + twice, name="export-000000000001.json")
    with pytest.raises(DataError, match=r"1 row\(s\) of .*export-000000000001.json are also in "
                                        r".*export-000000000000.json .*; if the two are shards of one extract and "
                                        r"the export table itself holds identical rows, extract the month again "
                                        r"into one file$"):
        collect(tmp_path)
    (tmp_path / "export-000000000001.json").unlink()  # one file: the same rows are counted, each once
    write_export(tmp_path, usage_rows(10) + twice + usage_rows(10, start=100) + twice, name="export-000000000000.json")
    assert total(collect(tmp_path)) == Decimal("1.5") * 22


def test_a_recompressed_copy_is_refused(tmp_path):
    original = write_export(tmp_path, usage_rows(10), name="a.json", gzipped=True)
    data = gzip.decompress(original.read_bytes())
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(data, compresslevel=1, mtime=12345))
    assert (tmp_path / "b.json.gz").read_bytes() != original.read_bytes()
    with pytest.raises(DataError, match=r"10 row\(s\) of .*b.json.gz are also in .*a.json.gz"):
        collect(tmp_path)


def test_an_overlapping_shard_of_another_extract_is_refused_with_the_count(tmp_path):
    rows = usage_rows(100)
    write_export(tmp_path, rows, name="full-000.json")
    write_export(tmp_path, rows[60:] + usage_rows(5, start=500), name="later-000.json")
    with pytest.raises(DataError, match=r"40 row\(s\) of .*later-000.json are also in .*full-000.json"):
        collect(tmp_path)


def test_identical_rows_inside_one_file_are_legitimate(tmp_path):
    write_export(tmp_path, [export_row(cost="2")] * 3 + [export_row(cost="1")])
    assert total(collect(tmp_path)) == Decimal("7")


def test_distinct_shards_and_empty_shards_are_read(tmp_path):
    write_export(tmp_path, usage_rows(10), name="s-000.json", gzipped=True)
    write_export(tmp_path, usage_rows(10, start=10), name="s-001.json", gzipped=True)
    for name in ("s-002.json.gz", "s-003.json.gz"):  # gzips of nothing, byte-identical
        (tmp_path / name).write_bytes(gzip.compress(b"", mtime=0))
    (tmp_path / "s-004.json").write_bytes(b"")
    assert total(collect(tmp_path)) == Decimal("30")


def test_the_same_rows_in_two_parquet_files_are_refused(tmp_path):
    ndjson = write_export(tmp_path / "n", usage_rows(8))
    (tmp_path / "p").mkdir()
    reader = gcp_files._reader([ndjson], "ndjson")
    for name in ("a", "b"):
        duckdb.sql(f"COPY (SELECT * FROM {reader}) TO '{tmp_path / 'p' / name}.parquet' (FORMAT parquet)")
    with pytest.raises(DataError, match=r"8 row\(s\) of .*b.parquet are also in .*a.parquet"):
        collect(tmp_path / "p")
    (tmp_path / "p" / "b.parquet").unlink()
    assert total(collect(tmp_path / "p")) == Decimal("12")


# --- a file read short ---------------------------------------------------------------------

def cut_last_row(path: Path) -> None:
    """Rewrite a gzip'd NDJSON file as complete gzip whose last line stops mid-row."""
    data = gzip.decompress(path.read_bytes()).rstrip(b"\n")
    path.write_bytes(gzip.compress(data[:-25], mtime=0))


def test_a_gzip_whose_last_row_is_cut_is_refused_every_time(tmp_path):
    """Several files read at once; DuckDB itself reported the cut row on some runs only."""
    for n in range(4):
        write_export(tmp_path, usage_rows(400, start=400 * n), name=f"export-{n:03d}.json", gzipped=True)
    cut_last_row(tmp_path / "export-002.json.gz")
    for _ in range(50):
        with pytest.raises(DataError, match=r"export-002.json.gz:400: the row is not valid JSON"):
            collect(tmp_path)


def test_a_gzip_stream_cut_short_is_refused_every_time(tmp_path):
    for n in range(4):
        write_export(tmp_path, usage_rows(400, start=400 * n), name=f"export-{n:03d}.json", gzipped=True)
    damaged = tmp_path / "export-001.json.gz"
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) - 9])  # the deflate data ends, the trailer is gone
    for _ in range(50):
        with pytest.raises(DataError, match=r"export-001.json.gz: the file is damaged or cut short"):
            collect(tmp_path)


def test_a_file_is_checked_whole_when_its_length_cannot_be_compared(tmp_path):
    """Windows line ends and multi-member gzip files miss the cheap length check; they are
    counted line by line instead, and read."""
    rows = usage_rows(20)
    (tmp_path / "crlf.json").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    members = gzip.compress(("\n".join(usage_rows(5, start=100)) + "\n").encode(), mtime=0) + \
        gzip.compress(("\n".join(usage_rows(5, start=200)) + "\n").encode(), mtime=0)
    (tmp_path / "members.json.gz").write_bytes(members)
    (tmp_path / "no-newline.json").write_bytes("\n".join(usage_rows(3, start=300)).encode())
    assert total(collect(tmp_path)) == Decimal("1.5") * 33


@pytest.mark.parametrize("reader, short, words", [
    ("line_reader", "(SELECT * FROM {} LIMIT 9)", "holds 10 rows but 9 lines were read"),
    ("_typed_rows", "SELECT * FROM ({}) LIMIT 9", "holds 10 rows but 9 were read")])
def test_rows_a_reader_skipped_are_caught(tmp_path, monkeypatch, reader, short, words):
    """Fault injection: either reader (plain lines, or JSON rows) drops the last row silently, as
    DuckDB's JSON reader did on some runs; the file itself says how much there is."""
    path = write_export(tmp_path, usage_rows(10), gzipped=True)
    real = getattr(gcp_files, reader)
    monkeypatch.setattr(gcp_files, reader, lambda files: short.format(real(files)))
    with pytest.raises(DataError, match=rf"{path} {words}; the file was not read whole"):
        collect(tmp_path)


# --- rows that cannot be billed --------------------------------------------------------------

@pytest.mark.parametrize("row, problem", [
    (export_row().replace('"invoice": {"month": "202209"}', '"invoice": null'), "has no invoice month"),
    (export_row().replace('"invoice": {"month": "202209"}', '"invoice": {}'), "has no invoice month"),
    (export_row().replace(', "invoice": {"month": "202209"}', ''), "has no invoice month"),
    (export_row().replace('"month": "202209"', '"month": "2022-09"'), "has no invoice month"),
    (export_row(cost="null"), "has no cost"),
    (export_row().replace('"cost": 1.00, ', ''), "has no cost"),
    (export_row(credits=[("PROMOTION", "null")]), "has a credit without an amount"),
])
def test_rows_that_cannot_be_billed_are_refused_with_file_line_and_count(tmp_path, row, problem):
    write_export(tmp_path, [export_row(cost="3"), row, row])
    with pytest.raises(DataError, match=rf"export-000000000000.json:2: the row {problem}.*; 2 such row\(s\) in that file "
                                        r"\(or set `unbillable_rows: report`"):
        collect(tmp_path)


def test_unbillable_rows_can_be_accepted_and_are_reported(tmp_path):
    no_month = export_row(cost="5").replace('"invoice": {"month": "202209"}', '"invoice": null')
    write_export(tmp_path, [export_row(cost="3"), no_month, export_row(cost="null"),
                            export_row(cost="2", credits=[("PROMOTION", "null")])])
    collection = collect(tmp_path, unbillable_rows="report")
    assert total(collection) == Decimal("5")
    assert collection.warnings == (
        "1 row(s) of export-000000000000.json left out (no invoice month) (first: "
        f"{tmp_path / 'export-000000000000.json'}:2)",
        "1 row(s) of export-000000000000.json read with a cost of 0 (no cost) (first: "
        f"{tmp_path / 'export-000000000000.json'}:3)",
        "1 row(s) of export-000000000000.json read with a credit of 0 (a credit without an amount) (first: "
        f"{tmp_path / 'export-000000000000.json'}:4)")


def test_another_months_null_cost_is_that_months_problem(tmp_path):
    write_export(tmp_path, [export_row(cost="3"), export_row(cost="null", invoice="202210")])
    assert total(collect(tmp_path)) == Decimal("3")


# --- malformed and absurd values -------------------------------------------------------------

@pytest.mark.parametrize("cost", ["NaN", "Infinity", "-Infinity", "1e400", "1e14"])
def test_non_finite_and_absurd_costs_are_refused(tmp_path, cost):
    write_export(tmp_path, [export_row(cost="1"), export_row(cost=cost)])
    with pytest.raises(DataError, match=r"export-000000000000.json:2: the row has a cost that is not a finite number"):
        collect(tmp_path)


def test_non_finite_credit_amounts_are_refused(tmp_path):
    write_export(tmp_path, [export_row(cost="1", credits=[("PROMOTION", "-Infinity")])])
    with pytest.raises(DataError, match=r"export-000000000000.json:1: the row has a credit amount that is not a finite"):
        collect(tmp_path)


@pytest.mark.parametrize("replace, problem", [
    (('"labels": []', '"labels": {"key": "k8s-namespace", "value": "a"}'), "has labels that are not a list"),
    (('"labels": []', '"labels": ["k8s-namespace"]'), "has labels that are not a list"),
    (('"credits": []', '"credits": {"amount": -1}'), "has credits that are not a list"),
    (('"project": {', '"project": ["x", {'), "has a project that is not an object"),
    (('"cost": 1.00', '"cost": "one"'), "has a cost that is not a number"),
])
def test_a_row_of_the_wrong_shape_names_file_line_and_field(tmp_path, replace, problem):
    row = export_row(cost="1.00")
    bad = row.replace(*replace)
    if replace[0] == '"project": {':
        bad = bad.replace('"labels": []}', '"labels": []}]', 1)
    assert bad != row
    write_export(tmp_path, [row, row.replace("1.00", "2.00"), bad])
    with pytest.raises(DataError, match=rf"export-000000000000.json:3: the row {problem}"):
        collect(tmp_path)


def test_a_line_that_is_not_an_object_is_refused(tmp_path):
    write_export(tmp_path, [export_row(), "[1, 2]"])
    with pytest.raises(DataError, match=r"export-000000000000.json:2: the row is not an export row"):
        collect(tmp_path)


def test_the_collector_reads_the_sample_of_the_shared_rows_again(tmp_path):
    write_export(tmp_path, september_rows())
    collection = collect(tmp_path)
    assert total(collection) == Decimal("18.03094756")


# --- label keys the data carries ---------------------------------------------------------------

def test_the_label_keys_carried_are_those_of_the_data(tmp_path):
    write_export(tmp_path, september_rows())
    files = GcpExportFiles(type="gcp-export-files", id="gcp", path=tmp_path)
    assert gcp_files.collect(files, SEPTEMBER, ("k8s-namespace",)).label_keys == {"k8s-namespace"}
    # a key no row carries: every key of the files is given, to suggest the spelling
    assert gcp_files.collect(files, SEPTEMBER, ("k8s-namespce",)).label_keys == \
        {"k8s-namespace", "goog-k8s-cluster-name"}


# --- copies that differ in form, not in content -------------------------------------------------

def test_a_copy_written_differently_is_still_the_same_rows(tmp_path):
    """Compact separators, other key order, 1.5 as 1.50, trailing spaces: the same rows."""
    rows = usage_rows(12)
    write_export(tmp_path, rows, name="original.json")
    rewritten = [json.dumps(dict(reversed(list(json.loads(r).items()))), separators=(",", ":")).replace('"cost":1.5',
                 '"cost":1.50') + "  " for r in rows[:7]]
    assert rewritten[0] != rows[0]
    write_export(tmp_path, rewritten, name="rewritten.json")
    with pytest.raises(DataError, match=r"7 row\(s\) of .*rewritten.json are also in .*original.json"):
        collect(tmp_path)


def test_rows_that_differ_in_a_column_the_checks_do_not_bill_are_not_copies(tmp_path):
    rows = usage_rows(3)
    write_export(tmp_path, rows, name="a.json")
    write_export(tmp_path, [r.replace('"N2 Instance Core', '"E2 Instance Core') for r in rows], name="b.json")
    assert total(collect(tmp_path)) == Decimal("9")


@pytest.mark.parametrize("third", ["extra column", "other column order"])
def test_parquet_copies_are_found_whatever_the_other_files_columns(tmp_path, third):
    ndjson = write_export(tmp_path / "n", usage_rows(5))
    other = write_export(tmp_path / "o", usage_rows(2, start=50))
    (tmp_path / "p").mkdir()
    reader = gcp_files._reader([ndjson], "ndjson")
    for name in ("a", "b"):
        duckdb.sql(f"COPY (SELECT * FROM {reader}) TO '{tmp_path / 'p' / name}.parquet' (FORMAT parquet)")
    select = "*, 'extra' AS x" if third == "extra column" else "cost, * EXCLUDE (cost)"
    duckdb.sql(f"COPY (SELECT {select} FROM {gcp_files._reader([other], 'ndjson')}) "
               f"TO '{tmp_path / 'p' / 'c'}.parquet' (FORMAT parquet)")
    with pytest.raises(DataError, match=r"5 row\(s\) of .*b.parquet are also in .*a.parquet"):
        collect(tmp_path / "p")


# --- amounts that are not numbers ---------------------------------------------------------------

@pytest.mark.parametrize("change, problem", [
    (('"cost": 1.00', '"cost": true'), "has a cost that is not a number"),
    (('"cost": 1.00', '"cost": "5"'), "has a cost that is not a number"),
    (('"amount": -0.5', '"amount": true'), "has credits that are not a list of"),
    (('"amount": -0.5', '"amount": "abc"'), "has credits that are not a list of"),
    (('"credits": [{', '"credits": ["x", {'), "has credits that are not a list of"),
])
def test_an_amount_that_is_not_a_number_is_refused_even_when_unbillable_rows_are_reported(tmp_path, change, problem):
    row = export_row(cost="1.00", credits=[("PROMOTION", "-0.5")])
    bad = row.replace(*change)
    assert bad != row
    write_export(tmp_path, [row.replace("1.00", "2.00"), bad])
    with pytest.raises(DataError, match=rf"export-000000000000.json:2: the row {problem}"):
        collect(tmp_path, unbillable_rows="report")


def test_a_parquet_file_of_another_shape_names_the_file_and_column(tmp_path):
    ndjson = write_export(tmp_path / "n", usage_rows(2))
    (tmp_path / "p").mkdir()
    duckdb.sql(f"COPY (SELECT * REPLACE (cost::VARCHAR AS cost) FROM {gcp_files._reader([ndjson], 'ndjson')}) "
               f"TO '{tmp_path / 'p' / 'a'}.parquet' (FORMAT parquet)")
    with pytest.raises(DataError, match=r"a.parquet: column cost is VARCHAR; the export has a FLOAT64"):
        collect(tmp_path / "p")
    duckdb.sql(f"COPY (SELECT * EXCLUDE (labels) FROM {gcp_files._reader([ndjson], 'ndjson')}) "
               f"TO '{tmp_path / 'p' / 'a'}.parquet' (FORMAT parquet)")
    with pytest.raises(DataError, match=r"a.parquet: has no column labels"):
        collect(tmp_path / "p")

"""GCP billing export copies on disk, aggregated by DuckDB.

Reads what ``bq extract`` writes from the standard or detailed export table: newline-delimited
JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally ``.gz``) or Parquet, with the export's nested
shape. The aggregation is the BigQuery-dialect text of ``gcp_sql``, transpiled; only aggregated
rows leave DuckDB.

Reconciliation compares two sums over the same rows, so it cannot see a row read twice or a row
the reader dropped. NDJSON files are therefore parsed once, into a DuckDB table that keeps, beside
the columns the queries use, each row's file and a hash of its values (Parquet files keep only
those, their columns are read where they are), and every run proves before it aggregates
(``gcp_file_checks``):

- every file was read to its end (read also as plain lines, whose bytes add up to the file's
  content length), and a row read for each of its lines;
- no row appears in two different files (a copy, a re-compressed or re-written copy, overlapping
  extracts);
- every row has the export's shape, finite amounts within range, and can be billed (an invoice
  month, a cost, credit amounts), unless the source accepts unbillable rows and reports them.
"""

from __future__ import annotations

import glob
from collections import Counter
from pathlib import Path

import duckdb

from ..config import GcpExportFiles
from ..errors import DataError, SourceError
from ..records import Month
from . import gcp_file_checks as checks
from . import gcp_sql
from .base import Collection

NDJSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
TABLE, VIEW = "export_rows", "gcp_billing_export"

# The export columns the queries read, typed as the export defines them (cost is FLOAT64 there;
# the query casts it to NUMERIC). Columns absent from a row read as NULL.
NDJSON_COLUMNS = {
    "billing_account_id": "VARCHAR",
    "service": "STRUCT(id VARCHAR, description VARCHAR)",
    "project": "STRUCT(id VARCHAR, name VARCHAR)",
    "labels": "STRUCT(key VARCHAR, value VARCHAR)[]",
    "cost": "DOUBLE",
    "currency": "VARCHAR",
    "credits": "STRUCT(name VARCHAR, amount DOUBLE, full_name VARCHAR, id VARCHAR, type VARCHAR)[]",
    "invoice": "STRUCT(month VARCHAR)",
    "cost_type": "VARCHAR",
}
# What DuckDB's NDJSON reader reads of each row: the columns the queries and checks need, and the
# columns that tell one row from another, so that a row is recognised in two files whatever its
# formatting (spacing, key order, 1.5 or 1.50). Amounts are read as JSON text, to tell a number
# from ``true`` or ``"5"`` (which a DOUBLE column would read as 1 and 5); the columns read only
# to identify a row are JSON too, so that no value of theirs can stop a run.
READ_COLUMNS = {
    "billing_account_id": "VARCHAR",
    "service": "STRUCT(id VARCHAR, description VARCHAR)",
    "sku": "STRUCT(id JSON)",
    "usage_start_time": "JSON", "usage_end_time": "JSON", "export_time": "JSON",
    "project": "STRUCT(id VARCHAR)",
    "labels": "STRUCT(key VARCHAR, value VARCHAR)[]",
    "system_labels": "JSON",
    "location": "STRUCT(zone JSON)",
    "resource": "STRUCT(global_name JSON)",
    "cost": "JSON",
    "currency": "VARCHAR",
    "usage": "STRUCT(amount JSON, unit JSON)",
    "credits": "STRUCT(amount JSON, type VARCHAR, id JSON)[]",
    "invoice": "STRUCT(month VARCHAR)",
    "cost_type": "VARCHAR",
}
# The row as the queries and checks read it (``r``), from what the reader read (``j``).
TYPED_ROW = ("struct_pack(billing_account_id := j.billing_account_id, service := j.service, project := j.project, "
             "labels := j.labels, cost := TRY_CAST(j.cost::VARCHAR AS DOUBLE), currency := j.currency, "
             "credits := list_transform(j.credits, lambda c: struct_pack(amount := TRY_CAST(c.amount::VARCHAR AS "
             "DOUBLE), type := c.type)), invoice := j.invoice, cost_type := j.cost_type)")
# What identifies a row: every column read, amounts as numbers.
IDENTITY = "hash(j, r.cost, r.credits)"
# JSON text has no raw control characters (RFC 8259 requires them escaped inside strings), so
# reading each line as one CSV field split on this one never splits a valid row: how the
# completeness check reads the files' lines, apart from the JSON reader.
UNIT_SEPARATOR = "\x1f"


def export_files(source: GcpExportFiles) -> tuple[list[Path], str]:
    """The export files of ``source`` (a folder, a file or a glob) and their format."""
    path = source.path
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(str(path), recursive=True)]
    files = sorted(p for p in files if p.name.endswith(NDJSON_SUFFIXES + PARQUET_SUFFIXES))
    if not files:
        raise SourceError(
            f"source {source.id!r}: no export files at {path} "
            f"(looked for {', '.join('*' + s for s in NDJSON_SUFFIXES + PARQUET_SUFFIXES)})")
    kinds = {"parquet" if p.name.endswith(PARQUET_SUFFIXES) else "ndjson" for p in files}
    if len(kinds) > 1:
        raise SourceError(f"source {source.id!r}: {path} mixes NDJSON and Parquet files; "
                          "give each format its own source")
    return files, kinds.pop()


def _reader(files: list[Path], kind: str) -> str:
    """A typed reader of the export columns (for tools and tests; runs use ``load``)."""
    if kind == "parquet":
        return f"read_parquet({checks.sql_files(files)}, union_by_name = true)"
    columns = "{" + ", ".join(f"{checks.sql_text(k)}: {checks.sql_text(v)}" for k, v in NDJSON_COLUMNS.items()) + "}"
    return f"read_json({checks.sql_files(files)}, format = 'newline_delimited', columns = {columns})"


def line_reader(files: list[Path]) -> str:
    """Every line of the NDJSON files as text, with its file's name."""
    return (f"read_csv({checks.sql_files(files)}, columns = {{'line': 'VARCHAR'}}, delim = {checks.sql_text(UNIT_SEPARATOR)}, "
            "quote = '', escape = '', header = false, auto_detect = false, filename = true, "
            "max_line_size = 16777216)")


def _keep_labels(label_keys: tuple[str, ...]) -> str:
    """Only the labels attribution looks at are kept in the table (the rest cost memory)."""
    keys = ", ".join(checks.sql_text(k) for k in label_keys) or "NULL"
    return f"list_filter(r.labels, lambda l: l.key IN ({keys}))"


def load(connection: duckdb.DuckDBPyConnection, source: GcpExportFiles, files: list[Path], kind: str,
         label_keys: tuple[str, ...]) -> list[str]:
    """Read every file once into ``TABLE`` and define ``VIEW``, the export's columns, to query.

    Per row the table keeps: ``file`` (1-based index into ``files``), ``row_hash`` (what
    identifies the row), ``problem`` (``gcp_file_checks.PROBLEMS``: NULL for a sound row), and on
    rows with a problem ``month`` (the invoice month) and, for Parquet, ``line_number`` (the
    row's number in its file). For NDJSON it also keeps the columns the queries read, parsed once
    (``VIEW`` is over the table); Parquet is columnar, so ``VIEW`` reads the few columns the
    queries need straight from the files, which is faster than keeping them. Returns the Parquet
    columns all files have.
    """
    names = checks.sql_files(files)
    if kind == "parquet":
        common = parquet_columns(connection, source, files)
        connection.execute(f"""
            CREATE TABLE {TABLE} AS
            SELECT file, row_hash, problem, CASE WHEN problem IS NOT NULL THEN month END AS month,
                   CASE WHEN problem IS NOT NULL THEN file_row_number + 1 END AS line_number
            FROM (SELECT list_position({names}, filename)::INTEGER AS file, hash({_columns_of(common)}) AS row_hash,
                         {checks.problem_expression(typed=False)} AS problem, r.invoice.month, file_row_number
                  FROM read_parquet({names}, union_by_name = true, filename = true, file_row_number = true) AS r)""")
        connection.execute(f"CREATE VIEW {VIEW} AS SELECT * FROM read_parquet({names}, union_by_name = true)")
        return common
    connection.execute(f"""
        CREATE TABLE {TABLE} AS
        SELECT file, row_hash, problem, CASE WHEN problem IS NOT NULL THEN r.invoice.month END AS month,
               r.billing_account_id, r.service, r.project, {_keep_labels(label_keys)} AS labels, r.cost, r.currency,
               r.credits, r.invoice, r.cost_type
        FROM (SELECT r, {IDENTITY} AS row_hash, {checks.problem_expression(typed=True)} AS problem, file
              FROM ({_typed_rows(files)}))""")
    connection.execute(f"CREATE VIEW {VIEW} AS SELECT billing_account_id, service, project, labels, cost, currency, "
                       f"credits, invoice, cost_type FROM {TABLE}")
    return []


def _typed_rows(files: list[Path]) -> str:
    """SQL: every NDJSON row with its file's index, as read (``j``) and typed (``r``)."""
    columns = "{" + ", ".join(f"{checks.sql_text(k)}: {checks.sql_text(v)}" for k, v in READ_COLUMNS.items()) + "}"
    read = (f"SELECT list_position({checks.sql_files(files)}, filename)::INTEGER AS file, "
            "struct_pack(*COLUMNS(* EXCLUDE (filename))) AS j "
            f"FROM read_json({checks.sql_files(files)}, format = 'newline_delimited', columns = {columns}, "
            "filename = true, maximum_object_size = 16777216)")
    return f"SELECT file, j, {TYPED_ROW} AS r FROM ({read})"


def file_lines(connection: duckdb.DuckDBPyConnection, files: list[Path]) -> dict[int, tuple[int, int]]:
    """Per file index: the rows (lines that are not blank) and the bytes (lines and their newlines)
    of each NDJSON file, read as plain lines, apart from the JSON reader."""
    return {index: (rows, size) for index, rows, size in connection.execute(
        f"SELECT list_position({checks.sql_files(files)}, filename)::INTEGER, count(*) FILTER (WHERE trim(line) <> ''), "
        f"coalesce(sum(strlen(line)), 0) + count(*) FROM {line_reader(files)} GROUP BY ALL").fetchall()}


def parquet_columns(connection: duckdb.DuckDBPyConnection, source: GcpExportFiles,
                    files: list[Path]) -> list[str]:
    """The columns every Parquet file has (an extract made after Google added a column still holds
    the same rows as one made before), each file checked to have the export's columns."""
    common: set[str] | None = None
    for path in files:
        columns = {row[0]: row[1] for row in connection.execute(
            f"DESCRIBE SELECT * FROM read_parquet({checks.sql_files([path])})").fetchall()}
        problem = checks.parquet_shape(source, path, columns)
        if problem:
            raise problem
        common = set(columns) if common is None else common & set(columns)
    return sorted(common or ())


def _columns_of(names: list[str]) -> str:
    return ", ".join(f'r."{name.replace(chr(34), chr(34) * 2)}"' for name in names)


def _same_rows(connection: duckdb.DuckDBPyConnection, files: list[Path], common: list[str],
               first: int, second: int) -> int:
    """How many rows of file ``second`` are also in file ``first``, compared on the rows
    themselves (every column, as values), not on their hashes."""
    pair = [files[first - 1], files[second - 1]]
    if common:  # Parquet
        counts = [Counter(text for (text,) in connection.execute(
            f"SELECT row({_columns_of(common)})::VARCHAR FROM read_parquet({checks.sql_files(files)}, union_by_name = true, "
            f"filename = true) AS r WHERE filename = {checks.sql_text(str(path))}").fetchall()) for path in pair]
    else:
        counts = [Counter(checks.canonical(line) for line in checks.lines_of(path)) for path in pair]
    return sum((counts[0] & counts[1]).values())


def _records(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = connection.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _carried_keys(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str,
                  label_keys: tuple[str, ...], cost_records: list[dict]) -> set[str]:
    """The label keys the data carries: the configured ones the month's rows carry, and when one
    of those is carried by no row of the month (a typo, or a label of other months), every key
    the files hold, to tell the two apart and suggest a spelling."""
    carried = {key for i, key in enumerate(label_keys)
               if any(r[gcp_sql.label_column(i)] is not None for r in cost_records)}
    if carried == set(label_keys):
        return carried
    if kind == "parquet":
        rows = f"SELECT labels FROM read_parquet({checks.sql_files(files)}, union_by_name = true)"
    else:
        rows = f"SELECT j.labels AS labels FROM ({_typed_rows(files)})"
    return carried | {key for (key,) in connection.execute(
        f"SELECT DISTINCT unnest(list_transform(labels, lambda l: l.key)) FROM ({rows})").fetchall() if key}


def collect(source: GcpExportFiles, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: files are always read anew."""
    files, kind = export_files(source)
    params = gcp_sql.parameters(month, label_keys)
    connection = duckdb.connect()
    try:
        try:
            common = load(connection, source, files, kind, label_keys)
            lines = file_lines(connection, files) if kind == "ndjson" else {}
        except duckdb.Error as exc:
            raise checks.unreadable(source, files, kind, exc) from None
        checks.check_read_whole(source, files, kind, connection, TABLE, lines)
        checks.check_no_row_twice(source, files, connection, TABLE,
                                  lambda a, b: _same_rows(connection, files, common, a, b))
        warnings = checks.check_rows(source, files, kind, month, connection, TABLE)
        try:
            cost_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.cost_query(VIEW, len(label_keys)), params))
            total_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.total_query(VIEW), params))
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise DataError(f"source {source.id!r}: cannot aggregate the export files under {source.path}: "
                            f"{first_line}") from None
        carried = _carried_keys(connection, files, kind, label_keys, cost_records)
    finally:
        connection.close()
    if not total_records:
        raise DataError(f"source {source.id!r}: no rows with invoice month {month} "
                        f"in {len(files)} export file(s) under {source.path}")
    return Collection(
        rows=gcp_sql.rows_from_result(cost_records, label_keys, source.id),
        totals=gcp_sql.totals_from_result(total_records),
        label_keys=frozenset(carried),
        warnings=tuple(warnings),
    )

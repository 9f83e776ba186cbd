"""GCP billing export copies on disk, aggregated by DuckDB.

Reads what ``bq extract`` writes from the standard or detailed export table: newline-delimited
JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally ``.gz``) or Parquet, with the export's nested
shape. The aggregation is the BigQuery-dialect text of ``gcp_sql``, transpiled; only aggregated
rows leave DuckDB.

Reconciliation compares two sums over the same rows, so it cannot see a row read twice or a row
the reader dropped. The files are therefore read once, into a DuckDB table that keeps, beside the
columns the queries use, each row's file and a hash of the whole row as written, and every run
proves before it aggregates (``gcp_file_checks``):

- every file was read to its end (the bytes read add up to the file's content length);
- no row appears in two different files (a copy, a re-compressed copy, overlapping extracts);
- every row has the export's shape, finite amounts within range, and can be billed (an invoice
  month, a cost, credit amounts), unless the source accepts unbillable rows and reports them.
"""

from __future__ import annotations

import glob
import json
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
# The same columns as a json_transform structure: only what the queries and checks read.
STRUCTURE = json.dumps({
    "billing_account_id": "VARCHAR", "service": {"description": "VARCHAR"}, "project": {"id": "VARCHAR"},
    "labels": [{"key": "VARCHAR", "value": "VARCHAR"}], "cost": "DOUBLE", "currency": "VARCHAR",
    "credits": [{"amount": "DOUBLE", "type": "VARCHAR"}], "invoice": {"month": "VARCHAR"}, "cost_type": "VARCHAR",
})
# JSON text has no raw control characters (RFC 8259 requires them escaped inside strings), so
# reading each line as one CSV field split on this one never splits a valid row.
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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(_quote(str(f)) for f in files) + "]"


def _reader(files: list[Path], kind: str) -> str:
    """A typed reader of the export columns (for tools and tests; runs use ``load``)."""
    if kind == "parquet":
        return f"read_parquet({_file_list(files)}, union_by_name = true)"
    columns = "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in NDJSON_COLUMNS.items()) + "}"
    return f"read_json({_file_list(files)}, format = 'newline_delimited', columns = {columns})"


def line_reader(files: list[Path]) -> str:
    """Every line of the NDJSON files as text, with its file's name."""
    return (f"read_csv({_file_list(files)}, columns = {{'line': 'VARCHAR'}}, delim = {_quote(UNIT_SEPARATOR)}, "
            "quote = '', escape = '', header = false, auto_detect = false, filename = true, "
            "max_line_size = 16777216)")


def _keep_labels(label_keys: tuple[str, ...]) -> str:
    """Only the labels attribution looks at are kept in the table (the rest cost memory)."""
    keys = ", ".join(_quote(k) for k in label_keys) or "NULL"
    return f"list_filter(r.labels, lambda l: l.key IN ({keys}))"


def load(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str, label_keys: tuple[str, ...]) -> None:
    """Read every file once into ``TABLE`` and define ``VIEW``, the export's columns, to query.

    Per row the table keeps: ``file`` (1-based index into ``files``), ``row_hash`` (of the row as
    written), ``bytes`` (NDJSON: the line's length, for the completeness check), ``problem``
    (``gcp_file_checks.PROBLEMS``: NULL for a sound row), ``problem_line`` (NDJSON: the text of a
    row with a problem, to show it), ``line_number`` (Parquet: the row's number in its file),
    ``invoice`` and ``blank`` (an empty line). For NDJSON it also keeps the columns the queries
    read, parsed once, and ``VIEW`` is over the table; Parquet is columnar, so ``VIEW`` reads the
    few columns the queries need straight from the files, which is faster than keeping them.
    """
    names = _file_list(files)
    if kind == "parquet":
        connection.execute(f"""
            CREATE TABLE {TABLE} AS
            SELECT list_position({names}, filename)::INTEGER AS file,
                   hash(*COLUMNS(* EXCLUDE (filename, file_row_number))) AS row_hash, NULL::BIGINT AS bytes,
                   file_row_number + 1 AS line_number, {checks.problem_expression(text=False)} AS problem,
                   NULL::VARCHAR AS problem_line, r.invoice, false AS blank
            FROM read_parquet({names}, union_by_name = true, filename = true, file_row_number = true) AS r""")
        connection.execute(f"CREATE VIEW {VIEW} AS SELECT * FROM read_parquet({names}, union_by_name = true)")
        return
    source = (f"SELECT list_position({names}, filename)::INTEGER AS file, hash(line) AS row_hash, "
              "strlen(line) AS bytes, NULL::BIGINT AS line_number, line, "
              f"CASE WHEN trim(line) <> '' THEN json_transform(line, {_quote(STRUCTURE)}) END AS r "
              f"FROM {line_reader(files)}")
    connection.execute(f"""
        CREATE TABLE {TABLE} AS
        SELECT file, row_hash, bytes, line_number, problem, CASE WHEN problem IS NOT NULL THEN line END AS problem_line,
               r.billing_account_id, r.service, r.project, {_keep_labels(label_keys)} AS labels, r.cost, r.currency,
               r.credits, r.invoice, r.cost_type, (r IS NULL AND coalesce(trim(line), '') = '') AS blank
        FROM (SELECT *, {checks.problem_expression()} AS problem FROM ({source}))""")
    connection.execute(f"CREATE VIEW {VIEW} AS SELECT billing_account_id, service, project, labels, cost, currency, "
                       f"credits, invoice, cost_type FROM {TABLE} WHERE NOT blank")


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
        rows = f"SELECT labels FROM read_parquet({_file_list(files)}, union_by_name = true)"
    else:
        rows = (f"SELECT json_transform(line, '{{\"labels\": [{{\"key\": \"VARCHAR\"}}]}}').labels AS labels "
                f"FROM {line_reader(files)} WHERE trim(line) <> ''")
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
            load(connection, files, kind, label_keys)
        except duckdb.Error as exc:
            raise checks.unreadable(source, files, kind, exc) from None
        checks.check_read_whole(source, files, kind, connection, TABLE)
        checks.check_no_row_twice(source, files, kind, connection, TABLE)
        warnings = checks.check_rows(source, files, month, connection, TABLE)
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

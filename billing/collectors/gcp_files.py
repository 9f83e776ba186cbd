"""GCP billing export copies on disk, aggregated by DuckDB.

Reads what ``bq extract`` writes from the standard or detailed export table: newline-delimited
JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally ``.gz``) or Parquet, with the export's nested
shape. The aggregation is the BigQuery-dialect text of ``gcp_sql``, transpiled; only aggregated
rows leave DuckDB.

Reconciliation compares two sums over the same rows, so it cannot see a row read twice or a row
the reader dropped. Every run therefore proves before it bills (``gcp_file_checks``):

- every file was read to its end (an NDJSON file's lines, read as plain text apart from the JSON
  reader, add up to the file's content length, and the JSON reader gave a row for each line that
  is not blank; a Parquet file gives the rows its footer records);
- no row appears in two different files (a copy, a re-compressed or re-written copy, overlapping
  extracts);
- every row has the export's shape, finite amounts within range, and can be billed (an invoice
  month, a cost, credit amounts), unless the source accepts unbillable rows and reports them.

**One reading of the rows.** The rows are read once, by one statement (``load``): each row
is checked, hashed, and taken with its billing group (invoice month, account, project, service,
cost type, currency, the labels attribution looks at) and its amounts, the cost and each credit.
From that come the groups (per file, problem, billing group and credit type: the rows the checks
count, and the exact sums) and the row hashes found in more than one file; never a table of
every row in memory (DuckDB works within a memory limit and spills to a
temporary folder of its own, so that a month of tens of millions of rows fits a small machine).
The BigQuery-dialect queries then run over ``VIEW``, the groups shaped as export rows (a group's
cost is the exact sum of its rows' costs, its credits one per type): the same sums as over the
rows themselves, since the queries only add amounts within groups these rows already share.
NDJSON files are also read as plain lines, by a second, cheaper statement that only counts.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import duckdb

from ..config import GcpExportFiles
from ..errors import DataError, SourceError
from ..records import Month
from . import gcp_file_checks as checks
from . import gcp_sql
from .base import Collection, files_at

NDJSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
GROUPS, VIEW = "export_groups", "gcp_billing_export"
# DuckDB's own memory (its buffer pool: the aggregation's hash tables, reading buffers), per
# format; beyond it, the hash set of row identities spills to the temporary folder instead of
# growing. DuckDB's JSON reader takes buffers of tens of MiB while it reads: under 256 MB, ten
# million NDJSON rows ran out of memory.
MEMORY_LIMIT = {"parquet": "256MB", "ndjson": "320MB"}
# The longest line an NDJSON file may have (an export row is a few KiB): DuckDB's reader keeps
# buffers of twice this per file it reads at once.
MAX_LINE = 4 * 2**20

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
# to identify a row are JSON too, so that no value of theirs can stop a run. A record of the wrong
# kind (a list where the export has an object) stops the reader, and ``gcp_file_checks.unreadable``
# finds its line.
READ_COLUMNS = {
    "billing_account_id": "VARCHAR",
    "service": "STRUCT(id VARCHAR, description VARCHAR)",
    "sku": "STRUCT(id JSON)",
    "usage_start_time": "JSON", "usage_end_time": "JSON", "export_time": "JSON",
    "project": "STRUCT(id VARCHAR)",
    "labels": "STRUCT(key VARCHAR, value VARCHAR)[]",
    "location": "STRUCT(zone JSON)",
    "resource": "STRUCT(global_name JSON)",
    "cost": "JSON",
    "currency": "VARCHAR",
    "usage": "STRUCT(amount JSON, unit JSON)",
    "credits": "STRUCT(amount JSON, type VARCHAR, id JSON)[]",
    "invoice": "STRUCT(month VARCHAR)",
    "cost_type": "VARCHAR",
}
# The row as the queries and checks read it (``r``), from what was read (``j``).
TYPED_ROW = ("struct_pack(billing_account_id := j.billing_account_id, service := j.service, project := j.project, "
             "labels := j.labels, cost := TRY_CAST(j.cost::VARCHAR AS DOUBLE), currency := j.currency, "
             "credits := list_transform(j.credits, lambda c: struct_pack(amount := TRY_CAST(c.amount::VARCHAR AS "
             "DOUBLE), type := c.type)), invoice := j.invoice, cost_type := j.cost_type)")
# What identifies an NDJSON row: every column read, amounts as numbers.
IDENTITY = "hash(j, r.cost, r.credits)"
# What identifies a Parquet row: the same columns (records by the fields read of NDJSON rows),
# where the files have them. (A row found in two files is then compared on every column,
# ``_same_rows``, before the run is refused.)
PARQUET_IDENTITY = ("billing_account_id", "service", "sku.id", "usage_start_time", "usage_end_time", "export_time",
                    "project.id", "labels", "location.zone", "resource.global_name", "cost", "currency",
                    "usage.amount", "usage.unit", "credits", "invoice", "cost_type")
# JSON text has no raw control characters (RFC 8259 requires them escaped inside strings), so
# reading each line as one CSV field split on this one never splits a valid row: how the
# completeness check reads the files' lines, apart from the JSON reader.
UNIT_SEPARATOR = "\x1f"


def export_files(source: GcpExportFiles) -> tuple[list[Path], str]:
    """The export files of ``source`` (a folder, a file or a glob) and their format."""
    path = source.path
    files = files_at(path, NDJSON_SUFFIXES + PARQUET_SUFFIXES)
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
    """Every line of the NDJSON files as text (``line``; NULL for an empty line), with its file's name."""
    return (f"read_csv({checks.sql_files(files)}, columns = {{'line': 'VARCHAR'}}, delim = {checks.sql_text(UNIT_SEPARATOR)}, "
            "quote = '', escape = '', header = false, auto_detect = false, filename = true, "
            f"max_line_size = {MAX_LINE}, buffer_size = {2 * MAX_LINE})")


def _typed_rows(files: list[Path]) -> str:
    """SQL: every NDJSON row with its file's index, as read (``j``) and typed (``r``)."""
    columns = "{" + ", ".join(f"{checks.sql_text(k)}: {checks.sql_text(v)}" for k, v in READ_COLUMNS.items()) + "}"
    read = (f"SELECT list_position({checks.sql_files(files)}, filename)::INTEGER AS file, "
            "struct_pack(*COLUMNS(* EXCLUDE (filename))) AS j "
            f"FROM read_json({checks.sql_files(files)}, format = 'newline_delimited', columns = {columns}, "
            f"filename = true, maximum_object_size = {MAX_LINE})")
    return f"SELECT file, j, {TYPED_ROW} AS r FROM ({read})"


def _line_counts(files: list[Path]) -> str:
    """SQL: per file index, the lines that are not blank and the bytes of the lines with their
    newlines, read as plain text apart from the JSON reader. (Blank as Python's bytes.strip()
    sees it; a row starts with ``{``, so only a line that starts with white space is matched
    against the pattern, which would cost as much as the reading for every line.)"""
    blank = ("(line IS NULL OR (ascii(line) IN (9, 10, 11, 12, 13, 32) "
             "AND regexp_full_match(line, '[ \\t\\n\\r\\x0b\\x0c]*')))")
    return (f"SELECT list_position({checks.sql_files(files)}, filename)::INTEGER AS file, "
            f"count(*) FILTER (WHERE NOT {blank}) AS lines, coalesce(sum(strlen(line)), 0) + count(*) AS bytes "
            f"FROM {line_reader(files)} GROUP BY ALL")


def _label_values(label_keys: tuple[str, ...]) -> str:
    """SQL: per label key attribution looks at, the value of the row's first label with that key
    (``label_0``, ...), as the query reads it; the other labels would split groups for nothing."""
    return "".join(f", list_filter(r.labels, lambda l: l.key = {checks.sql_text(key)})[1].value AS {gcp_sql.label_column(i)}"
                   for i, key in enumerate(label_keys))


def _labels_of(label_keys: tuple[str, ...]) -> str:
    """SQL: the labels of a group as the export writes them, from its ``label_<i>`` values."""
    pairs = ", ".join(f"{{'key': {checks.sql_text(key)}, 'value': {gcp_sql.label_column(i)}}}"
                      for i, key in enumerate(label_keys))
    return f"list_filter([{pairs}]::STRUCT(key VARCHAR, value VARCHAR)[], lambda l: l.value IS NOT NULL)"


def _rows_of(kind: str, files: list[Path], common: dict[str, list[str]], label_keys: tuple[str, ...]) -> str:
    """SQL: per row of the files its file, identity, problem, line number (Parquet; NDJSON lines
    are found again in Python when a row has a problem), its billing group, cost and credits."""
    group = (f"r.invoice.month AS month, r.billing_account_id, r.project.id AS project_id, "
             f"r.service.description AS service, r.cost_type, r.currency{_label_values(label_keys)}, r.cost, r.credits")
    if kind == "parquet":
        names = checks.sql_files(files)
        return (f"SELECT list_position({names}, filename)::INTEGER AS file, {_identity(common)} AS row_hash, "
                f"{checks.problem_expression(typed=False)} AS problem, file_row_number + 1 AS line_number, {group} "
                f"FROM read_parquet({names}, union_by_name = true, filename = true, file_row_number = true) AS r")
    return (f"SELECT file, {IDENTITY} AS row_hash, {checks.problem_expression(typed=True)} AS problem, "
            f"NULL::BIGINT AS line_number, {group} FROM ({_typed_rows(files)})")


def load(connection: duckdb.DuckDBPyConnection, source: GcpExportFiles, files: list[Path], kind: str,
         label_keys: tuple[str, ...]) -> dict[str, list[str]]:
    """Read every file once, group what was read into ``GROUPS`` and define ``VIEW``, the
    export's columns, to query.

    What is read is, per row, its cost and then each of its credits (``is_credit``): the file,
    problem (``gcp_file_checks.PROBLEMS``, NULL for a sound row), billing group, exact amount, the
    row's identity (on its cost) and, for Parquet, its line number. ``GROUPS`` holds, where
    ``per_group`` is true, one row per file, problem, billing group and credit type with ``rows``
    (rows read), ``amount`` and, for Parquet, ``first_line`` (of a row with a problem); and where
    ``per_group`` is false, each row hash found in more than one file. One aggregation with two
    grouping sets makes both straight from the reading (its hash table of row hashes spills
    beyond the memory limit). Returns the Parquet columns all files have.
    """
    common = parquet_columns(connection, source, files) if kind == "parquet" else {}
    labels = "".join(f", {gcp_sql.label_column(i)}" for i in range(len(label_keys)))
    # Each row becomes its cost (k = 0) and then each of its credits (k = 1, 2, ...): the costs
    # and the credits per type, as the two halves of the cost query read them.
    items = f"""
        SELECT file, problem, month, billing_account_id, project_id, service, cost_type, currency{labels}, line_number,
               k > 0 AS is_credit, CASE WHEN k > 0 THEN credits[k].type END AS credit_type,
               TRY_CAST(CASE WHEN k = 0 THEN cost ELSE credits[k].amount END AS {gcp_sql.DUCKDB_NUMERIC}) AS amount,
               CASE WHEN k = 0 THEN row_hash END AS row_hash
        FROM (SELECT *, unnest(range(len(coalesce(credits, [])) + 1)) AS k
              FROM ({_rows_of(kind, files, common, label_keys)}))"""
    group = f"file, problem, month, billing_account_id, project_id, service, cost_type, currency{labels}, is_credit, credit_type"
    connection.execute(f"""
        CREATE TABLE {GROUPS} AS
        SELECT GROUPING(row_hash) = 1 AS per_group, {group}, row_hash,
               count(*) FILTER (WHERE NOT is_credit) AS rows,
               min(line_number) FILTER (WHERE problem IS NOT NULL) AS first_line, sum(amount) AS amount
        FROM ({items})
        GROUP BY GROUPING SETS (({group}), (row_hash))
        HAVING GROUPING(row_hash) = 1 OR (row_hash IS NOT NULL AND min(file) <> max(file))""")
    keys = f"month, billing_account_id, project_id, service, cost_type, currency{labels}"
    connection.execute(f"""
        CREATE VIEW {VIEW} AS
        SELECT billing_account_id, {{'description': service}} AS service, {{'id': project_id}} AS project,
               {_labels_of(label_keys)} AS labels,
               cost, currency, credits, {{'month': month}} AS invoice, cost_type
        FROM (SELECT {keys}, sum(amount) FILTER (WHERE NOT is_credit) AS cost,
                     list({{'type': credit_type, 'amount': amount}}) FILTER (WHERE is_credit) AS credits
              FROM (SELECT {keys}, is_credit, credit_type, sum(amount) AS amount
                    FROM {GROUPS} WHERE per_group GROUP BY ALL)
              GROUP BY ALL)""")
    return common


def line_counts(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str) -> dict[int, tuple[int, int]]:
    """Per NDJSON file index: the lines that are not blank and the bytes of the lines, read apart
    from the JSON reader (before it: the two never hold memory at once). Nothing for Parquet."""
    if kind == "parquet":
        return {}
    return {file: (lines, size) for file, lines, size in connection.execute(_line_counts(files)).fetchall()}


def file_counts(connection: duckdb.DuckDBPyConnection, kind: str,
                lines: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    """Per file index: the rows read, and for NDJSON the lines that are not blank and their bytes
    (``line_counts``); for Parquet, the rows twice and no bytes."""
    read = dict(connection.execute(
        f"SELECT file, sum(rows)::BIGINT FROM {GROUPS} WHERE per_group GROUP BY file").fetchall())
    if kind == "parquet":
        return {file: (rows, rows, 0) for file, rows in read.items()}
    return {file: (read.get(file, 0), *lines.get(file, (0, 0))) for file in set(read) | set(lines)}


def parquet_columns(connection: duckdb.DuckDBPyConnection, source: GcpExportFiles,
                    files: list[Path]) -> dict[str, list[str]]:
    """The columns every Parquet file has (an extract made after Google added a column still holds
    the same rows as one made before), with their type in each file; each file checked to have
    the export's columns."""
    common: dict[str, list[str]] | None = None
    for path in files:
        columns = {row[0]: row[1] for row in connection.execute(
            f"DESCRIBE SELECT * FROM read_parquet({checks.sql_files([path])})").fetchall()}
        problem = checks.parquet_shape(source, path, columns)
        if problem:
            raise problem
        common = {name: [kind] for name, kind in columns.items()} if common is None else {
            name: kinds + [columns[name]] for name, kinds in common.items() if name in columns}
    return dict(sorted((common or {}).items()))


def _identity(common: dict[str, list[str]]) -> str:
    """SQL: the hash of what identifies a Parquet row, of the columns (and record fields) that
    every file has."""
    parts = []
    for name in PARQUET_IDENTITY:
        column, _, field = name.partition(".")
        if column not in common:
            continue
        whole = _columns_of([column])
        has_field = field and all(re.search(rf'\b"?{field}"? ', kind) for kind in common[column])
        parts.append(f"{whole}.{field}" if has_field else whole)
    return f"hash({', '.join(parts)})"


def _columns_of(names: list[str]) -> str:
    return ", ".join(f'r."{name.replace(chr(34), chr(34) * 2)}"' for name in names)


def _pairs_of_files(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str,
                    common: dict[str, list[str]], label_keys: tuple[str, ...]) -> list[tuple[int, int]]:
    """The pairs of file indexes that share a row hash found in more than one file, by reading the
    files again (only when such a hash was found)."""
    rows = f"({_rows_of(kind, files, common, label_keys)})"
    return connection.execute(f"""
        WITH shared AS (SELECT row_hash FROM {GROUPS} WHERE NOT per_group),
        per AS (SELECT DISTINCT row_hash, file FROM {rows} WHERE row_hash IN (SELECT row_hash FROM shared))
        SELECT DISTINCT a.file, b.file FROM per a JOIN per b ON a.row_hash = b.row_hash AND a.file < b.file
        ORDER BY a.file, b.file""").fetchall()


def _same_rows(connection: duckdb.DuckDBPyConnection, files: list[Path], common: dict[str, list[str]],
               first: int, second: int) -> int:
    """How many rows of file ``second`` are also in file ``first``, compared on the rows
    themselves (every column, as values), not on their hashes."""
    pair = [files[first - 1], files[second - 1]]
    if common:  # Parquet
        counts = [Counter(text for (text,) in connection.execute(
            f"SELECT row({_columns_of(list(common))})::VARCHAR FROM read_parquet({checks.sql_files(files)}, union_by_name = true, "
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
    the files hold, to tell the two apart and suggest a spelling (the files are read again)."""
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


class _Connection:
    """A DuckDB connection under the ``MEMORY_LIMIT`` of the files' format, spilling to a
    temporary folder of its own (removed afterwards), that keeps no order it is not asked for."""

    def __init__(self, kind: str):
        self.limit = MEMORY_LIMIT[kind]

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.spill = tempfile.mkdtemp(prefix="billing-duckdb-")
        self.connection = duckdb.connect(config={
            "memory_limit": self.limit, "temp_directory": self.spill, "preserve_insertion_order": False})
        return self.connection

    def __exit__(self, *exc) -> None:
        self.connection.close()
        shutil.rmtree(self.spill, ignore_errors=True)


def collect(source: GcpExportFiles, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: files are always read anew."""
    files, kind = export_files(source)
    params = gcp_sql.parameters(month, label_keys)
    with _Connection(kind) as connection:
        try:
            lines = line_counts(connection, files, kind)
            common = load(connection, source, files, kind, label_keys)
            counts = file_counts(connection, kind, lines)
        except duckdb.Error as exc:
            raise checks.unreadable(source, files, kind, exc) from None
        checks.check_read_whole(source, files, kind, connection, counts)
        checks.check_no_row_twice(
            source, files, connection, GROUPS,
            lambda: _pairs_of_files(connection, files, kind, common, label_keys),
            lambda a, b: _same_rows(connection, files, common, a, b))
        warnings = checks.check_rows(source, files, kind, month, connection, GROUPS)
        try:
            cost_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.cost_query(VIEW, len(label_keys)), params))
            total_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.total_query(VIEW), params))
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise DataError(f"source {source.id!r}: cannot aggregate the export files under {source.path}: "
                            f"{first_line}") from None
        carried = _carried_keys(connection, files, kind, label_keys, cost_records)
    if not total_records:
        raise DataError(f"source {source.id!r}: no rows with invoice month {month} "
                        f"in {len(files)} export file(s) under {source.path}")
    return Collection(
        rows=gcp_sql.rows_from_result(cost_records, label_keys, source.id),
        totals=gcp_sql.totals_from_result(total_records),
        label_keys=frozenset(carried),
        warnings=tuple(warnings),
    )

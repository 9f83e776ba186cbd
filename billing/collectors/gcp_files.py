"""GCP billing export copies on disk, aggregated by DuckDB.

Reads what ``bq extract`` writes from the standard or detailed export table: newline-delimited
JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally ``.gz``) or Parquet, with the export's nested
shape. The aggregation is the BigQuery-dialect text of ``gcp_sql``, transpiled; only aggregated
rows leave DuckDB.

Reconciliation compares two sums over the same rows, so it cannot see a row read twice or a row
the reader dropped. Every run therefore proves before it bills (``gcp_file_checks``):

- every file was read to its end (an NDJSON file's lines, read as plain text, add up to the
  file's content length, and each line was parsed into a row; a Parquet file gives the rows its
  footer records);
- no row appears in two different files (a copy, a re-compressed or re-written copy, overlapping
  extracts);
- every row has the export's shape, finite amounts within range, and can be billed (an invoice
  month, a cost, credit amounts), unless the source accepts unbillable rows and reports them.

**One reading of the files.** The files are read once, by one statement (``load``): each row
is checked, hashed, and taken with its billing group (invoice month, account, project, service,
cost type, currency, the labels attribution looks at) and its amounts, the cost and each credit.
From that come the groups (per file, problem, billing group and credit type: the rows, lines and
bytes the checks count, and the exact sums) and the row hashes found in more than one file;
never a table of every row in memory (DuckDB works within a memory limit and spills to a
temporary folder of its own, so that a month of tens of millions of rows fits a small machine).
The BigQuery-dialect queries then run over ``VIEW``, the groups shaped as export rows (a group's
cost is the exact sum of its rows' costs, its credits one per type): the same sums as over the
rows themselves, since the queries only add amounts within groups these rows already share.
"""

from __future__ import annotations

import glob
import json
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
from .base import Collection

NDJSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
ROWS, GROUPS, VIEW = "export_rows", "export_groups", "gcp_billing_export"
# DuckDB's own memory (its buffer pool: the aggregation's hash tables, reading buffers); beyond
# it, the hash set of row identities spills to the temporary folder instead of growing.
MEMORY_LIMIT = "256MB"
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
# What is parsed of each NDJSON line: the columns the queries and checks need, and the columns
# that tell one row from another, so that a row is recognised in two files whatever its
# formatting (spacing, key order, 1.5 or 1.50). Amounts are kept as JSON text, to tell a number
# from ``true`` or ``"5"``; the columns read only to identify a row are JSON or records of JSON,
# so that no value of theirs can stop a run. The records the billing depends on (service,
# project, labels, credits, invoice) are taken as JSON text and checked for their shape below.
LINE_STRUCTURE = {
    "billing_account_id": "VARCHAR", "service": "JSON", "sku": {"id": "JSON"},
    "usage_start_time": "JSON", "usage_end_time": "JSON", "export_time": "JSON", "project": "JSON",
    "labels": "JSON", "location": {"zone": "JSON"}, "resource": {"global_name": "JSON"},
    "cost": "JSON", "currency": "VARCHAR", "usage": {"amount": "JSON", "unit": "JSON"}, "credits": "JSON",
    "invoice": "JSON", "cost_type": "VARCHAR",
}
# Each record's value, from its JSON text (``x.<name>``), leniently (a key the extract left out
# reads as NULL); the lists element by element (``label_items``, ``credit_items``: each element's
# JSON text), so that an element that is not an object is seen.
ITEMS = "json_transform(x.labels, '[\"JSON\"]') AS label_items, json_transform(x.credits, '[\"JSON\"]') AS credit_items"
RECORDS = {
    "service": "json_transform(x.service, '{\"id\": \"VARCHAR\", \"description\": \"VARCHAR\"}')",
    "project": "json_transform(x.project, '{\"id\": \"VARCHAR\"}')",
    "labels": "list_transform(label_items, lambda e: json_transform(e, '{\"key\": \"VARCHAR\", \"value\": \"VARCHAR\"}'))",
    "credits": ("list_transform(credit_items, "
                "lambda e: json_transform(e, '{\"amount\": \"JSON\", \"type\": \"VARCHAR\", \"id\": \"JSON\"}'))"),
    "invoice": "json_transform(x.invoice, '{\"month\": \"VARCHAR\"}')",
}
# The row as read (``j``): every column of LINE_STRUCTURE, records as values.
READ_ROW = ("struct_pack(billing_account_id := x.billing_account_id, service := {service}, sku := x.sku, "
            "usage_start_time := x.usage_start_time, usage_end_time := x.usage_end_time, export_time := x.export_time, "
            "project := {project}, labels := {labels}, location := x.location, "
            "resource := x.resource, cost := x.cost, currency := x.currency, usage := x.usage, credits := {credits}, "
            "invoice := {invoice}, cost_type := x.cost_type)").format(**RECORDS)
# What is wrong with the shape of a record, from its JSON text (DuckDB writes it compact, so its
# first character is its kind): ``gcp_file_checks.row_problem``'s shape problems, in its order.
_OBJECT = "(x.{name} IS NOT NULL AND left(x.{name}::VARCHAR, 1) <> '{{')"
_LIST = ("(x.{name} IS NOT NULL AND (left(x.{name}::VARCHAR, 1) <> '[' OR list_bool_or(list_transform("
         "{items}, lambda e: coalesce(left(e::VARCHAR, 1), '') <> '{{'))))")
SHAPE = ("CASE " + " ".join(f"WHEN {check.format(name=name, items=items)} THEN 'shape:{name}'" for name, check, items in (
    ("service", _OBJECT, ""), ("project", _OBJECT, ""), ("invoice", _OBJECT, ""), ("labels", _LIST, "label_items"),
    ("credits", _LIST, "credit_items"))) + " END")
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
# reading each line as one CSV field split on this one never splits a valid row: how the lines of
# the files are read, once, before each is parsed.
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
    """Every line of the NDJSON files as text (``line``; NULL for an empty line), with its file's name."""
    return (f"read_csv({checks.sql_files(files)}, columns = {{'line': 'VARCHAR'}}, delim = {checks.sql_text(UNIT_SEPARATOR)}, "
            "quote = '', escape = '', header = false, auto_detect = false, filename = true, "
            f"max_line_size = {MAX_LINE}, buffer_size = {2 * MAX_LINE})")


def _typed_rows(files: list[Path]) -> str:
    """SQL: every line of the NDJSON files with its file's index, its bytes (with its newline),
    whether it is blank, whether it was parsed into a row, what is wrong with the shape of the
    row's records (``shape``), and the row, as read (``j``) and typed (``r``); NULL for blank lines.
    Each step is a query of its own, so that DuckDB parses each piece of JSON once."""
    structure = checks.sql_text(json.dumps(LINE_STRUCTURE))
    # (Blank as Python's bytes.strip() sees it; DuckDB's trim() would cost as much as the parse.)
    lines = (f"SELECT list_position({checks.sql_files(files)}, filename)::INTEGER AS file, "
             "coalesce(strlen(line), 0) + 1 AS line_bytes, "
             "coalesce(regexp_full_match(line, '[ \\t\\n\\r\\x0b\\x0c]*'), true) AS blank, line "
             f"FROM {line_reader(files)}")
    parsed = (f"SELECT file, line_bytes, blank, json_transform(CASE WHEN NOT blank THEN line END, {structure}) AS x "
              f"FROM ({lines})")
    items = f"SELECT file, line_bytes, blank, x, {ITEMS} FROM ({parsed})"
    read = f"SELECT file, line_bytes, blank, x IS NOT NULL AS parsed, {SHAPE} AS shape, {READ_ROW} AS j FROM ({items})"
    return f"SELECT file, line_bytes, blank, parsed, shape, j, {TYPED_ROW} AS r FROM ({read})"


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
    are found again in Python when a row has a problem), whether it was parsed, the bytes of its
    line (NDJSON), its billing group, cost and credits."""
    group = (f"r.invoice.month AS month, r.billing_account_id, r.project.id AS project_id, "
             f"r.service.description AS service, r.cost_type, r.currency{_label_values(label_keys)}, r.cost, r.credits")
    if kind == "parquet":
        names = checks.sql_files(files)
        return (f"SELECT list_position({names}, filename)::INTEGER AS file, {_identity(common)} AS row_hash, "
                f"{checks.problem_expression(typed=False)} AS problem, file_row_number + 1 AS line_number, "
                f"true AS parsed, false AS blank, 0 AS line_bytes, {group} "
                f"FROM read_parquet({names}, union_by_name = true, filename = true, file_row_number = true) AS r")
    return (f"SELECT file, CASE WHEN parsed THEN {IDENTITY} END AS row_hash, "
            f"CASE WHEN parsed THEN {checks.problem_expression(typed=True)} END AS problem, "
            f"NULL::BIGINT AS line_number, parsed, blank, line_bytes, {group} "
            f"FROM ({_typed_rows(files)})")


def load(connection: duckdb.DuckDBPyConnection, source: GcpExportFiles, files: list[Path], kind: str,
         label_keys: tuple[str, ...]) -> dict[str, list[str]]:
    """Read every file once, group what was read into ``GROUPS`` and define ``VIEW``, the
    export's columns, to query.

    What is read is, per row, its cost and then each of its credits (``is_credit``): the file,
    problem (``gcp_file_checks.PROBLEMS``, NULL for a sound row), billing group, exact amount, the
    row's identity (on its cost) and, for Parquet, its line number, for NDJSON whether its line
    was blank or parsed and the line's bytes; NDJSON keeps it in ``ROWS``, which DuckDB holds
    within ``MEMORY_LIMIT`` and the rest in its temporary folder. ``GROUPS`` holds, where ``per_group`` is true, one row per file,
    problem, billing group and credit type with ``rows`` (rows read), ``amount``, for Parquet
    ``first_line`` (of a row with a problem), for NDJSON ``lines`` (lines that are not blank) and
    ``bytes`` (of the lines, with their newlines); and where ``per_group`` is false, each row
    hash found in more than one file. Returns the Parquet columns all files have.
    """
    common = parquet_columns(connection, source, files) if kind == "parquet" else {}
    labels = "".join(f", {gcp_sql.label_column(i)}" for i in range(len(label_keys)))
    lines = "line_number" if kind == "parquet" else "parsed, blank, line_bytes"
    # Each row becomes its cost (k = 0) and then each of its credits (k = 1, 2, ...): the costs
    # and the credits per type, as the two halves of the cost query read them.
    items = f"""
        SELECT file, problem, month, billing_account_id, project_id, service, cost_type, currency{labels}, {lines},
               k > 0 AS is_credit, CASE WHEN k > 0 THEN credits[k].type END AS credit_type,
               TRY_CAST(CASE WHEN k = 0 THEN cost ELSE credits[k].amount END AS {gcp_sql.DUCKDB_NUMERIC}) AS amount,
               CASE WHEN k = 0 THEN row_hash END AS row_hash
        FROM (SELECT *, unnest(range(len(coalesce(credits, [])) + 1)) AS k
              FROM ({_rows_of(kind, files, common, label_keys)}))"""
    if kind == "parquet":
        counts = ("count(*) FILTER (WHERE NOT is_credit) AS rows, NULL::BIGINT AS lines, NULL::BIGINT AS bytes, "
                  "min(line_number) FILTER (WHERE problem IS NOT NULL) AS first_line")
    else:
        counts = ("count(*) FILTER (WHERE NOT is_credit AND parsed) AS rows, "
                  "count(*) FILTER (WHERE NOT is_credit AND NOT blank) AS lines, "
                  "sum(line_bytes) FILTER (WHERE NOT is_credit) AS bytes, NULL::BIGINT AS first_line")
    group = f"file, problem, month, billing_account_id, project_id, service, cost_type, currency{labels}, is_credit, credit_type"
    if kind == "parquet":
        # Parquet is read by several threads at once: one aggregation with two grouping sets
        # makes the groups and the row hashes in two files straight from the reading, which
        # costs less than keeping the rows (its hash table of row hashes spills as it should).
        connection.execute(f"""
            CREATE TABLE {GROUPS} AS
            SELECT GROUPING(row_hash) = 1 AS per_group, {group}, row_hash, {counts}, sum(amount) AS amount
            FROM ({items})
            GROUP BY GROUPING SETS (({group}), (row_hash))
            HAVING GROUPING(row_hash) = 1 OR (row_hash IS NOT NULL AND min(file) <> max(file))""")
    else:
        # An NDJSON reading is mostly parsing; the rows are kept (spilling beyond the memory
        # limit) and grouped twice: the same aggregation straight from the parse ran out of
        # memory at ten million rows.
        connection.execute(f"CREATE TABLE {ROWS} AS {items}")
        connection.execute(f"""
            CREATE TABLE {GROUPS} AS
            SELECT true AS per_group, {group}, NULL::UBIGINT AS row_hash, {counts}, sum(amount) AS amount
            FROM {ROWS} GROUP BY {group}""")
        connection.execute(f"""
            INSERT INTO {GROUPS} (per_group, row_hash)
            SELECT false, row_hash FROM {ROWS} WHERE row_hash IS NOT NULL
            GROUP BY row_hash HAVING min(file) <> max(file)""")
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


def file_counts(connection: duckdb.DuckDBPyConnection, kind: str) -> dict[int, tuple[int, int, int]]:
    """Per file index: the rows read, the lines that are not blank and the bytes of the lines
    (for Parquet, the rows twice and no bytes)."""
    lines, size = ("sum(lines)", "coalesce(sum(bytes), 0)") if kind == "ndjson" else ("sum(rows)", "0")
    return {file: (rows, lines, size) for file, rows, lines, size in connection.execute(
        f"SELECT file, sum(rows)::BIGINT, {lines}::BIGINT, {size}::BIGINT FROM {GROUPS} WHERE per_group "
        "GROUP BY file").fetchall()}


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
    """The pairs of file indexes that share a row hash found in more than one file: from the rows
    kept (NDJSON), or by reading the Parquet files again (only when such a hash was found)."""
    rows = ROWS if kind == "ndjson" else f"({_rows_of(kind, files, common, label_keys)})"
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
    """A DuckDB connection under ``MEMORY_LIMIT``, spilling to a temporary folder of its own
    (removed afterwards), that keeps no order it is not asked for."""

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.spill = tempfile.mkdtemp(prefix="billing-duckdb-")
        self.connection = duckdb.connect(config={
            "memory_limit": MEMORY_LIMIT, "temp_directory": self.spill, "preserve_insertion_order": False})
        return self.connection

    def __exit__(self, *exc) -> None:
        self.connection.close()
        shutil.rmtree(self.spill, ignore_errors=True)


def collect(source: GcpExportFiles, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: files are always read anew."""
    files, kind = export_files(source)
    params = gcp_sql.parameters(month, label_keys)
    with _Connection() as connection:
        try:
            common = load(connection, source, files, kind, label_keys)
        except duckdb.Error as exc:
            raise checks.unreadable(source, files, kind, exc) from None
        checks.check_read_whole(source, files, kind, connection, file_counts(connection, kind))
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

"""GCP billing export copies on disk, aggregated by DuckDB.

Reads what ``bq extract`` writes from the standard or detailed export table: newline-delimited
JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally ``.gz``) or Parquet, with the export's nested
shape. The aggregation is the BigQuery-dialect text of ``gcp_sql``, transpiled; only aggregated
rows leave DuckDB.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

import duckdb

from ..config import GcpExportFiles
from ..errors import DataError, SourceError
from ..records import Month
from . import gcp_sql
from .base import Collection

NDJSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
VIEW = "gcp_billing_export"

# The export columns the queries read, typed as the export defines them (cost is FLOAT64 there;
# the query casts it to NUMERIC). Columns absent from a file read as NULL.
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
    _refuse_copies(source, files)
    kinds = {"parquet" if p.name.endswith(PARQUET_SUFFIXES) else "ndjson" for p in files}
    if len(kinds) > 1:
        raise SourceError(f"source {source.id!r}: {path} mixes NDJSON and Parquet files; "
                          "give each format its own source")
    return files, kinds.pop()


def _refuse_copies(source: GcpExportFiles, files: list[Path]) -> None:
    """Two files with the same bytes are one export read twice: every cost would double."""
    by_size: dict[int, list[Path]] = {}
    for path in files:
        by_size.setdefault(path.stat().st_size, []).append(path)
    seen: dict[str, Path] = {}
    for group in (g for g in by_size.values() if len(g) > 1):
        for path in group:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                raise SourceError(f"source {source.id!r}: {path} is a copy of {seen[digest]}; remove one, "
                                  "or every cost in it would be billed twice")
            seen[digest] = path


def _reader(files: list[Path], kind: str) -> str:
    names = "[" + ", ".join(_quote(str(f)) for f in files) + "]"
    if kind == "parquet":
        return f"read_parquet({names}, union_by_name = true)"
    columns = "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in NDJSON_COLUMNS.items()) + "}"
    return f"read_json({names}, format = 'newline_delimited', columns = {columns})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _records(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = connection.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def collect(source: GcpExportFiles, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: files are always read anew."""
    files, kind = export_files(source)
    params = gcp_sql.parameters(month, label_keys)
    connection = duckdb.connect()
    try:
        connection.execute(f"CREATE VIEW {VIEW} AS SELECT * FROM {_reader(files, kind)}")
        cost_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.cost_query(VIEW, len(label_keys)), params))
        total_records = _records(connection, gcp_sql.to_duckdb(gcp_sql.total_query(VIEW), params))
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise DataError(f"source {source.id!r}: cannot read the export files under {source.path}: "
                        f"{first_line}") from None
    finally:
        connection.close()
    if not total_records:
        raise DataError(f"source {source.id!r}: no rows with invoice month {month} "
                        f"in {len(files)} export file(s) under {source.path}")
    return Collection(
        rows=gcp_sql.rows_from_result(cost_records, label_keys, source.id),
        totals=gcp_sql.totals_from_result(total_records),
        label_keys=frozenset(label_keys),
    )

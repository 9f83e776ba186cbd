"""Checks that every row of the export files is read exactly once, and can be billed.

Reconciliation compares two sums over the rows that were read; it cannot see a row the reader
dropped or a row that two files hold. These checks run on the table ``gcp_files.load`` fills, in
one pass over it each, so they cost little beside reading the files:

- **read whole**: for NDJSON the bytes of the lines read (plus their newlines) must equal the
  file's content length: the size of a plain file, or the length a gzip file records in its last
  bytes. When the two differ (Windows line ends, a gzip made of several members, a damaged or
  cut-short file), the file is read again in Python, which checks every gzip checksum to the end
  and counts the lines: the run goes on only if DuckDB read every one. For Parquet, the rows read
  must equal the row count in each file's footer.
- **no row twice**: a row (all its columns, as written) found in two different files is one export
  read twice (a copy, a re-compressed copy, overlapping extracts). Rows are compared by a 64-bit
  hash; a match is confirmed on the text itself before the run is refused. The same row twice in
  one file is legitimate (two identical usage rows) and allowed.
- **rows**: each row must have the export's shape (objects and lists where the export has them),
  finite amounts within ``MAX_AMOUNT``, and what billing needs: an invoice month, a cost and
  credit amounts. Rows without them are refused, one line naming the file, the first such line
  and the count, unless the source says ``unbillable_rows: report``: then rows without an invoice
  month are left out, missing amounts count as zero, and the run warns with the same detail.

Errors name the file and line (``export-000.json.gz:1234: ...``).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Iterator

import duckdb

from ..config import GcpExportFiles
from ..errors import DataError
from ..records import Month

MAX_AMOUNT = 10**13  # no single export row costs ten trillion in any currency
SHOWN = 160  # characters of a row shown in a message

# What a row's ``problem`` code means, and whether ``unbillable_rows: report`` may accept it.
PROBLEMS: dict[str, tuple[str, bool]] = {
    "not_object": ("is not a JSON object (the export has one object per line)", False),
    "shape:service": ("has a service that is not an object {id, description}", False),
    "shape:project": ("has a project that is not an object {id, name, ...}", False),
    "shape:invoice": ("has an invoice that is not an object {month}", False),
    "shape:labels": ("has labels that are not a list of {key, value} with text values", False),
    "shape:credits": ("has credits that are not a list of {amount, type, ...}", False),
    "shape:cost": ("has a cost that is not a number", False),
    "number:cost": (f"has a cost that is not a finite number below {MAX_AMOUNT:.0e}", False),
    "number:credits": (f"has a credit amount that is not a finite number below {MAX_AMOUNT:.0e}", False),
    "missing:currency": ("has no currency", False),
    "missing:billing_account_id": ("has no billing_account_id", False),
    "unbillable:invoice_month": ("has no invoice month (invoice.month, YYYYMM), so no invoice can bill it", True),
    "unbillable:cost": ("has no cost (null or absent)", True),
    "unbillable:credit_amount": ("has a credit without an amount", True),
}
# Problems that only matter for the month billed: another month's run reports its own rows.
THIS_MONTH_ONLY = ("unbillable:cost", "unbillable:credit_amount", "missing:currency", "missing:billing_account_id")
REPORT_WHAT = {
    "unbillable:invoice_month": "left out (no invoice month)",
    "unbillable:cost": "read with a cost of 0 (no cost)",
    "unbillable:credit_amount": "read with a credit of 0 (a credit without an amount)",
}


def _present_but(field: str, json_kind: str, read: str = "") -> str:
    """SQL: the row has ``field`` and it is not null, yet it was not read as a ``json_kind``
    (DuckDB reads a value of another kind as NULL, or an object's ``read`` member as NULL)."""
    return (f"(r.{field}{read} IS NULL AND line IS NOT NULL AND coalesce(json_type(line, '$.{field}'), 'NULL') "
            f"NOT IN ('NULL', '{json_kind}'))")


def problem_expression(text: bool = True) -> str:
    """SQL over ``r`` (the row's columns) and, with ``text`` (NDJSON), ``line`` (the row as
    written): the row's problem code, or NULL. ``json_type`` re-reads the text only for rows whose
    column came out NULL, so a sound row costs a few comparisons. Parquet rows have the shape
    their file's schema gives them, so only their values are checked."""
    finite = f"(isfinite(x) AND abs(x) < {MAX_AMOUNT})"
    month = r"regexp_full_match(r.invoice.month, '\d{4}(0[1-9]|1[0-2])')"
    shape = [
        ("r IS NULL AND coalesce(trim(line), '') = ''", "NULL"),
        ("r IS NULL OR (r.invoice IS NULL AND r.cost IS NULL AND coalesce(json_type(line), 'OBJECT') <> 'OBJECT')",
         "'not_object'"),
        (_present_but("service", "OBJECT", ".description"), "'shape:service'"),
        (_present_but("project", "OBJECT", ".id"), "'shape:project'"),
        (_present_but("invoice", "OBJECT", ".month"), "'shape:invoice'"),
        (_present_but("labels", "ARRAY"), "'shape:labels'"),
        (_present_but("credits", "ARRAY"), "'shape:credits'"),
        (_present_but("cost", "NUMBER").replace("'NUMBER'", "'DOUBLE', 'BIGINT', 'UBIGINT'"), "'shape:cost'"),
    ] if text else []
    values = [
        ("list_bool_or(list_transform(r.labels, lambda l: l.key IS NULL OR l.value IS NULL))", "'shape:labels'"),
        (f"r.cost IS NOT NULL AND NOT {finite.replace('x', 'r.cost')}", "'number:cost'"),
        (f"len(r.credits) > 0 AND list_bool_or(list_transform(r.credits, lambda c: c.amount IS NOT NULL AND NOT "
         f"{finite.replace('x', 'c.amount')}))", "'number:credits'"),
        (f"r.invoice.month IS NULL OR NOT {month}", "'unbillable:invoice_month'"),
        ("r.cost IS NULL", "'unbillable:cost'"),
        ("len(r.credits) > 0 AND list_bool_or(list_transform(r.credits, lambda c: c.amount IS NULL))",
         "'unbillable:credit_amount'"),
        ("r.currency IS NULL", "'missing:currency'"),
        ("r.billing_account_id IS NULL", "'missing:billing_account_id'"),
    ]
    return "CASE " + " ".join(f"WHEN {condition} THEN {code}" for condition, code in shape + values) + " END"


# --- read whole -------------------------------------------------------------------------------

def _recorded_length(path: Path) -> int | None:
    """The content length a file declares: a plain file's size, or a gzip file's ISIZE (its
    length modulo 2**32, in its last four bytes); ``None`` when a gzip file is too short."""
    size = path.stat().st_size
    if not path.name.endswith(".gz"):
        return size
    if size < 18:
        return None
    with path.open("rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _lines(path: Path) -> Iterator[bytes]:
    """Every line of a file, decompressed; gzip checksums and lengths are verified to the end."""
    try:
        with _open(path) as handle:
            yield from handle
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataError(f"{path}: the file is damaged or cut short ({error}); it cannot be read whole, "
                        "so no cost in it can be billed: copy or extract it again") from None


def line_count(path: Path) -> int:
    """The lines a file holds, read in full (the last line may lack its newline)."""
    return sum(1 for _ in _lines(path))


def check_read_whole(source: GcpExportFiles, files: list[Path], kind: str,
                     connection: duckdb.DuckDBPyConnection, table: str) -> None:
    read = {index: (rows, size) for index, rows, size in connection.execute(
        f"SELECT file, count(*), coalesce(sum(bytes), 0) FROM {table} GROUP BY file").fetchall()}
    if kind == "parquet":
        declared = dict(connection.execute(
            f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({_names(files)}) GROUP BY file_name").fetchall())
        for index, path in enumerate(files, start=1):
            rows = read.get(index, (0, 0))[0]
            if rows != declared.get(str(path), 0):
                raise DataError(f"{path}: its footer records {declared.get(str(path), 0)} rows but {rows} were read; "
                                "the file is damaged: copy or extract it again")
        return
    for index, path in enumerate(files, start=1):
        rows, size = read.get(index, (0, 0))
        expected = _recorded_length(path)
        got = size + rows  # every line and its newline
        modulo = 2**32 if path.name.endswith(".gz") else None
        candidates = {got, got - 1} if rows else {0}  # the last line may lack its newline
        if expected is not None and expected in {c % modulo if modulo else c for c in candidates}:
            continue
        held = line_count(path)
        if held != rows:
            raise DataError(f"source {source.id!r}: {path} holds {held} lines but {rows} were read; "
                            "the file was not read whole, so the run stops rather than bill part of it")


def _names(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


# --- no row twice ------------------------------------------------------------------------------

def check_no_row_twice(source: GcpExportFiles, files: list[Path], kind: str,
                       connection: duckdb.DuckDBPyConnection, table: str) -> None:
    (shared,) = connection.execute(
        f"SELECT count(*) FROM (SELECT row_hash FROM {table} WHERE NOT blank GROUP BY row_hash "
        "HAVING min(file) <> max(file))").fetchone()
    if not shared:
        return
    pairs = connection.execute(f"""
        WITH shared AS (SELECT row_hash FROM {table} WHERE NOT blank GROUP BY row_hash HAVING min(file) <> max(file)),
        per AS (SELECT row_hash, file, count(*) AS n FROM {table} WHERE row_hash IN (SELECT row_hash FROM shared)
                GROUP BY row_hash, file)
        SELECT a.file, b.file, sum(least(a.n, b.n)) AS rows, list(a.row_hash ORDER BY a.row_hash)[1:50] AS sample
        FROM per a JOIN per b ON a.row_hash = b.row_hash AND a.file < b.file
        GROUP BY a.file, b.file ORDER BY rows DESC, a.file, b.file""").fetchall()
    confirmed = [(a, b, rows) for a, b, rows, sample in pairs
                 if _same_rows(files[a - 1], files[b - 1], sample, kind, connection)]
    if not confirmed:
        return  # hash collisions only: distinct rows
    first, second, rows = confirmed[0]
    more = f"; {len(confirmed) - 1} more pair(s) of files share rows too" if len(confirmed) > 1 else ""
    raise DataError(
        f"source {source.id!r}: {rows} row(s) of {files[second - 1]} are also in {files[first - 1]} (the same export "
        f"rows in two files: a copy, a re-compressed copy or overlapping extracts){more}; remove the copy, or every "
        "cost in it would be billed twice")


def _same_rows(first: Path, second: Path, hashes: list[int], kind: str,
               connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether a row with one of ``hashes`` is really in both files (not a hash collision)."""
    wanted = ", ".join(str(h) for h in hashes)
    from .gcp_files import line_reader  # the reader of the text the hashes were made of

    if kind == "parquet":
        sql = (f"SELECT filename, * EXCLUDE (filename) FROM read_parquet({_names([first, second])}, "
               "union_by_name = true, filename = true) AS t WHERE hash(*COLUMNS(* EXCLUDE (filename))) "
               f"IN ({wanted})")
    else:
        sql = f"SELECT filename, line FROM {line_reader([first, second])} WHERE hash(line) IN ({wanted})"
    seen: dict[str, set] = {}
    for name, *row in connection.execute(sql).fetchall():
        seen.setdefault(name, set()).add(repr(row))
    return bool(seen.get(str(first), set()) & seen.get(str(second), set()))


# --- rows --------------------------------------------------------------------------------------

def check_rows(source: GcpExportFiles, files: list[Path], month: Month,
               connection: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Refuse rows with problems (see ``PROBLEMS``); return warnings for those the source accepts."""
    found = connection.execute(f"""
        SELECT problem, file, count(*) AS n, arg_min(problem_line, rowid), arg_min(line_number, rowid)
        FROM {table}
        WHERE problem IS NOT NULL AND (problem NOT IN ({', '.join(repr(p) for p in THIS_MONTH_ONLY)})
                                       OR invoice.month = ?)
        GROUP BY problem, file ORDER BY min(rowid)""", [month.compact]).fetchall()
    accept = getattr(source, "unbillable_rows", "refuse") == "report"
    refused = [f for f in found if not (accept and PROBLEMS[f[0]][1])]
    if refused:
        problem, file, count, text, number = refused[0]
        others = sum(f[2] for f in refused) - count
        described, acceptable = PROBLEMS[problem]
        hint = " (or set `unbillable_rows: report` on the source to bill the other rows and list these)" \
            if acceptable else ""
        more = f", and {others} other row(s) with problems" if others else ""
        raise DataError(f"source {source.id!r}: {_where(files[file - 1], text, number)}: the row {described}; {count} such "
                        f"row(s) in that file{more}{hint}: {_show(text)}")
    warnings = []
    for problem, file, count, text, number in found:
        warnings.append(f"{count} row(s) of {files[file - 1].name} {REPORT_WHAT[problem]} "
                        f"(first: {_where(files[file - 1], text, number)})")
    return warnings


def _where(path: Path, text: str | None, number: int | None) -> str:
    """``file:line`` of a row: Parquet rows carry their number; an NDJSON row is found by its text."""
    if number is None and text is not None:
        wanted = text.encode("utf-8")
        for count, line in enumerate(_lines(path), start=1):
            if line.rstrip(b"\r\n") == wanted:
                number = count
                break
    return f"{path}:{number}" if number is not None else str(path)


def _show(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


# --- unreadable files ----------------------------------------------------------------------------

def _shape(value: object) -> str | None:
    """What is wrong with the shape of one parsed export row, or ``None``."""
    if not isinstance(value, dict):
        return PROBLEMS["not_object"][0]
    expected = {"service": dict, "project": dict, "invoice": dict, "labels": list, "credits": list}
    for field, kind in expected.items():
        if value.get(field) is not None and not isinstance(value[field], kind):
            return (f"has {field} as a JSON {type(value[field]).__name__.replace('dict', 'object')}, "
                    f"where the export has {'an object' if kind is dict else 'a list'}")
    return None


def unreadable(source: GcpExportFiles, files: list[Path], kind: str, error: duckdb.Error) -> DataError:
    """The clearest line for files DuckDB could not read: the file, line and what is wrong there."""
    first_line = str(error).strip().splitlines()[0]
    if kind == "ndjson":
        for path in files:
            for number, raw in enumerate(_lines(path), start=1):
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return DataError(f"source {source.id!r}: {path}:{number}: not UTF-8 text")
                try:
                    problem = _shape(json.loads(text))
                except json.JSONDecodeError as bad:
                    problem = f"is not valid JSON ({bad.msg} at character {bad.pos + 1})"
                except RecursionError:
                    problem = "is nested too deeply to be an export row"
                if problem:
                    return DataError(f"source {source.id!r}: {path}:{number}: the row {problem}: {_show(text.strip())}")
    else:
        for path in files:
            try:
                duckdb.connect().execute(f"SELECT count(*) FROM read_parquet({_names([path])})").fetchall()
            except duckdb.Error as bad:
                return DataError(f"source {source.id!r}: {path}: not a readable Parquet file: "
                                 f"{str(bad).strip().splitlines()[0]}")
    detail = re.sub(r"\s+", " ", first_line)
    return DataError(f"source {source.id!r}: cannot read the export files under {source.path}: {detail}")

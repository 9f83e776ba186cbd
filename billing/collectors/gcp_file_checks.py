"""Checks that every row of the export files is read exactly once, and can be billed.

Reconciliation compares two sums over the rows that were read; it cannot see a row the reader
dropped or a row that two files hold. These checks run on what ``gcp_files.load`` counted in its
one reading of the files, so they cost little beside reading them:

- **read whole**: each NDJSON file is also read as plain lines (no JSON), and the bytes of its
  lines plus their newlines must equal the file's content length: the size of a plain file, or the
  length a gzip file records in its last bytes. When the two differ (Windows line ends, a gzip
  made of several members, a damaged or cut-short file), the file is read again in Python, which
  checks every gzip checksum to the end and counts the lines. Then the JSON reader must have read
  a row for every line that is not blank. For Parquet, the rows read must equal the row count in
  each file's footer.
- **no row twice**: a row found in two different files is one export read twice (a copy, a
  re-compressed or re-written copy, overlapping extracts). Rows are first matched by a hash of
  their values (so spacing, key order and ``1.5``/``1.50`` do not hide a copy): the reading keeps
  the hashes found in more than one file. Only then are the files that share them paired, and
  compared row by row, on every column, before the run is refused with the exact count. The same
  row twice in one file is legitimate (two identical usage rows) and allowed.
- **rows**: each row must have the export's shape (objects and lists where the export has them,
  numbers as amounts), finite amounts within ``MAX_AMOUNT``, and what billing needs: an invoice
  month, a cost and credit amounts. Rows without them are refused, one line naming the file, the
  first such line and the count, unless the source says ``unbillable_rows: report``: then rows
  without an invoice month are left out, missing amounts count as zero, and the run warns with
  the same detail.

Errors name the file and line (``export-000.json.gz:1234: ...``)."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import sys
import zlib
from pathlib import Path
from decimal import Decimal
from typing import Callable, Iterator

import duckdb

from ..config import GcpExportFiles
from ..errors import DataError
from ..records import Month

MAX_AMOUNT = 10**13  # no single export row costs ten trillion in any currency
SHOWN = 160  # characters of a row shown in a message

# What a row's ``problem`` code means, and whether ``unbillable_rows: report`` may accept it.
PROBLEMS: dict[str, tuple[str, bool]] = {
    "not_object": ("is not an export row (a JSON object with a billing account, cost, currency, invoice)", False),
    "shape:service": ("has a service that is not an object {id, description}", False),
    "shape:project": ("has a project that is not an object {id, name, ...}", False),
    "shape:invoice": ("has an invoice that is not an object {month}", False),
    "shape:labels": ("has labels that are not a list of {key, value}", False),
    "shape:credits": ("has credits that are not a list of {amount, type, ...} with numbers as amounts", False),
    "shape:cost": ("has a cost that is not a number (true, or a number in quotes)", False),
    "number:cost": (f"has a cost that is not a finite number below {MAX_AMOUNT:.0e}", False),
    "number:credits": (f"has a credit amount that is not a finite number below {MAX_AMOUNT:.0e}", False),
    "missing:currency": ("has no currency", False),
    "missing:billing_account_id": ("has no billing_account_id", False),
    "unbillable:invoice_month": ("has no invoice month (invoice.month, YYYYMM), so no invoice can bill it", True),
    "unbillable:cost": ("has no cost (null or absent)", True),
    "unbillable:credit_amount": ("has a credit without an amount", True),
}
PROBLEMS_ORDER = list(PROBLEMS)
# Problems that only matter for the month billed: another month's run reports its own rows.
THIS_MONTH_ONLY = ("unbillable:cost", "unbillable:credit_amount", "missing:currency", "missing:billing_account_id")
REPORT_WHAT = {
    "unbillable:invoice_month": "left out (no invoice month)",
    "unbillable:cost": "read with a cost of 0 (no cost)",
    "unbillable:credit_amount": "read with a credit of 0 (a credit without an amount)",
}


def problem_expression(typed: bool) -> str:
    """SQL over ``r`` (the row's columns) and, for NDJSON (``typed``), ``j`` (the row as read, its
    amounts as JSON text): the row's problem code, or NULL. The JSON reader itself refuses a value
    of the wrong kind (a list where the export has an object); Parquet rows have their schema. The
    order is ``row_problem``'s."""
    finite = f"(isfinite(x) AND abs(x) < {MAX_AMOUNT})"
    month = ("(r.invoice.month GLOB '[0-9][0-9][0-9][0-9][0-9][0-9]' "  # a tenth of what a regexp costs
             "AND substr(r.invoice.month, 5, 2) BETWEEN '01' AND '12')")
    text = [
        ("r.billing_account_id IS NULL AND j.cost IS NULL AND r.currency IS NULL AND r.invoice IS NULL",
         "'not_object'"),
        ("j.cost IS NOT NULL AND r.cost IS NULL", "'shape:cost'"),
        ("len(j.credits) > 0 AND list_bool_or(list_transform(j.credits, lambda c: c.amount IS NOT NULL "
         "AND TRY_CAST(c.amount::VARCHAR AS DOUBLE) IS NULL))", "'shape:credits'"),
    ] if typed else []
    values = [
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
    return "CASE " + " ".join(f"WHEN {condition} THEN {code}" for condition, code in text + values) + " END"


def _number(value: object) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def _in_range(value: int | Decimal) -> bool:
    number = Decimal(value)
    return number.is_finite() and abs(number) < MAX_AMOUNT


def row_problem(value: object) -> str | None:
    """``problem_expression`` in Python, for one row parsed by ``parse``: to find the line of the
    first row with a problem, and to say what is wrong where DuckDB's reader stopped."""
    fields = ("billing_account_id", "cost", "currency", "invoice")
    if not isinstance(value, dict) or all(value.get(field) is None for field in fields):
        return "not_object"
    for field, kind in (("service", dict), ("project", dict), ("invoice", dict), ("labels", list), ("credits", list)):
        if value.get(field) is not None and not isinstance(value[field], kind):
            return f"shape:{field}"
    labels, credits, cost = value.get("labels") or [], value.get("credits") or [], value.get("cost")
    if any(not isinstance(label, dict) for label in labels):
        return "shape:labels"
    if any(not isinstance(c, dict) for c in credits):
        return "shape:credits"
    if cost is not None and not _number(cost):
        return "shape:cost"
    if any(c.get("amount") is not None and not _number(c["amount"]) for c in credits):
        return "shape:credits"
    if cost is not None and not _in_range(cost):
        return "number:cost"
    if any(c.get("amount") is not None and not _in_range(c["amount"]) for c in credits):
        return "number:credits"
    month = value["invoice"].get("month") if isinstance(value.get("invoice"), dict) else None
    if not isinstance(month, str) or not re.fullmatch(r"\d{4}(0[1-9]|1[0-2])", month):
        return "unbillable:invoice_month"
    if cost is None:
        return "unbillable:cost"
    if any(c.get("amount") is None for c in credits):
        return "unbillable:credit_amount"
    if value.get("currency") is None:
        return "missing:currency"
    if value.get("billing_account_id") is None:
        return "missing:billing_account_id"
    return None


def parse(line: str) -> object:
    """One NDJSON row, amounts exact (``NaN``, ``Infinity`` and ``1e400`` become Decimals too)."""
    return json.loads(line, parse_float=Decimal, parse_constant=Decimal)


def canonical(line: str) -> str:
    """A JSON row as text that is the same for the same row however it was written (spacing, key
    order, ``1.5`` or ``1.50``)."""
    return json.dumps(parse(line), sort_keys=True,
                      default=lambda number: format(number.normalize(), "f") if number.is_finite() else str(number))


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


def _rows(path: Path) -> Iterator[tuple[int, bytes]]:
    """The lines of a file that are not blank, with their line numbers, read in full."""
    for number, line in enumerate(_lines(path), start=1):
        if line.strip():
            yield number, line


def line_count(path: Path) -> int:
    """The lines of a file that are not blank (the last may lack its newline)."""
    return sum(1 for _ in _rows(path))


def lines_of(path: Path) -> Iterator[str]:
    """The lines of an NDJSON file that are not blank, as text."""
    for _, line in _rows(path):
        yield line.decode("utf-8", "replace")


def check_read_whole(source: GcpExportFiles, files: list[Path], kind: str, connection: duckdb.DuckDBPyConnection,
                     counts: dict[int, tuple[int, int, int]]) -> None:
    """Every file read to its end, and a row read for each of its lines; ``counts`` is what
    ``gcp_files.file_counts`` counted per file index: rows read, lines that are not blank and the
    bytes of the lines (NDJSON)."""
    if kind == "parquet":
        declared = dict(connection.execute(
            f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({sql_files(files)}) GROUP BY file_name").fetchall())
        for index, path in enumerate(files, start=1):
            read = counts.get(index, (0, 0, 0))[0]
            if read != declared.get(str(path), 0):
                raise DataError(f"source {source.id!r}: {path}: its footer records {declared.get(str(path), 0)} rows "
                                f"but {read} were read; the file is damaged: copy or extract it again")
        return
    for index, path in enumerate(files, start=1):
        read, rows, size = counts.get(index, (0, 0, 0))
        expected = _recorded_length(path)
        modulo = 2**32 if path.name.endswith(".gz") else 2**64
        if expected is None or expected not in {size % modulo, (size - 1) % modulo}:  # the last newline may lack
            held = line_count(path)  # the slow, sure way: checks the gzip stream to its end
            if held != rows:
                raise DataError(f"source {source.id!r}: {path} holds {held} rows but {rows} lines were read; "
                                "the file was not read whole, so the run stops rather than bill part of it")
        if read != rows:
            raise _bad_line(source, path) or DataError(
                f"source {source.id!r}: {path} holds {rows} rows but {read} were read; the file was not "
                "read whole, so the run stops rather than bill part of it")


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_files(files: list[Path]) -> str:
    """A SQL list of the files' paths, for DuckDB's readers."""
    return "[" + ", ".join(sql_text(str(f)) for f in files) + "]"


# --- no row twice ------------------------------------------------------------------------------

def check_no_row_twice(source: GcpExportFiles, files: list[Path], connection: duckdb.DuckDBPyConnection,
                       groups: str, pairs_of_files: Callable[[], list[tuple[int, int]]],
                       shared_rows: Callable[[int, int], int]) -> None:
    """Refuse rows found in two different files. ``groups`` holds (``per_group`` false) the row
    hashes the reading found in more than one file; ``pairs_of_files()`` gives the pairs of file
    indexes (first < second) those hashes join, and each pair is compared row by row:
    ``shared_rows(first, second)`` counts the rows of one also in the other."""
    (found,) = connection.execute(f"SELECT count(*) FROM {groups} WHERE NOT per_group").fetchone()
    if not found:  # every row hash is in one file only: the common case
        return
    pairs = pairs_of_files()
    confirmed = [(a, b, rows) for a, b in pairs for rows in [shared_rows(a, b)] if rows]
    if not confirmed:
        return  # hash collisions only: distinct rows
    first, second, rows = max(confirmed, key=lambda pair: pair[2])
    more = f"; {len(confirmed) - 1} more pair(s) of files share rows too" if len(confirmed) > 1 else ""
    shards = _shards_of_one_extract(files[first - 1], files[second - 1])
    raise DataError(
        f"source {source.id!r}: {rows} row(s) of {files[second - 1]} are also in {files[first - 1]} (the same export "
        f"rows in two files: a copy, a re-compressed or re-written copy, or overlapping extracts){more}; remove the "
        "copy, or every cost in it would be billed twice"
        + ("; if the two are shards of one extract and the export table itself holds identical rows, extract the "
           "month again into one file" if shards else ""))


# The names ``bq extract`` gives the shards of one extract to a wildcard URI: the same name with
# a twelve-digit shard number.
_SHARD = re.compile(r"(.*)\d{12}(\.[^/]*)")


def _shards_of_one_extract(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are named as two shards of one extract (``export-000000000000.json``
    and ``export-000000000001.json`` in one folder)."""
    found = [_SHARD.fullmatch(path.name) for path in (a, b)]
    return (a.parent == b.parent and all(found) and a.name != b.name
            and found[0].groups() == found[1].groups())


# --- rows --------------------------------------------------------------------------------------

def check_rows(source: GcpExportFiles, files: list[Path], kind: str, month: Month,
               connection: duckdb.DuckDBPyConnection, groups: str) -> list[str]:
    """Refuse rows with problems (see ``PROBLEMS``); return warnings for those the source accepts.
    ``groups`` counts the rows per file and problem (``gcp_files.load``), with the first Parquet
    row of each; the first NDJSON line is found again in Python, only for a problem found."""
    counted = connection.execute(f"""
        SELECT problem, file, sum(rows)::BIGINT AS n, min(first_line)
        FROM {groups}
        WHERE per_group AND problem IS NOT NULL
          AND (problem NOT IN ({', '.join(repr(p) for p in THIS_MONTH_ONLY)}) OR month = ?)
        GROUP BY problem, file""", [month.compact]).fetchall()
    # In the files' order, and within a file in the order the rows come (their first lines).
    found = sorted(((problem, file, count, *_first(files[file - 1], problem, month, number))
                    for problem, file, count, number in counted),
                   key=lambda f: (f[1], f[4], PROBLEMS_ORDER.index(f[0])))
    accept = getattr(source, "unbillable_rows", "refuse") == "report"
    refused = [f for f in found if not (accept and PROBLEMS[f[0]][1])]
    if refused:
        problem, file, count, where, _, text = refused[0]
        others = sum(f[2] for f in refused) - count
        described, acceptable = PROBLEMS[problem]
        hint = " (or set `unbillable_rows: report` on the source to bill the other rows and list these)" \
            if acceptable else ""
        more = f", and {others} other row(s) with problems" if others else ""
        raise DataError(f"source {source.id!r}: {where}: the row {described}; {count} such "
                        f"row(s) in that file{more}{hint}{': ' + _show(text) if text else ''}")
    return [f"{count} row(s) of {files[file - 1].name} {REPORT_WHAT[problem]} (first: {where})"
            for problem, file, count, where, _, _ in found]


def _first(path: Path, problem: str, month: Month, number: int | None) -> tuple[str, int, str | None]:
    """``file:line`` of the first row of ``path`` with ``problem``, its line number (for order)
    and its text: a Parquet row carries its number; an NDJSON file is read again in Python (only
    when there is a problem)."""
    if number is not None:
        return f"{path}:{number}", number, None
    for count, line in _rows(path):
        text = line.decode("utf-8", "replace").strip()
        try:
            value = parse(text)
        except ValueError:
            continue
        if row_problem(value) == problem and (problem not in THIS_MONTH_ONLY or (
                isinstance(value.get("invoice"), dict) and value["invoice"].get("month") == month.compact)):
            return f"{path}:{count}", count, text
    return str(path), sys.maxsize, None  # no line found: after every line


def _show(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


# --- unreadable files ----------------------------------------------------------------------------

# The Parquet columns the queries read: DuckDB's type (a pattern) and the export's.
_NUMBER = r"(DOUBLE|FLOAT|DECIMAL\(\d+,\s*\d+\)|U?(BIG|SMALL|TINY|HUGE)?INT(EGER)?)"


def _record(*fields: tuple[str, str]) -> str:
    return r"STRUCT\(.*" + ".*".join(rf'\b"?{name}"? {kind}' for name, kind in fields) + r".*\)"


PARQUET_COLUMNS = {
    "billing_account_id": ("VARCHAR", "a STRING"),
    "service": (_record(("description", "VARCHAR")), "a RECORD with a description"),
    "project": (_record(("id", "VARCHAR")), "a RECORD with an id"),
    "labels": (_record(("key", "VARCHAR"), ("value", "VARCHAR")) + r"\[\]", "a REPEATED RECORD of key and value"),
    "cost": (_NUMBER, "a FLOAT64"),
    "currency": ("VARCHAR", "a STRING"),
    "credits": (_record(("amount", _NUMBER)) + r"\[\]", "a REPEATED RECORD with a FLOAT64 amount"),
    "invoice": (_record(("month", "VARCHAR")), "a RECORD with a month"),
    "cost_type": ("VARCHAR", "a STRING"),
}


def _bad_line(source: GcpExportFiles, path: Path) -> DataError | None:
    """The first line of an NDJSON file that is not an export row, said in one line, or ``None``."""
    for number, raw in _rows(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return DataError(f"source {source.id!r}: {path}:{number}: not UTF-8 text")
        try:
            code = row_problem(parse(text))
            problem = PROBLEMS[code][0] if code and code.startswith(("not_object", "shape:")) else None
        except json.JSONDecodeError as bad:
            problem = f"is not valid JSON ({bad.msg} at character {bad.pos + 1})"
        except RecursionError:
            problem = "is nested too deeply to be an export row"
        if problem:
            return DataError(f"source {source.id!r}: {path}:{number}: the row {problem}: {_show(text.strip())}")
    return None


def parquet_shape(source: GcpExportFiles, path: Path, columns: dict[str, str]) -> DataError | None:
    """What is wrong with a Parquet file's columns (name to DuckDB type), or ``None``."""
    for column, (pattern, export_type) in PARQUET_COLUMNS.items():
        if column not in columns:
            return DataError(f"source {source.id!r}: {path}: has no column {column}; the export has {export_type}")
        if not re.fullmatch(pattern, columns[column]):
            return DataError(f"source {source.id!r}: {path}: column {column} is {columns[column]}; the export has "
                             f"{export_type}")
    return None


def unreadable(source: GcpExportFiles, files: list[Path], kind: str, error: duckdb.Error) -> DataError:
    """The clearest line for files DuckDB could not read: the file, line and what is wrong there."""
    first_line = str(error).strip().splitlines()[0]
    if kind == "ndjson":
        for path in files:
            found = _bad_line(source, path)
            if found:
                return found
    else:
        for path in files:
            try:
                columns = dict((row[0], row[1]) for row in duckdb.connect().execute(
                    f"DESCRIBE SELECT * FROM read_parquet({sql_files([path])})").fetchall())
            except duckdb.Error as bad:
                return DataError(f"source {source.id!r}: {path}: not a readable Parquet file: "
                                 f"{str(bad).strip().splitlines()[0]}")
            found = parquet_shape(source, path, columns)
            if found:
                return found
    detail = re.sub(r"\s+", " ", first_line)
    return DataError(f"source {source.id!r}: cannot read the export files under {source.path}: {detail}")

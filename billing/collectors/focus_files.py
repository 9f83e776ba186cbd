"""Cost and usage files in the FinOps FOCUS format (1.0, 1.1, 1.2), aggregated by DuckDB.

FOCUS (the FinOps Open Cost and Usage Specification) is what Azure Cost Management, AWS Data
Exports, Google Cloud and OCI all export: one row per charge, the same columns whoever wrote it.
This collector reads CSV (optionally gzip'd) or Parquet files and only grouped rows leave DuckDB:

- the invoice month is the month of ``BillingPeriodStart`` as the file writes it; the amount is
  ``BilledCost`` (what the provider's invoice charges), read as text and summed as an exact
  DECIMAL(38, 18) (a Parquet DOUBLE through its shortest text, as GCP's FLOAT64 costs are);
- the provider is ``ProviderName`` (or ``ServiceProviderName``, its successor in later FOCUS
  versions, where a file has it), as a short name:
  ``aws``, ``azure``, ``gcp``, ``oci`` (``records.provider_slug``), or the name in lower case with
  hyphens;
- ``BillingAccountId`` is the billing account, ``SubAccountId`` the project, account or
  subscription (empty when the provider gives none), ``ServiceName`` the service,
  ``BillingCurrency`` the currency, and ``Tags`` (a JSON object, or a map in Parquet) the tags,
  with their keys as written (``x_`` and provider-prefixed keys included);
- ``ChargeCategory`` gives the charge type (``CHARGE_TYPES``): Usage, Purchase, Tax, Credit
  (a credit of type "Credit", cost 0), Adjustment; a ``ChargeClass`` of ``Correction`` (a
  correction of an earlier period's charge, billed in this one) makes a usage or purchase row an
  adjustment, while corrections of tax and credits stay tax and credits.

A column one file lacks (``SubAccountId``, ``Tags``) is null for that file's rows; Parquet
timestamps are read in UTC.

The source's total per provider, billing account and month is summed apart from the groups, for
reconciliation. Before anything is billed, the files are checked: each has the columns the
version needs (``REQUIRED``), every row of the month can be billed (a number for BilledCost, a
category FOCUS knows, Tags a JSON object...; the first bad row is named by file and row), no
account bills in two currencies, and no row appears in two files (a file copied, or two exports
that overlap: compared on every column). A gzip'd file cut short, or a CSV row cut short, stops
the reader. A CSV cut exactly at a row's end cannot be told from a shorter export: as for any
provider's export, the reconciliation with the provider's own invoice is the check for that.
"""

from __future__ import annotations

import csv
import gzip
import re
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import duckdb

from ..config import FocusFiles
from ..errors import DataError, SourceError
from ..records import ADJUSTMENT, CREDIT, OTHER, TAX, USAGE, CostRow, Month, SourceTotal, provider_slug
from .base import Collection, files_at
from .gcp_file_checks import sql_files, sql_text

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
# The columns this collector reads, by FOCUS version; each file must have them. (SubAccountId
# and Tags are conditional in FOCUS: a file without them has no sub accounts or tags.)
REQUIRED = {version: ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodStart", "ChargeCategory",
                      "ChargeClass", "ServiceName", "ProviderName") for version in ("1.0", "1.1")}
REQUIRED["1.2"] = tuple(c for c in REQUIRED["1.0"] if c != "ProviderName")  # or ServiceProviderName
# Columns that only later versions define: how a file's version is told when the config gives none.
# (ServiceProviderName and HostProviderName come after 1.2 in FOCUS's changelog; a file with them
# is read as the latest version known here.)
INTRODUCED = {"1.2": ("InvoiceId", "PricingCurrency", "BillingAccountType", "SubAccountType", "ServiceProviderName",
                      "HostProviderName"),
              "1.1": ("ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "CapacityReservationId",
                      "CommitmentDiscountQuantity")}
CHARGE_TYPES = {"Usage": USAGE, "Purchase": OTHER, "Tax": TAX, "Credit": CREDIT, "Adjustment": ADJUSTMENT}
CREDIT_TYPE = "Credit"
SCALE = 18  # decimal places amounts are read to: more than any provider writes
AMOUNT_LIMIT = Decimal(10) ** 13
NUMERIC = f"DECIMAL(38, {SCALE})"
GROUPS = "focus_groups"
MEMORY_LIMIT = "320MB"
# Why a row cannot be billed, checked in this order (the first that applies is the row's problem).
PROBLEMS = {
    "period": "BillingPeriodStart is not a date and time",
    "amount": "BilledCost is not a number",
    "range": f"BilledCost is beyond +-{AMOUNT_LIMIT:,} or has more than {SCALE} decimal places",
    "category": f"ChargeCategory is not one of {', '.join(CHARGE_TYPES)}",
    "class": "ChargeClass is neither empty nor Correction",
    "account": "BillingAccountId is empty",
    "currency": "BillingCurrency is not a three-letter currency code",
    "provider": "the provider's name is empty",
    "tags": "Tags is not a JSON object",
}
_PLAIN_NUMBER = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


def focus_files(source: FocusFiles) -> tuple[list[Path], str]:
    """The FOCUS files of ``source`` (a folder, a file or a glob) and their format."""
    path = source.path
    files = files_at(path, CSV_SUFFIXES + PARQUET_SUFFIXES, fold_case=True)
    if not files:
        raise SourceError(f"source {source.id!r}: no FOCUS files at {path} "
                          f"(looked for {', '.join('*' + s for s in CSV_SUFFIXES + PARQUET_SUFFIXES)})")
    kinds = {"parquet" if p.name.lower().endswith(PARQUET_SUFFIXES) else "csv" for p in files}
    if len(kinds) > 1:
        raise SourceError(f"source {source.id!r}: {path} mixes CSV and Parquet files; give each format its own source")
    return files, kinds.pop()


def _reader(files: list[Path], kind: str) -> str:
    """SQL: every row of the files, with ``filename`` (and ``file_row_number`` for Parquet).

    CSV is read as RFC 4180 text (comma-separated, double quotes) with the columns its header
    names, every value as text, never as a dialect DuckDB guesses (a file cut short inside a row
    can make its sniffer read each line as one column). An empty field and the text NULL (as the
    FinOps Foundation's sample data writes it) are null; a row with too few fields stops the reader.
    """
    if kind == "parquet":
        return f"read_parquet({sql_files(files)}, union_by_name = true, filename = true, file_row_number = true)"
    by_header: dict[tuple[str, ...], list[Path]] = {}
    for path in files:  # files with the same header are read by one reader
        by_header.setdefault(tuple(csv_header(path)), []).append(path)
    reads = []
    for header, paths in by_header.items():
        columns = "{" + ", ".join(f"{sql_text(name)}: 'VARCHAR'" for name in header) + "}"
        reads.append(f"SELECT * FROM read_csv({sql_files(paths)}, header = true, auto_detect = false, "
                     f"columns = {columns}, delim = ',', quote = '\"', escape = '\"', filename = true, "
                     "nullstr = ['', 'NULL'], strict_mode = true)")
    return "(" + " UNION ALL BY NAME ".join(reads) + ")"


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first record (gzip'd if its name ends in ``.gz``)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as file:
            header = next(csv.reader(file), [])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read its header: {exc}") from None
    if not header or len(set(header)) != len(header) or not all(header):
        raise DataError(f"{path}: its first line is not a header of distinct column names")
    return header


def _columns(connection: duckdb.DuckDBPyConnection, source: FocusFiles, path: Path, kind: str) -> dict[str, str]:
    try:
        return {name: kind_ for name, kind_, *_ in connection.execute(
            f"DESCRIBE SELECT * FROM {_reader([path], kind)}").fetchall() if name not in ("filename", "file_row_number")}
    except DataError as error:
        raise DataError(f"source {source.id!r}: {error}") from None
    except duckdb.Error as exc:
        raise DataError(f"source {source.id!r}: {path}: cannot read it as FOCUS {kind.upper()}: "
                        f"{_first_line(exc)}") from None


class Columns(NamedTuple):
    """The files' columns, with their type in the first file that has each.

    Attributes:
        any: the columns some file has (a file without one reads it as null).
        every: the columns every file has: what identifies a row in any of them.
    """

    any: dict[str, str]
    every: dict[str, str]


def file_versions(connection: duckdb.DuckDBPyConnection, source: FocusFiles, files: list[Path],
                  kind: str) -> tuple[Columns, dict[Path, str]]:
    """The files' columns and each file's FOCUS version (the configured one, else told from its
    columns); a file without a column its version needs is refused, naming the file and the
    column."""
    common: dict[str, str] | None = None
    union: dict[str, str] = {}
    versions: dict[Path, str] = {}
    for path in files:
        columns = _columns(connection, source, path, kind)
        version = source.version or next((v for v in ("1.2", "1.1") if any(c in columns for c in INTRODUCED[v])), "1.0")
        missing = [c for c in REQUIRED[version] if c not in columns]
        if version == "1.2" and "ServiceProviderName" not in columns and "ProviderName" not in columns:
            missing.append("ProviderName")
        if missing:
            told = "" if source.version else " (told from its columns)"
            raise DataError(f"source {source.id!r}: {path}: FOCUS {version}{told} file without the column "
                            f"{missing[0]}" + (f" (and {', '.join(missing[1:])})" if missing[1:] else ""))
        versions[path] = version
        common = dict(columns) if common is None else {k: v for k, v in common.items() if k in columns}
        union.update((k, v) for k, v in columns.items() if k not in union)
    return Columns(union, common or {}), versions


def _text(column: str, columns: dict[str, str]) -> str:
    """SQL: a column as text (NULL when the files lack it, or it is empty); a Parquet number
    through its shortest text, a map or record as JSON."""
    if column not in columns:
        return "NULL::VARCHAR"
    quoted = '"' + column.replace('"', '""') + '"'
    kind = columns[column].upper()
    if kind.startswith(("MAP", "STRUCT")) or kind.endswith("]"):
        return f"to_json({quoted})::VARCHAR"
    return f"nullif(trim(CAST({quoted} AS VARCHAR)), '')"


def _provider_column(columns: dict[str, str]) -> str:
    """SQL: the provider's name, from ServiceProviderName where a row has it, else ProviderName."""
    names = [c for c in ("ServiceProviderName", "ProviderName") if c in columns]
    return f"coalesce({', '.join(_text(c, columns) for c in names)})" if names else "NULL::VARCHAR"


def _json_key(key: str) -> str:
    """A JSON path to the member ``key`` of an object, whatever its characters (``/`` and ``$``
    begin a path of their own, ``.`` separates members)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _decimal_places(text: str) -> str:
    """SQL: the decimal places the number written in ``text`` needs (``1.500`` 1, ``1.2E-7`` 8,
    ``100e-20`` 18), trailing zeros aside."""
    mantissa = f"regexp_extract({text}, '^\\s*[+-]?([0-9]*)\\.?([0-9]*)', ['whole', 'fraction'])"
    exponent = f"coalesce(TRY_CAST(regexp_extract({text}, '[eE]([+-]?[0-9]+)', 1) AS INTEGER), 0)"
    return (f"(CASE WHEN rtrim({mantissa}.fraction, '0') <> '' THEN length(rtrim({mantissa}.fraction, '0')) "
            f"ELSE length(rtrim({mantissa}.whole, '0')) - length({mantissa}.whole) END - {exponent})")


def _rows(files: list[Path], kind: str, columns: Columns, label_keys: tuple[str, ...]) -> str:
    """SQL: per row its file index, row number (Parquet), problem (``PROBLEMS``; NULL when it can
    be billed), invoice month, group columns, tag values asked for (``tag_0``...), amount and the
    hash of every column the files share (the row's identity)."""
    text = {c: _text(c, columns.any) for c in ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodStart",
                                            "ChargeCategory", "ChargeClass", "ServiceName", "SubAccountId", "Tags")}
    problem = "CASE " + " ".join(f"WHEN {test} THEN {sql_text(name)}" for name, test in (
        ("period", "period IS NULL"),
        ("amount", f"NOT coalesce(regexp_matches(cost_text, {sql_text(_PLAIN_NUMBER)}), false)"),
        ("range", f"amount IS NULL OR abs(amount) >= {AMOUNT_LIMIT} OR {_decimal_places('cost_text')} > {SCALE}"),
        ("category", f"category IS NULL OR category NOT IN ({', '.join(map(sql_text, CHARGE_TYPES))})"),
        ("class", "charge_class IS NOT NULL AND charge_class <> 'Correction'"),
        ("account", "account IS NULL"),
        ("currency", "currency IS NULL OR NOT regexp_full_match(currency, '[A-Z]{3}')"),
        ("provider", "provider_name IS NULL"),
        ("tags", "tags IS NOT NULL AND coalesce(json_type(TRY_CAST(tags AS JSON)), '') NOT IN ('OBJECT', 'NULL')"),
    )) + " END"
    tag_values = "".join(
        f", CASE WHEN {problem} IS NULL AND tags IS NOT NULL THEN json_extract_string(tags, {sql_text(_json_key(key))}) "
        f"END AS tag_{i}" for i, key in enumerate(label_keys))
    identity = "hash(" + ", ".join(_text(c, columns.every) for c in sorted(columns.every)) + ")"
    line = "file_row_number + 1" if kind == "parquet" else "NULL::BIGINT"
    typed = (f"SELECT list_position({sql_files(files)}, filename)::INTEGER AS file, {line} AS line, "
             f"{identity} AS row_hash, {text['BilledCost']} AS cost_text, "
             f"TRY_CAST({text['BilledCost']} AS {NUMERIC}) AS amount, "
             f"TRY_CAST({text['BillingPeriodStart']} AS TIMESTAMPTZ) IS NOT NULL "
             f"AND regexp_matches({text['BillingPeriodStart']}, '^[0-9]{{4}}-[0-9]{{2}}') AS period_ok, "
             f"left({text['BillingPeriodStart']}, 7) AS written_month, "
             f"{text['ChargeCategory']} AS category, {text['ChargeClass']} AS charge_class, "
             f"{text['BillingAccountId']} AS account, {text['BillingCurrency']} AS currency, "
             f"{_provider_column(columns.any)} AS provider_name, coalesce({text['SubAccountId']}, '') AS sub_account, "
             f"coalesce({text['ServiceName']}, '') AS service, {text['Tags']} AS tags "
             f"FROM {_reader(files, kind)}")
    return (f"SELECT *, {problem} AS problem, provider_name AS provider{tag_values} "
            f"FROM (SELECT * EXCLUDE (period_ok, written_month), CASE WHEN period_ok THEN written_month END AS period "
            f"FROM ({typed}))")


def _load(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str, columns: Columns,
          label_keys: tuple[str, ...]) -> None:
    """``GROUPS``: per file, problem and billing group, the rows and the exact sum; and (``per_group``
    false) each row hash found in more than one file."""
    tags = "".join(f", tag_{i}" for i in range(len(label_keys)))
    group = f"file, problem, period, provider, account, sub_account, service, category, charge_class, currency{tags}"
    sums = "count(*) AS rows, min(line) AS first_line, sum(amount) FILTER (WHERE problem IS NULL) AS amount"
    rows = _rows(files, kind, columns, label_keys)
    if len(files) == 1:  # rows found twice in one file are two rows: nothing to compare
        connection.execute(f"CREATE TABLE {GROUPS} AS SELECT true AS per_group, {group}, NULL::UBIGINT AS row_hash, "
                           f"{sums} FROM ({rows}) GROUP BY ALL")
        return
    connection.execute(f"""
        CREATE TABLE {GROUPS} AS
        SELECT GROUPING(row_hash) = 1 AS per_group, {group}, row_hash, {sums}
        FROM ({rows})
        GROUP BY GROUPING SETS (({group}), (row_hash))
        HAVING GROUPING(row_hash) = 1 OR min(file) <> max(file)""")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _read_error(source: FocusFiles, exc: duckdb.Error, under: str) -> DataError:
    """One line from DuckDB's reading error: the file, the line and what is wrong, where it says."""
    text = str(exc)
    file = re.search(r"^\s*file = (.+)$", text, re.MULTILINE)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if file and line and fields:
        return DataError(f"source {source.id!r}: {file[1].strip()}, line {line[1]}: {fields[2]} fields where the header "
                         f"has {fields[1]} (a row cut short, or a file that is not comma-separated FOCUS)")
    where = f"{file[1].strip()}: " if file else f"the FOCUS files under {under}: "
    return DataError(f"source {source.id!r}: cannot read {where}{_first_line(exc)}")


def _bad_row(connection: duckdb.DuckDBPyConnection, source: FocusFiles, path: Path, kind: str, month: Month,
             problem: str, first_line: int | None) -> str:
    """Where the first row of ``path`` with ``problem`` (in ``month``, unless its month cannot be
    told) is: ``row N`` (Parquet, from the reader; CSV, counted after the header in the file's
    order, read again)."""
    if first_line is not None:
        return f"row {first_line}"
    own = _columns(connection, source, path, kind)
    cursor = connection.execute(f"SELECT problem, period FROM ({_rows([path], kind, Columns(own, own), ())})")
    number = 0
    while batch := cursor.fetchmany(10_000):
        for found, period in batch:
            number += 1
            if found == problem and (problem == "period" or period == str(month)):
                return f"row {number} after the header"
    return "a row"


def _check(source: FocusFiles, month: Month, files: list[Path], kind: str, columns: Columns,
           connection: duckdb.DuckDBPyConnection) -> None:
    """Refuse rows of the month that cannot be billed (and rows whose month cannot be told), an
    account billing in two currencies, and a row found in two files."""
    found = connection.execute(f"""
        SELECT problem, file, sum(rows)::BIGINT, min(first_line) FROM {GROUPS}
        WHERE per_group AND problem IS NOT NULL AND (period = ? OR problem = 'period')
        GROUP BY problem, file ORDER BY file, problem""", [str(month)]).fetchall()
    if found:
        problem, file, count, first_line = min(found, key=lambda f: (list(PROBLEMS).index(f[0]), f[1]))
        total = sum(f[2] for f in found)
        where = _bad_row(connection, source, files[file - 1], kind, month, problem, first_line)
        raise DataError(f"source {source.id!r}: {files[file - 1]}, {where}: {PROBLEMS[problem]}; {total} row(s) of "
                        f"{month} cannot be billed")
    billed: dict[tuple[str, str], dict[str, set[int]]] = {}  # (provider, account): currency -> files
    for provider, account, currency, file in connection.execute(f"""
            SELECT DISTINCT provider, account, currency, file FROM {GROUPS}
            WHERE per_group AND problem IS NULL AND period = ?""", [str(month)]).fetchall():
        billed.setdefault((provider_slug(provider), account), {}).setdefault(currency, set()).add(file)
    for (provider, account), by_currency in sorted(billed.items()):
        if len(by_currency) > 1:
            in_files = sorted(set().union(*by_currency.values()))
            raise DataError(f"source {source.id!r}: billing account {account} ({provider}) bills {month} in "
                            f"{' and '.join(sorted(by_currency))} (BillingCurrency, in "
                            f"{', '.join(str(files[f - 1]) for f in in_files)}); an account bills in one currency: "
                            "give each its own source or check the export")
    shared = connection.execute(f"SELECT count(*) FROM {GROUPS} WHERE NOT per_group").fetchone()[0]
    if shared:
        _refuse_row_twice(source, files, kind, columns, connection)


def _refuse_row_twice(source: FocusFiles, files: list[Path], kind: str, columns: Columns,
                      connection: duckdb.DuckDBPyConnection) -> None:
    """Rows whose hashes two files share, compared on every column: the first pair of files that
    really share rows is refused (equal hashes of different rows are let be)."""
    values = ", ".join(_text(c, columns.every) for c in sorted(columns.every))
    pairs = connection.execute(f"""
        WITH rows AS (SELECT list_position({sql_files(files)}, filename)::INTEGER AS file, hash({values}) AS row_hash,
                             [{values}] AS row_values FROM {_reader(files, kind)}),
        candidates AS (SELECT * FROM rows WHERE row_hash IN (SELECT row_hash FROM {GROUPS} WHERE NOT per_group)),
        pairs AS (SELECT DISTINCT a.file AS first, b.file AS second FROM candidates a JOIN candidates b
                    ON a.row_hash = b.row_hash AND a.file < b.file AND a.row_values IS NOT DISTINCT FROM b.row_values)
        SELECT first, second, (SELECT count(*) FROM candidates b WHERE b.file = second AND EXISTS (
                   SELECT 1 FROM candidates a WHERE a.file = first AND a.row_hash = b.row_hash
                   AND a.row_values IS NOT DISTINCT FROM b.row_values))
        FROM pairs ORDER BY first, second LIMIT 1""").fetchall()
    if pairs:
        first, second, count = pairs[0]
        raise DataError(f"source {source.id!r}: {count} row(s) of {files[second - 1]} are also in {files[first - 1]} "
                        "(the same export read twice, or two exports that overlap); remove one copy")


def _carried_keys(connection: duckdb.DuckDBPyConnection, files: list[Path], kind: str, columns: Columns,
                  label_keys: tuple[str, ...], values: list[tuple]) -> set[str]:
    """The tag keys the month's rows carry among those asked for (``values``: the values of each
    group); when one of those is carried by none, also every key the files hold (to tell a typo
    from a tag of other months)."""
    carried = {key for i, key in enumerate(label_keys) if any(v[i] is not None for v in values)}
    if carried == set(label_keys) or "Tags" not in columns.any:
        return carried
    return carried | {key for (key,) in connection.execute(
        f"SELECT DISTINCT unnest(json_keys(tags)) FROM ({_rows(files, kind, columns, ())}) "
        "WHERE problem IS NULL AND tags IS NOT NULL").fetchall() if key}


def _charge(category: str, charge_class: str | None) -> str:
    charge = CHARGE_TYPES[category]
    return ADJUSTMENT if charge_class == "Correction" and charge in (USAGE, OTHER) else charge


def collect(source: FocusFiles, month: Month, label_keys: tuple[str, ...], refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: files are always read anew."""
    files, kind = focus_files(source)
    return read(source, files, kind, month, label_keys)


def read(source: FocusFiles, files: list[Path], kind: str, month: Month, label_keys: tuple[str, ...],
         under: str | None = None) -> Collection:
    """The month's costs in ``files`` (all CSV or all Parquet: ``kind``), checked; ``under`` names
    where they are in messages (default: the source's path)."""
    under = under or str(source.path)
    spill = tempfile.mkdtemp(prefix="billing-duckdb-")
    try:
        connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": spill,
                                            "preserve_insertion_order": True})
        with connection:
            connection.execute("SET TimeZone = 'UTC'")  # a Parquet timestamp's month is its month in UTC
            columns, versions = file_versions(connection, source, files, kind)
            try:
                _load(connection, files, kind, columns, label_keys)
            except duckdb.Error as exc:
                raise _read_error(source, exc, under) from None
            _check(source, month, files, kind, columns, connection)
            tags = "".join(f", tag_{i}" for i in range(len(label_keys)))
            groups = connection.execute(f"""
                SELECT provider, account, sub_account, service, category, charge_class, currency, sum(amount){tags}
                FROM {GROUPS} WHERE per_group AND problem IS NULL AND period = ?
                GROUP BY ALL ORDER BY ALL""", [str(month)]).fetchall()
            totals = connection.execute(f"""
                SELECT provider, account, currency, sum(amount) FROM {GROUPS}
                WHERE per_group AND problem IS NULL AND period = ? GROUP BY ALL ORDER BY ALL""",
                                        [str(month)]).fetchall()
            carried = _carried_keys(connection, files, kind, columns, label_keys, [g[8:] for g in groups])
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    if not totals:
        raise DataError(f"source {source.id!r}: no rows with a BillingPeriodStart in {month} in {len(files)} FOCUS "
                        f"file(s) under {under}")
    rows = []
    for name, account, sub_account, service, category, charge_class, currency, amount, *values in groups:
        provider = provider_slug(name)
        labels = tuple(sorted((k, v) for k, v in zip(label_keys, values) if v is not None))
        charge = _charge(category, charge_class)
        cost, credits = (Decimal(0), ((CREDIT_TYPE, amount),)) if charge == CREDIT else (amount, ())
        rows.append(CostRow(provider, account, str(month), sub_account, service, charge, labels, currency, cost,
                            credits, source.id))
    told = sorted(set(versions.values()))
    return Collection(
        rows=_merged(rows),
        totals=_totals(totals, month),
        label_keys=frozenset(carried),
        notes=(f"read {len(files)} FOCUS {'/'.join(told)} {kind.upper()} file(s)"
               + ("" if source.version else " (version told from the columns)"),),
    )


def _totals(found: list[tuple], month: Month) -> tuple[SourceTotal, ...]:
    """The source's total per provider (by its short name: a file may write "AWS" on some rows and
    "Amazon Web Services" on others), billing account and currency."""
    summed: dict[tuple[str, str, str], Decimal] = {}
    for name, account, currency, total in found:
        key = (provider_slug(name), account, currency)
        summed[key] = summed.get(key, Decimal(0)) + total
    return tuple(SourceTotal(p, a, str(month), c, t) for (p, a, c), t in sorted(summed.items()))


def _merged(rows: list[CostRow]) -> tuple[CostRow, ...]:
    """Rows that differ only in what the grouping kept apart (a correction's class within one
    charge type, two spellings of one provider) added together, sorted."""
    merged: dict[tuple, CostRow] = {}
    for row in rows:
        key = row._replace(cost=Decimal(0), credits=())
        if key in merged:
            before = merged[key]
            credits: dict[str, Decimal] = dict(before.credits)
            for name, amount in row.credits:
                credits[name] = credits.get(name, Decimal(0)) + amount
            merged[key] = before._replace(cost=before.cost + row.cost, credits=tuple(sorted(credits.items())))
        else:
            merged[key] = row
    return tuple(sorted(merged.values()))


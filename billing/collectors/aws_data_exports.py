"""AWS Data Exports: the Cost and Usage Report 2.0 (CUR 2.0) in Parquet, on disk or in S3.

**Layout** (AWS's "Understanding export delivery" page of the Data Exports guide):

- data: ``<prefix>/<export-name>/data/BILLING_PERIOD=YYYY-MM/<export-name>-<chunk>.snappy.parquet``,
  chunks numbered from ``00001`` (five digits);
- manifest: ``<prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/<export-name>-Manifest.json``,
  rewritten at each refresh and delivered only after every data file of that refresh. It lists
  the export's columns, its files and the period it covers; AWS recommends reading the files
  to ingest from that list.
- "overwrite" mode: each refresh replaces the period's files and its manifest. A refresh that
  needs fewer chunks leaves the extra chunks of the last one, overwritten with empty data.
- "create new" mode: each refresh lands in ``data/BILLING_PERIOD=YYYY-MM/<timestamp>-<execution-id>/``
  with a manifest of its own in ``metadata/BILLING_PERIOD=YYYY-MM/<timestamp>-<execution-id>/``,
  and the manifest directly in ``metadata/BILLING_PERIOD=YYYY-MM/`` is overwritten with the
  latest refresh's: it always names the current files.
- AWS refreshes the current period at least daily, and may refresh a closed one during the two
  weeks after it ends.

AWS's guide does not spell out the manifest's fields. Readers of real exports use ``dataFiles``
(a list of ``s3://bucket/key`` URLs), ``executionId``, ``billingPeriod`` ``{start, end}`` and
``columns``; this module relies on ``dataFiles`` only, and on ``billingPeriod.start`` when
present (it must be in the month).

**Which files are read.** ``path`` (or ``s3``) is the export's folder (holding ``data/`` and
``metadata/``), or a folder holding exactly one such export folder. For the month:

1. the manifest directly in ``metadata/BILLING_PERIOD=YYYY-MM/`` (the latest refresh); two there
   are refused, naming both;
2. else the one manifest of an execution folder; two or more (re-exports in "create new" mode
   without the latest manifest beside them) are refused, naming two: which one is current cannot
   be told, and reading both would bill every cost twice;
3. the manifest's ``dataFiles``: each must be a Parquet file under the period's data folder, and
   there (a local copy keeps the part from ``data/BILLING_PERIOD=YYYY-MM/`` on, whatever bucket
   the URL names);
4. without a manifest, or one without ``dataFiles``: the Parquet files under the period's data
   folder, which must all be in one folder (files of several executions would be read twice).

From S3, the manifest and those files are downloaded (credentials from the standard AWS chain,
or ``profile``; ``endpoint_url`` for an S3-compatible store) into a temporary folder, removed
afterwards, and read as local files. Messages name them by their ``s3://`` URL.

**What is read.** DuckDB reads the files once; only grouped rows leave it. Per row:
``bill_billing_period_start_date`` (the invoice month: rows of another period are left out, with
a warning), ``bill_payer_account_id`` (must be the configured ``payer_account``),
``bill_invoice_id`` (empty on any row of the month: AWS has not closed the period, refused
unless ``accept_provisional``), ``line_item_usage_account_id`` (the row's account),
``line_item_line_item_type`` (the charge type, ``LINE_ITEM_TYPES``), the service (``product``
map's ``product_name``, else ``product_servicecode``, else ``line_item_product_code``),
``line_item_currency_code``, the configured cost column and ``resource_tags``. Amounts are read
as their shortest text and cast to ``DECIMAL(38, 18)`` (``AMOUNT``), never as floats; the
source total is a second, independent sum over the same files.

**Line item types.** Usage, DiscountedUsage and SavingsPlanCoveredUsage are usage; Tax is tax.
Credit, Refund and the discounts (EdpDiscount, PrivateRateDiscount, BundledDiscount, SppDiscount,
DistributorDiscount, SavingsPlanNegation, Discount) are credits of that type on a row of cost 0,
as the Cost Explorer sources show record types. Fees for commitments and purchases (RIFee, Fee,
SavingsPlanRecurringFee, SavingsPlanUpfrontFee) and any type not listed are ``other``: billed
like usage to the account and service that carry them, but kept apart from metered usage.

**Tags.** CUR 2.0 writes user-defined cost allocation tags into ``resource_tags`` with a
``user_`` prefix (AWS's own with ``aws_``). A configured key ``K`` takes the value of the map's
key ``K`` as written, else of ``user_K``: a rule may say ``team`` or ``user_team``. An empty value
is no tag (Cost Explorer cannot tell the two apart either). Keys are compared as written: CUR 2.0
may write a tag's key differently from the console (e.g. ``2i2c:hub-name`` as
``user_2i2c_hub_name``); a rule on a key no row carries is refused by the run, which lists the
keys the month's rows carry (without their ``user_`` prefix).

Bad input stops the run with one line naming the file and column: a column missing, a file
that is not Parquet, an amount that is not a number, two manifests, two currencies for the
payer, another payer, or no data for the month.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Iterator, NamedTuple

import duckdb

from ..config import AwsDataExports, FocusFiles
from ..errors import BillingError, DataError, SourceError, SourceUnavailable
from ..records import CREDIT, OTHER, REFUND, TAX, USAGE, CostRow, Month, SourceTotal
from .base import Collection

AMOUNT = "DECIMAL(38, 18)"
AMOUNT_LIMIT = 10**13  # no line of one payer's month comes near ten trillion: a number this size is garbage
MEMORY_LIMIT = "256MB"
PARQUET_SUFFIXES = (".parquet",)
MANIFEST_SUFFIX = "Manifest.json"
TAG_PREFIX = "user_"

USAGE_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
CREDIT_TYPES = {"Credit": CREDIT, "Refund": REFUND, "EdpDiscount": CREDIT, "PrivateRateDiscount": CREDIT,
                "BundledDiscount": CREDIT, "SppDiscount": CREDIT, "DistributorDiscount": CREDIT,
                "SavingsPlanNegation": CREDIT, "Discount": CREDIT}
FEE_TYPES = ("RIFee", "Fee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee")
LINE_ITEM_TYPES = {**{t: USAGE for t in USAGE_TYPES}, "Tax": TAX, **CREDIT_TYPES, **{t: OTHER for t in FEE_TYPES}}

PERIOD, PAYER, INVOICE = "bill_billing_period_start_date", "bill_payer_account_id", "bill_invoice_id"
ACCOUNT, LINE_TYPE, CURRENCY = "line_item_usage_account_id", "line_item_line_item_type", "line_item_currency_code"
TAGS, PRODUCT, SERVICE_CODE, PRODUCT_CODE = "resource_tags", "product", "product_servicecode", "line_item_product_code"
REQUIRED = (PERIOD, PAYER, INVOICE, ACCOUNT, LINE_TYPE, CURRENCY)

# What is wrong with a row of the month, and the column it is about (``{cost}``: the cost column).
PROBLEMS = {
    "no_period": (PERIOD, "is empty, so the row's invoice month cannot be told"),
    "not_number": ("{cost}", "is not a number (or too large to be one)"),
    "too_large": ("{cost}", f"is not a believable cost (10^{len(str(AMOUNT_LIMIT)) - 1} or more in size)"),
    "no_cost": ("{cost}", "is empty; choose a cost_column every row fills"),
    "no_currency": (CURRENCY, "is empty"),
}


# --- where the files are -------------------------------------------------------------------------

class Store:
    """A folder of export files, on disk or under an S3 prefix, addressed by POSIX keys relative
    to it (``cur/data/BILLING_PERIOD=2024-03/cur-00001.snappy.parquet``)."""

    where: str

    def folders(self, key: str) -> list[str]:
        """The names of the folders directly in ``key`` (``""`` or ending with ``/``)."""
        raise NotImplementedError

    def files(self, key: str) -> list[str]:
        """Every file under ``key`` (a folder, ending with ``/``), at any depth, sorted."""
        raise NotImplementedError

    def fetch(self, keys: list[str], folder: Path) -> dict[str, Path]:
        """Each key as a local file (downloaded into ``folder`` if need be)."""
        raise NotImplementedError

    def name(self, key: str) -> str:
        """How a message names the file ``key``."""
        raise NotImplementedError


class LocalStore(Store):
    def __init__(self, root: Path):
        self.root = root
        self.where = str(root)

    def folders(self, key: str) -> list[str]:
        folder = self.root / key
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def files(self, key: str) -> list[str]:
        folder = self.root / key
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())

    def fetch(self, keys: list[str], folder: Path) -> dict[str, Path]:
        return {key: self.root / key for key in keys}

    def name(self, key: str) -> str:
        return str(self.root / key) + ("/" if key.endswith("/") else "")


class S3Store(Store):
    def __init__(self, source: AwsDataExports):
        import boto3
        from botocore.config import Config as BotoConfig

        self.source = source
        match = re.fullmatch(r"s3://([^/]+)/?(.*)", source.s3 or "")
        self.bucket, prefix = match[1], match[2]
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.where = f"s3://{self.bucket}/{self.prefix}"
        self.fetched = 0
        with s3_errors(source, self.bucket):
            session = boto3.Session(profile_name=source.profile, region_name=source.region)
            self.client = session.client("s3", endpoint_url=source.endpoint_url, config=BotoConfig(
                connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 5}))

    def _pages(self, key: str, **options) -> Iterator[dict]:
        with s3_errors(self.source, self.bucket):
            yield from self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + key, **options)

    def folders(self, key: str) -> list[str]:
        found = [p["Prefix"][len(self.prefix + key):].rstrip("/")
                 for page in self._pages(key, Delimiter="/") for p in page.get("CommonPrefixes", ())]
        return sorted(f for f in found if f)

    def files(self, key: str) -> list[str]:
        return sorted(item["Key"][len(self.prefix):] for page in self._pages(key)
                      for item in page.get("Contents", ()) if not item["Key"].endswith("/"))

    def fetch(self, keys: list[str], folder: Path) -> dict[str, Path]:
        local = {}
        with s3_errors(self.source, self.bucket):
            for key in keys:
                self.fetched += 1
                path = folder / f"{self.fetched:05d}-{PurePosixPath(key).name}"  # flat: keys may hold anything
                self.client.download_file(self.bucket, self.prefix + key, str(path))
                local[key] = path
        return local

    def name(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


@contextlib.contextmanager
def s3_errors(source: AwsDataExports, bucket: str) -> Iterator[None]:
    """Turn what boto3 raises into one line that names the bucket and says what to do."""
    from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                     NoCredentialsError, ProfileNotFound, ReadTimeoutError)

    where = f"source {source.id!r}: bucket {bucket}"
    try:
        yield
    except ProfileNotFound:
        raise SourceError(f"source {source.id!r}: AWS profile {source.profile!r} not found in the AWS config "
                          "files") from None
    except NoCredentialsError:
        raise SourceError(f"{where}: no AWS credentials found; set `profile:` in the source, run `aws configure` "
                          "or `aws sso login`, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code == "NoSuchBucket":
            raise SourceError(f"{where} does not exist (NoSuchBucket); check the source's s3 URL"
                              + (f" and endpoint_url {source.endpoint_url}" if source.endpoint_url else "")) from None
        if code in ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem"):
            raise SourceError(f"{where}: access denied ({code} on {error.operation_name}); the credentials need "
                              "s3:ListBucket on the bucket and s3:GetObject on the export's objects") from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "TokenRefreshRequired"):
            raise SourceError(f"{where}: AWS credentials refused ({code}); refresh them, e.g. `aws sso login`, "
                              "or new access keys") from None
        if code in ("NoSuchKey", "404"):
            raise DataError(f"{where}: an object of the export vanished while it was read ({error.operation_name}); "
                            "AWS may be refreshing the export: run again") from None
        raise SourceUnavailable(f"{where}: S3 answered {code} on {error.operation_name}: "
                                f"{' '.join(str(details.get('Message', '')).split())[:200]}") from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise SourceUnavailable(f"{where}: cannot reach S3 ({type(error).__name__}); try again later") from None
    except BotoCoreError as error:
        raise SourceError(f"{where}: {' '.join(str(error).split())[:200]}") from None


def store_of(source: AwsDataExports) -> Store:
    if source.s3 is not None:
        return S3Store(source)
    if not source.path.is_dir():
        raise SourceError(f"source {source.id!r}: folder {source.path} not found")
    return LocalStore(source.path)


def export_folder(source: AwsDataExports, store: Store) -> str:
    """The key of the export's folder (the one holding ``data/`` and ``metadata/``): ``""`` or
    ``<export-name>/``."""
    top = store.folders("")
    if {"data", "metadata"} & set(top):
        return ""
    found = [f"{name}/" for name in top if {"data", "metadata"} & set(store.folders(f"{name}/"))]
    if len(found) > 1:
        raise SourceError(f"source {source.id!r}: {store.where} holds several exports ({', '.join(found)}); "
                          "point the source at one of them")
    if not found:
        raise SourceError(f"source {source.id!r}: no CUR 2.0 export at {store.where} (expected "
                          "<export-name>/data/BILLING_PERIOD=YYYY-MM/ and <export-name>/metadata/)")
    return found[0]


class Plan(NamedTuple):
    """What to read for the month.

    Attributes:
        data: keys of the Parquet files, sorted.
        manifest: key of the manifest that listed them, or ``None``.
    """

    data: list[str]
    manifest: str | None


def _parquet(key: str) -> bool:
    return key.endswith(PARQUET_SUFFIXES)


def _not_parquet_export(source: AwsDataExports, store: Store, key: str) -> SourceError:
    return SourceError(f"source {source.id!r}: {store.name(key)} is not Parquet; this source reads CUR 2.0 in "
                       "Parquet (set the export's file format to Parquet)")


def choose_manifest(source: AwsDataExports, store: Store, folder: str, month: Month) -> str | None:
    """The key of the manifest that names the month's current files, or ``None`` if there is none."""
    meta = f"{folder}metadata/BILLING_PERIOD={month}/"
    manifests = [k for k in store.files(meta) if k.endswith(MANIFEST_SUFFIX)]
    latest = [k for k in manifests if "/" not in k[len(meta):]]
    if len(latest) > 1:
        raise DataError(f"source {source.id!r}: two manifests for {month}, {store.name(latest[0])} and "
                        f"{store.name(latest[1])}; which one lists the period's files cannot be told: keep one")
    if latest:
        return latest[0]
    if len(manifests) > 1:
        raise DataError(f"source {source.id!r}: {len(manifests)} manifests for {month} in execution folders, e.g. "
                        f"{store.name(manifests[0])} and {store.name(manifests[-1])} (re-exports with 'create new'), "
                        f"and none in {store.name(meta)} to say which is current; copy that one too, or keep one "
                        "execution")
    return manifests[0] if manifests else None


def plan(source: AwsDataExports, store: Store, month: Month, folder: str, scratch: Path) -> Plan:
    """The month's data files: from its manifest's ``dataFiles``, else the Parquet files of its data folder."""
    data = f"{folder}data/BILLING_PERIOD={month}/"
    present = store.files(data)
    manifest = choose_manifest(source, store, folder, month)
    listed = None
    if manifest is not None:
        path = store.fetch([manifest], scratch)[manifest]
        listed = manifest_files(source, store.name(manifest), path, month)
    if listed is None:
        files = [k for k in present if _parquet(k)]
        if not files:
            other = [k for k in present if not k.endswith((".json", "/"))]
            if other:
                raise _not_parquet_export(source, store, other[0])
            raise DataError(f"source {source.id!r}: no data for {month}: no Parquet files under {store.name(data)}"
                            + ("" if manifest else
                               f" and no manifest under {store.name(f'{folder}metadata/BILLING_PERIOD={month}/')}"))
        places = sorted({str(PurePosixPath(k).parent) for k in files})
        if len(places) > 1:
            raise DataError(f"source {source.id!r}: the Parquet files of {month} are in {len(places)} folders "
                            f"({store.name(places[0])}/ and {store.name(places[1])}/, re-exports with 'create new') "
                            "and no manifest says which is current; reading them all would bill costs twice: copy "
                            "the period's manifest too, or keep one folder")
        return Plan(files, manifest)
    keys = []
    for entry in listed:
        at = entry.find(f"data/BILLING_PERIOD={month}/")
        if at < 0 or (at > 0 and entry[at - 1] != "/"):
            raise DataError(f"source {source.id!r}: {store.name(manifest)}: dataFiles lists {entry!r}, which is "
                            f"not in the data folder of {month} (data/BILLING_PERIOD={month}/)")
        key = folder + entry[at:]
        if not _parquet(key):
            raise _not_parquet_export(source, store, key)
        keys.append(key)
    keys = sorted(set(keys))
    if not keys:
        raise DataError(f"source {source.id!r}: no data for {month}: {store.name(manifest)} lists no data files")
    missing = [k for k in keys if k not in set(present)]
    if missing:
        raise DataError(f"source {source.id!r}: {store.name(manifest)} lists {store.name(missing[0])}, which is not "
                        f"there ({len(missing)} of {len(keys)} listed files missing); copy the export again")
    return Plan(keys, manifest)


def manifest_files(source: AwsDataExports, name: str, path: Path, month: Month) -> list[str] | None:
    """The manifest's ``dataFiles`` (``None`` when it has none), its ``billingPeriod`` checked."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise DataError(f"source {source.id!r}: {name}: not a readable manifest ({error})") from None
    if not isinstance(body, dict):
        raise DataError(f"source {source.id!r}: {name}: not a manifest (a JSON object)")
    period = body.get("billingPeriod")
    start = period.get("start") if isinstance(period, dict) else None
    if isinstance(start, str) and re.sub(r"\D", "", start)[:6] not in ("", month.compact):
        raise DataError(f"source {source.id!r}: {name}: billingPeriod starts {start!r}, not in {month}")
    if "dataFiles" not in body:
        return None
    files = body["dataFiles"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise DataError(f"source {source.id!r}: {name}: dataFiles is not a list of file names")
    return files


# --- reading -------------------------------------------------------------------------------------

def _text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reader(paths: list[Path], extra: str = "") -> str:
    return f"read_parquet([{', '.join(_text(str(p)) for p in paths)}], union_by_name = true{extra})"


class Shape(NamedTuple):
    """What the files hold: the columns every file has (name to DuckDB type) and the rows each
    file's footer records, by file index (from 1)."""

    columns: dict[str, str]
    footer_rows: dict[int, int]


def shape(connection: duckdb.DuckDBPyConnection, source: AwsDataExports, paths: list[Path], names: list[str],
          label_keys: tuple[str, ...]) -> Shape:
    """Each file's columns, checked: a readable Parquet file with the columns the reading needs."""
    common: dict[str, str] | None = None
    footer: dict[int, int] = {}
    for index, (path, name) in enumerate(zip(paths, names), start=1):
        try:
            described = connection.execute(f"DESCRIBE SELECT * FROM {_reader([path])}").fetchall()
            (rows,) = connection.execute(
                f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({_text(str(path))})").fetchone()
        except duckdb.Error as error:
            raise DataError(f"source {source.id!r}: {name}: not a readable Parquet file "
                            f"({' '.join(str(error).split())[:200]})") from None
        columns = {row[0]: row[1] for row in described}
        needed = REQUIRED + (source.cost_column,) + ((TAGS,) if label_keys else ())
        for column in needed:
            if column not in columns:
                why = (f"which the tag rules ({', '.join(label_keys)}) need" if column == TAGS else
                       "which the source's cost_column names" if column == source.cost_column else
                       "which CUR 2.0 has")
                raise DataError(f"source {source.id!r}: {name}: no column {column}, {why}; include it in the "
                                "export's query")
        if SERVICE_CODE not in columns and PRODUCT_CODE not in columns:
            raise DataError(f"source {source.id!r}: {name}: no column {PRODUCT_CODE} (nor {SERVICE_CODE}) to tell "
                            "the service; include it in the export's query")
        if TAGS in columns and label_keys and not columns[TAGS].startswith("MAP(VARCHAR, VARCHAR)"):
            raise DataError(f"source {source.id!r}: {name}: column {TAGS} is {columns[TAGS]}, not the "
                            "MAP(VARCHAR, VARCHAR) of CUR 2.0")
        footer[index] = int(rows)
        common = columns if common is None else {k: v for k, v in common.items() if k in columns}
    return Shape(common or {}, footer)


def _service(columns: dict[str, str]) -> str:
    parts = []
    if columns.get(PRODUCT, "").startswith("MAP(VARCHAR"):
        parts.append(f"nullif(element_at({_column(PRODUCT)}, 'product_name')[1], '')")
    parts += [f"nullif(CAST({_column(c)} AS VARCHAR), '')" for c in (SERVICE_CODE, PRODUCT_CODE) if c in columns]
    return "coalesce(" + ", ".join(parts + ["''"]) + ")"


def _tag(index: int, key: str, columns: dict[str, str]) -> str:
    if TAGS not in columns:
        return f"CAST(NULL AS VARCHAR) AS tag_{index}"
    return (f"coalesce(nullif(element_at({_column(TAGS)}, {_text(key)})[1], ''), "
            f"nullif(element_at({_column(TAGS)}, {_text(TAG_PREFIX + key)})[1], '')) AS tag_{index}")


def _amount(column: str) -> str:
    return f"TRY_CAST(CAST({_column(column)} AS VARCHAR) AS {AMOUNT})"


def _rows(source: AwsDataExports, paths: list[Path], columns: dict[str, str], month: Month,
          label_keys: tuple[str, ...]) -> str:
    """SQL: every row of the files, with its file index, row number, month, billing group, amount
    and problem (NULL for a sound row)."""
    cost = _column(source.cost_column)
    tags = "".join(f", {_tag(i, key, columns)}" for i, key in enumerate(label_keys))
    files = f"[{', '.join(_text(str(p)) for p in paths)}]"
    read = f"""
        SELECT list_position({files}, filename)::INTEGER AS file, file_row_number + 1 AS row_number,
               left(CAST({_column(PERIOD)} AS VARCHAR), 7) AS period,
               CAST({_column(PAYER)} AS VARCHAR) AS payer,
               coalesce(trim(CAST({_column(INVOICE)} AS VARCHAR)), '') = '' AS open,
               coalesce(CAST({_column(ACCOUNT)} AS VARCHAR), '') AS account,
               {_service(columns)} AS service,
               coalesce(CAST({_column(LINE_TYPE)} AS VARCHAR), '') AS line_type,
               nullif(trim(CAST({_column(CURRENCY)} AS VARCHAR)), '') AS currency{tags},
               CAST({cost} AS VARCHAR) AS amount_text, {_amount(source.cost_column)} AS amount
        FROM {_reader(paths, ", filename = true, file_row_number = true")}"""
    return f"""
        SELECT *, period = {_text(str(month))} AS in_month,
               CASE WHEN period IS NULL THEN 'no_period'
                    WHEN period <> {_text(str(month))} THEN NULL
                    WHEN amount_text IS NULL THEN 'no_cost'
                    WHEN amount IS NULL THEN 'not_number'
                    WHEN abs(amount) >= {AMOUNT_LIMIT} THEN 'too_large'
                    WHEN currency IS NULL THEN 'no_currency' END AS problem
        FROM ({read})"""


GROUPS = "cur_groups"


def load(connection: duckdb.DuckDBPyConnection, source: AwsDataExports, paths: list[Path],
         columns: dict[str, str], month: Month, label_keys: tuple[str, ...]) -> None:
    """Read every row once into ``GROUPS``: per file, period, payer, open or closed, problem and
    billing group, the rows, the first row number and the exact sum of the amounts."""
    tags = "".join(f", tag_{i}" for i in range(len(label_keys)))
    connection.execute(f"""
        CREATE TABLE {GROUPS} AS
        SELECT file, period, coalesce(in_month, false) AS in_month, payer, open, problem, account, service,
               line_type, currency{tags}, count(*) AS rows, min(row_number) AS first_row,
               sum(amount) FILTER (WHERE problem IS NULL) AS amount
        FROM ({_rows(source, paths, columns, month, label_keys)})
        GROUP BY ALL""")


def check(connection: duckdb.DuckDBPyConnection, source: AwsDataExports, month: Month, names: list[str],
          footer: dict[int, int]) -> tuple[list[str], bool]:
    """Refuse what cannot be billed; return warnings, and whether the period is still open."""
    read = dict(connection.execute(f"SELECT file, sum(rows)::BIGINT FROM {GROUPS} GROUP BY file").fetchall())
    for index, name in enumerate(names, start=1):
        if read.get(index, 0) != footer.get(index, 0):
            raise DataError(f"source {source.id!r}: {name}: its footer records {footer.get(index, 0)} rows but "
                            f"{read.get(index, 0)} were read; the file is damaged: copy it again")
    problems = connection.execute(f"""
        SELECT problem, min(file), sum(rows)::BIGINT, arg_min(first_row, file::BIGINT * 1000000000000 + first_row)
        FROM {GROUPS} WHERE problem IS NOT NULL GROUP BY problem ORDER BY min(file), problem""").fetchall()
    if problems:
        problem, file, count, row = problems[0]
        column, described = PROBLEMS[problem]
        more = sum(p[2] for p in problems) - count
        raise DataError(f"source {source.id!r}: {names[file - 1]}: row {row}: column "
                        f"{column.format(cost=source.cost_column)} {described}; {count} such row(s)"
                        + (f", and {more} other row(s) with problems" if more else ""))
    in_month = f"{GROUPS} WHERE in_month"
    (rows,) = connection.execute(f"SELECT coalesce(sum(rows), 0)::BIGINT FROM {in_month}").fetchone()
    if not rows:
        periods = [p for (p,) in connection.execute(
            f"SELECT DISTINCT period FROM {GROUPS} WHERE period IS NOT NULL ORDER BY 1").fetchall()]
        raise DataError(f"source {source.id!r}: no data for {month}: no row of {len(names)} file(s) has "
                        f"{PERIOD} in {month}" + (f" (they hold {', '.join(periods)})" if periods else " (they are empty)"))
    payers = connection.execute(f"""
        SELECT payer, min(file), sum(rows)::BIGINT FROM {in_month}
        AND payer IS DISTINCT FROM {_text(source.payer_account)} GROUP BY payer ORDER BY 2, 1""").fetchall()
    if payers:
        payer, file, count = payers[0]
        raise DataError(f"source {source.id!r}: {names[file - 1]}: column {PAYER} is "
                        f"{'empty' if payer is None else repr(payer)} on {count} row(s) of {month}, not the "
                        f"configured payer_account {source.payer_account}; point the source at that payer's "
                        "export, or correct payer_account")
    currencies = connection.execute(
        f"SELECT currency, min(file) FROM {in_month} GROUP BY currency ORDER BY 2, 1").fetchall()
    if len(currencies) > 1:
        (first, a), (second, b) = currencies[:2]
        raise DataError(f"source {source.id!r}: column {CURRENCY} holds {first} ({names[a - 1]}) and {second} "
                        f"({names[b - 1]}) for payer {source.payer_account} in {month}; one payer must bill in "
                        "one currency")
    warnings = []
    others = connection.execute(f"""
        SELECT string_agg(DISTINCT period, ', ' ORDER BY period), sum(rows)::BIGINT
        FROM {GROUPS} WHERE NOT in_month""").fetchone()
    if others[1]:
        warnings.append(f"{others[1]} row(s) of other billing periods ({others[0]}) in the files of {month} were "
                        f"left out ({PERIOD} not in {month})")
    (open_rows, open_file) = connection.execute(
        f"SELECT coalesce(sum(rows), 0)::BIGINT, min(file) FROM {in_month} AND open").fetchone()
    if open_rows:
        if not source.accept_provisional:
            raise DataError(f"source {source.id!r}: {names[open_file - 1]}: {open_rows} row(s) of {month} have no "
                            f"{INVOICE}: AWS has not closed the billing period yet; run again once it has (a few "
                            "days into the next month), or set accept_provisional: true for provisional invoices")
        warnings.append(f"{month} is not closed by AWS ({open_rows} row(s) without {INVOICE}): invoices are "
                        "provisional")
    return warnings, bool(open_rows)


def cost_rows(connection: duckdb.DuckDBPyConnection, source: AwsDataExports, month: Month,
              label_keys: tuple[str, ...]) -> tuple[CostRow, ...]:
    """The month's groups as cost rows: one per account, service, charge type, tags and currency."""
    tags = "".join(f", tag_{i}" for i in range(len(label_keys)))
    records = connection.execute(f"""
        SELECT account, service, line_type, currency{tags}, sum(amount) AS amount
        FROM {GROUPS} WHERE in_month GROUP BY ALL""").fetchall()
    groups: dict[tuple, dict] = {}
    for account, service, line_type, currency, *rest in records:
        *values, amount = rest
        if not isinstance(amount, Decimal):
            raise TypeError(f"amount arrived as {type(amount).__name__}, not Decimal")
        labels = tuple(sorted((k, v) for k, v in zip(label_keys, values) if v is not None))
        charge_type = LINE_ITEM_TYPES.get(line_type, OTHER)
        group = groups.setdefault((account, service, charge_type, labels, currency),
                                  {"cost": Decimal(0), "credits": {}})
        if line_type in CREDIT_TYPES:
            group["credits"][line_type] = group["credits"].get(line_type, Decimal(0)) + amount
        else:
            group["cost"] += amount
    return tuple(sorted(
        CostRow("aws", source.payer_account, str(month), account, service, charge_type, labels, currency,
                group["cost"], tuple(sorted(group["credits"].items())), source.id)
        for (account, service, charge_type, labels, currency), group in groups.items()))


def totals(connection: duckdb.DuckDBPyConnection, source: AwsDataExports, paths: list[Path],
           month: Month) -> tuple[SourceTotal, ...]:
    """The payer's total for the month, summed again from the files, apart from the groups."""
    found = connection.execute(f"""
        SELECT trim(CAST({_column(CURRENCY)} AS VARCHAR)) AS currency, sum({_amount(source.cost_column)}) AS total
        FROM {_reader(paths)}
        WHERE left(CAST({_column(PERIOD)} AS VARCHAR), 7) = ? AND CAST({_column(PAYER)} AS VARCHAR) = ?
        GROUP BY 1 ORDER BY 1""", [str(month), source.payer_account]).fetchall()
    return tuple(SourceTotal("aws", source.payer_account, str(month), currency, total) for currency, total in found)


def carried_keys(connection: duckdb.DuckDBPyConnection, paths: list[Path], columns: dict[str, str],
                 month: Month, label_keys: tuple[str, ...], rows: tuple[CostRow, ...]) -> frozenset[str]:
    """The configured tag keys some row of the month carries; when one is carried by none, also
    every key the month's rows hold (without ``user_``), to tell a typo from an absent tag."""
    carried = {key for key in label_keys if any(r.label(key) is not None for r in rows)}
    if carried == set(label_keys) or TAGS not in columns:
        return frozenset(carried)
    keys = connection.execute(f"""
        SELECT DISTINCT unnest(map_keys({_column(TAGS)})) FROM {_reader(paths)}
        WHERE left(CAST({_column(PERIOD)} AS VARCHAR), 7) = ?""", [str(month)]).fetchall()
    held = {key[len(TAG_PREFIX):] if key.startswith(TAG_PREFIX) else key for (key,) in keys if key}
    return frozenset(carried | held)


@contextlib.contextmanager
def _connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection under ``MEMORY_LIMIT``, in UTC, spilling to a temporary folder of its own."""
    spill = tempfile.mkdtemp(prefix="billing-duckdb-")
    connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": spill,
                                        "preserve_insertion_order": False})
    try:
        with contextlib.suppress(duckdb.Error):  # a TIMESTAMPTZ period is then read as of UTC
            connection.execute("SET TimeZone = 'UTC'")
        yield connection
    finally:
        connection.close()
        shutil.rmtree(spill, ignore_errors=True)


def _focus(source: AwsDataExports, store: Store, chosen: Plan, paths: list[Path], names: list[str], month: Month,
           label_keys: tuple[str, ...]) -> Collection:
    """The month of a FOCUS export (``table: focus``), read as ``focus-files`` reads FOCUS; its
    messages name the files as the export does (an ``s3://`` URL rather than a downloaded copy),
    and every row must be the payer's."""
    from . import focus_files

    as_focus = FocusFiles(type="focus-files", id=source.id, path=Path(store.where))
    try:
        collection = focus_files.read(as_focus, paths, "parquet", month, label_keys, under=store.where)
    except BillingError as error:
        message = str(error)
        for path, name in sorted(zip(map(str, paths), names), key=lambda pair: -len(pair[0])):
            message = message.replace(path, name)
        raise type(error)(message) from None
    others = sorted({t.billing_account for t in collection.totals} - {source.payer_account})
    if others:
        raise DataError(f"source {source.id!r}: the FOCUS export of {month} bills billing account {others[0]} "
                        f"(BillingAccountId), not the payer {source.payer_account}; give each payer its own source")
    read = f"read {len(paths)} FOCUS Parquet file(s) of {month}" + (
        f" listed by {store.name(chosen.manifest)}" if chosen.manifest else f" under {store.where}")
    return collection._replace(notes=(read,))


def collect(source: AwsDataExports, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: the export is always read anew."""
    store = store_of(source)
    scratch = Path(tempfile.mkdtemp(prefix="billing-cur-"))
    try:
        folder = export_folder(source, store)
        chosen = plan(source, store, month, folder, scratch)
        local = store.fetch(chosen.data, scratch)
        paths = [local[key] for key in chosen.data]
        names = [store.name(key) for key in chosen.data]
        if source.table == "focus":
            return _focus(source, store, chosen, paths, names, month, label_keys)
        with _connection() as connection:
            columns, footer = shape(connection, source, paths, names, label_keys)
            try:
                load(connection, source, paths, columns, month, label_keys)
                warnings, provisional = check(connection, source, month, names, footer)
                rows = cost_rows(connection, source, month, label_keys)
                source_totals = totals(connection, source, paths, month)
                carried = carried_keys(connection, paths, columns, month, label_keys, rows)
            except duckdb.Error as error:
                raise DataError(f"source {source.id!r}: cannot read the {month} files under {store.where}: "
                                f"{' '.join(str(error).split())[:300]}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    read = f"read {len(paths)} Parquet file(s) of {month}" + (
        f" listed by {store.name(chosen.manifest)}" if chosen.manifest else f" under {store.where}")
    return Collection(rows=rows, totals=source_totals, label_keys=carried, warnings=tuple(warnings),
                      notes=(read,), provisional=provisional)

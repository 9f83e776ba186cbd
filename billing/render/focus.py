"""The month's cost detail in FinOps FOCUS 1.2 columns: ``focus-YYYY-MM.csv`` and ``focus-YYYY-MM.parquet``.

For a FinOps tool (or a notebook) that reads FOCUS: one row per charge, every FOCUS 1.2 column
(in the specification's order), then the custom ``x_`` columns that say where each cost went.

Rows:

- each cost row (``cost-detail.csv``) is a row with ``BilledCost`` = its cost before credits,
  and each of its credits a row of its own (``ChargeCategory`` Credit, ``x_CreditType`` its
  type, ``BilledCost`` its amount, negative). A row that only carries credits (an AWS credit
  record: cost zero) gives its credit rows only. So ``BilledCost`` summed per provider and
  billing account is the source total of ``reconciliation.csv``, exactly (at full precision).
- each community's share of each part of each shared pool is a pair of rows, both with
  ``x_AllocatedFrom`` = the pool id and the same ``BillingAccountId``: one with ``x_Community``
  = the community (``x_Bucket`` community) and ``BilledCost`` = the share, one with
  ``x_SharedPool`` = the pool (``x_Bucket`` shared) and ``BilledCost`` = minus the share. The
  pool's own rows keep their full cost (``x_Bucket`` shared, ``x_SharedPool`` the pool).

  Why pairs: they net to zero, so every total over the file stays the source total, and a tool
  that sums ``BilledCost`` by ``x_Community`` (the usual chargeback view) gets each community's
  own cost plus its shares: the exact cloud cost its invoice rounds once (before a markup, a
  cap, credits its contract withholds, or conversion to another invoice currency). Summed by
  ``x_SharedPool``, a pool keeps only what its split rounded away (under half a cent per part).
  Carrying shares in a column other than ``BilledCost`` would leave shared cost with no
  community in every tool that does not know the column; leaving the pool's rows out would lose
  what the shared cost was (services, projects, labels). A share whose pool came from more than
  one billing account is split across them in proportion to the pool's cost on each, in whole
  minor units (largest remainder), so that each pair stays on one account. A share of zero
  gives no rows.

Values at this grain (grouped cost rows, no usage quantities or price lists):
``EffectiveCost``, ``ListCost`` and ``ContractedCost`` equal ``BilledCost`` (no amortised
commitments, no list or negotiated prices in the sources); ``ChargePeriodStart``/``End`` are the
invoice month, as ``BillingPeriodStart``/``End`` (start inclusive, end exclusive, UTC);
``ProviderName``, ``PublisherName`` and ``InvoiceIssuerName`` are the provider's name
(``records.provider_name``); ``ChargeClass`` is null (the sources do not say whether an
adjustment corrects an earlier invoice); ``ServiceCategory``/``ServiceSubcategory`` come from a
table of known services, else ``Other``. Columns the sources cannot fill are null:
``BillingAccountName`` (no source carries the account's display name), ``SubAccountName``,
``PricingQuantity``/``PricingUnit`` (the spec wants them on usage rows, but cost rows are grouped
across SKUs and carry no quantity), SKU, region, resource, commitment and capacity columns.
FOCUS 1.3's ``ServiceProviderName`` and ``HostProviderName`` are not 1.2 columns and are left out.

Custom columns: ``x_Bucket`` (community, shared, absorbed, rounding or unattributed, as in
``cost-detail.csv``), ``x_Community``, ``x_SharedPool``, ``x_AbsorbedReason``,
``x_AllocatedFrom`` (the pool an allocation row moves cost from), ``x_CreditType`` and
``x_InvoiceNumber`` (the community's finalized invoice of the month; null while it is a draft).

Amounts are exact decimals: plain decimal text in the CSV file (a ``csv_files.write_csv`` file:
byte order mark, formula-like text cells neutralised), DECIMAL(38, 18) in the Parquet file,
which DuckDB writes from a plain CSV copy read with explicit column types (no float ever holds
an amount). Rows are sorted, one thread writes the Parquet file, so the same run gives the same
bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import duckdb

from ..allocation import COSTS, Share
from ..config import Config
from ..errors import OutputError
from ..money import ZERO, round_to_total
from ..records import (ADJUSTMENT, CREDIT, OTHER, REFUND, ROUNDING, TAX, USAGE, Attributed, CostRow, Invoice,
                       Month, provider_name, sub_account_noun)
from . import csv_files

if TYPE_CHECKING:
    from ..run import MonthResult

FOCUS_VERSION = "1.2"

# Every FOCUS 1.2 column, in the specification's (alphabetical) order.
FOCUS_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags")
CUSTOM_COLUMNS = ("x_Bucket", "x_Community", "x_SharedPool", "x_AbsorbedReason", "x_AllocatedFrom", "x_CreditType",
                  "x_InvoiceNumber")
COLUMNS = FOCUS_COLUMNS + CUSTOM_COLUMNS

DECIMAL_COLUMNS = frozenset((
    "BilledCost", "CommitmentDiscountQuantity", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "ListCost", "ListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity"))
DATETIME_COLUMNS = frozenset(("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"))
JSON_COLUMNS = frozenset(("SkuPriceDetails", "Tags"))
PRECISION, SCALE = 38, 18  # Parquet DECIMAL(38, 18): 20 digits before the point, 18 after

CHARGE_CATEGORIES = {USAGE: "Usage", TAX: "Tax", CREDIT: "Credit", REFUND: "Credit", ADJUSTMENT: "Adjustment",
                     ROUNDING: "Adjustment", OTHER: "Usage"}
# Usage and what follows it (its tax, its credits) recur with use; corrections happen once; other
# provider charges (support fees, recurring reservation fees, purchases) recur whether used or not.
CHARGE_FREQUENCIES = {USAGE: "Usage-Based", TAX: "Usage-Based", CREDIT: "Usage-Based", REFUND: "One-Time",
                      ADJUSTMENT: "One-Time", ROUNDING: "One-Time", OTHER: "Recurring"}
ACCOUNT_TYPES = {"gcp": "Cloud Billing account", "aws": "Payer account", "azure": "Billing account"}
SUB_ACCOUNT_TYPES = {"gcp": "Project", "aws": "Linked account", "azure": "Subscription"}
OTHER_SERVICE = ("Other", "Other (Other)")
# ServiceCategory and ServiceSubcategory (FOCUS allowed values) of the services the sources name.
SERVICE_CATEGORIES = {
    "Compute Engine": ("Compute", "Virtual Machines"),
    "Kubernetes Engine": ("Compute", "Containers"),
    "Cloud Run": ("Compute", "Serverless Compute"),
    "Cloud Functions": ("Compute", "Serverless Compute"),
    "App Engine": ("Compute", "Serverless Compute"),
    "Cloud Storage": ("Storage", "Object Storage"),
    "Cloud Filestore": ("Storage", "Files"),
    "Filestore": ("Storage", "Files"),
    "Networking": ("Networking", "Other (Networking)"),
    "Cloud DNS": ("Networking", "Other (Networking)"),
    "Cloud Logging": ("Management and Governance", "Observability"),
    "Cloud Monitoring": ("Management and Governance", "Observability"),
    "BigQuery": ("Databases", "Data Warehouse"),
    "Cloud SQL": ("Databases", "Relational"),
    "Artifact Registry": ("Developer Tools", "Other (Developer Tools)"),
    "Container Registry": ("Developer Tools", "Other (Developer Tools)"),
    "Secret Manager": ("Security", "Credentials"),
    "Vertex AI": ("AI and Machine Learning", "Machine Learning"),
    "Support": ("Management and Governance", "Support"),
    "Amazon Elastic Compute Cloud": ("Compute", "Virtual Machines"),
    "EC2 - Other": ("Compute", "Virtual Machines"),
    "Amazon Elastic Container Service for Kubernetes": ("Compute", "Containers"),
    "Amazon Elastic Kubernetes Service": ("Compute", "Containers"),
    "Amazon Elastic Container Service": ("Compute", "Containers"),
    "AWS Lambda": ("Compute", "Serverless Compute"),
    "Amazon Simple Storage Service": ("Storage", "Object Storage"),
    "Amazon Elastic File System": ("Storage", "Files"),
    "Amazon Elastic Block Store": ("Storage", "Disk"),
    "Amazon Virtual Private Cloud": ("Networking", "Other (Networking)"),
    "Elastic Load Balancing": ("Networking", "Load Balancing"),
    "Amazon Route 53": ("Networking", "Other (Networking)"),
    "AWS Data Transfer": ("Networking", "Data Transfer"),
    "Amazon CloudFront": ("Networking", "Content Delivery"),
    "AmazonCloudWatch": ("Management and Governance", "Observability"),
    "Amazon Relational Database Service": ("Databases", "Relational"),
    "AWS Key Management Service": ("Security", "Credentials"),
    "Support fee": ("Management and Governance", "Support"),
    "Virtual Machines": ("Compute", "Virtual Machines"),
    "Azure Kubernetes Service": ("Compute", "Containers"),
    "Storage": ("Storage", "Other (Storage)"),
    "Bandwidth": ("Networking", "Data Transfer"),
}


def service_category(service: str) -> tuple[str, str]:
    """``"Compute Engine"`` -> ``("Compute", "Virtual Machines")``; an unknown service -> ``Other``."""
    if service.startswith("AWS Support"):
        return "Management and Governance", "Support"
    return SERVICE_CATEGORIES.get(service, OTHER_SERVICE)


def write_focus(folder: Path, result: MonthResult, config: Config) -> tuple[Path, Path]:
    """Write ``focus-YYYY-MM.csv`` and ``focus-YYYY-MM.parquet`` of ``result`` into ``folder``."""
    rows = focus_rows(result, config)
    name = f"focus-{result.month}"
    csv_path, parquet_path = folder / f"{name}.csv", folder / f"{name}.parquet"
    csv_files.write_csv(csv_path, COLUMNS, ([_text(row[column]) for column in COLUMNS] for row in rows),
                        numeric=DECIMAL_COLUMNS)
    _write_parquet(parquet_path, rows)
    return csv_path, parquet_path


def renumber(folder: Path, month: Month, invoices: Sequence[Invoice]) -> None:
    """Give the rows of ``folder``'s FOCUS files the invoice numbers of ``invoices`` (as finalize and
    void leave them: a community's finalized invoice, or none once it is voided), the rest as
    written: the same bytes a run computing the month anew would write."""
    csv_path = folder / f"focus-{month}.csv"
    if not csv_path.is_file():
        return  # a month billed before the FOCUS files existed
    numbers = _invoice_numbers(invoices)
    rows = [{**row, "x_InvoiceNumber": numbers.get(row["x_Community"], "") if row["x_Community"] else ""}
            for row in csv_files.read_csv(csv_path)]
    csv_files.write_csv(csv_path, COLUMNS, ([row[column] for column in COLUMNS] for row in rows),
                        numeric=DECIMAL_COLUMNS)
    _write_parquet(folder / f"focus-{month}.parquet", rows)


def focus_rows(result: MonthResult, config: Config) -> list[dict[str, object]]:
    """Every row of the month's FOCUS files, sorted, as ``{column: value}`` (``Decimal`` amounts,
    UTC ``datetime`` periods, ``None`` for null)."""
    numbers = _invoice_numbers(result.invoices)
    keyed = [(key, row) for item in result.attributed for key, row in _charge_rows(item, numbers)]
    keyed += _allocation_rows(result.attributed, result.shares, config, numbers)
    return [row for _, row in sorted(keyed, key=lambda pair: pair[0])]


def _invoice_numbers(invoices: Sequence[Invoice]) -> dict[str, str]:
    """Each community's finalized invoice of the month (a draft's reference is not a number yet)."""
    return {i.community_id: i.number for i in invoices if i.kind == "invoice" and i.status == "finalized"}


def _period(invoice_month: str) -> tuple[dt.datetime, dt.datetime]:
    month = Month.parse(invoice_month)
    start, end = month.first_day, month.next.first_day
    return (dt.datetime(start.year, start.month, 1, tzinfo=dt.timezone.utc),
            dt.datetime(end.year, end.month, 1, tzinfo=dt.timezone.utc))


def _base(provider: str, billing_account: str, invoice_month: str, currency: str, service: str,
          sub_account: str) -> dict[str, object]:
    """The columns every row of one provider's billing account and service has."""
    start, end = _period(invoice_month)
    name = provider_name(provider)
    category, subcategory = service_category(service) if service else OTHER_SERVICE
    row: dict[str, object] = dict.fromkeys(COLUMNS)
    row.update({
        "BillingAccountId": billing_account, "BillingAccountType": ACCOUNT_TYPES.get(provider, "Billing account"),
        "BillingCurrency": currency, "BillingPeriodStart": start, "BillingPeriodEnd": end,
        "ChargePeriodStart": start, "ChargePeriodEnd": end,
        "InvoiceIssuerName": name, "ProviderName": name, "PublisherName": name,
        "ServiceName": service or "Unknown service", "ServiceCategory": category, "ServiceSubcategory": subcategory,
        "SubAccountId": sub_account or None,
        "SubAccountType": SUB_ACCOUNT_TYPES.get(provider, "Sub account") if sub_account else None,
        "Tags": "{}",
    })
    return row


def _amount(row: dict[str, object], amount: Decimal) -> dict[str, object]:
    """``row`` charging ``amount``: billed, effective, list and contracted cost are one at this grain."""
    row.update(dict.fromkeys(("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"), amount))
    return row


def _charge_rows(item: Attributed, numbers: Mapping[str, str]) -> Iterable[tuple[tuple, dict[str, object]]]:
    """A cost row's own row (unless it only carries credits), then one row per credit."""
    row, bucket = item.row, item.bucket
    what = f"{provider_name(row.provider)}: {row.service}"
    if row.charge_type not in (USAGE, OTHER):
        what += f" {row.charge_type}"
    if row.project_or_account:
        what += f", {sub_account_noun(row.provider)} {row.project_or_account}"
    base = _base(row.provider, row.billing_account, row.invoice_month, row.currency, row.service,
                 row.project_or_account)
    base.update({"ChargeFrequency": CHARGE_FREQUENCIES.get(row.charge_type, "Usage-Based"),
                 "Tags": json.dumps(dict(row.labels), sort_keys=True, ensure_ascii=False),
                 "x_Bucket": bucket.kind})
    if bucket.kind == "community":
        base.update({"x_Community": bucket.name, "x_InvoiceNumber": numbers.get(bucket.name)})
    elif bucket.kind == "shared":
        base["x_SharedPool"] = bucket.name
    elif bucket.kind == "absorbed":
        base["x_AbsorbedReason"] = bucket.name
    key = (row.provider, row.billing_account, row.invoice_month, 0, bucket.kind, bucket.name, row)
    if not (row.cost.is_zero() and row.credits):
        yield key + (0, ""), _amount({**base, "ChargeCategory": CHARGE_CATEGORIES.get(row.charge_type, "Usage"),
                                      "ChargeDescription": what}, row.cost)
    for n, (credit_type, amount) in enumerate(row.credits, start=1):
        yield key + (n, credit_type), _amount({**base, "ChargeCategory": "Credit", "x_CreditType": credit_type,
                                               "ChargeDescription": f"{credit_type} credit on {what}"}, amount)


def _allocation_rows(attributed: Sequence[Attributed], shares: Sequence[Share], config: Config,
                     numbers: Mapping[str, str]) -> list[tuple[tuple, dict[str, object]]]:
    """For each share, on each billing account its pool's part came from: the share charged to
    the community, and the same amount taken off the pool."""
    pools: dict[tuple[str, str, str], dict[tuple[str, str, str], list[CostRow]]] = {}
    for item in attributed:
        if item.bucket.kind == "shared":
            row = item.row
            part = TAX if row.charge_type == TAX else COSTS
            accounts = pools.setdefault((item.bucket.name, part, row.currency), {})
            accounts.setdefault((row.provider, row.billing_account, row.invoice_month), []).append(row)
    names = {c.id: c.name for c in config.communities}
    keyed = []
    for share in shares:
        accounts = pools.get((share.pool, share.part, share.currency), {})
        if share.amount.is_zero() or not accounts:
            continue
        keys = sorted(accounts)
        exact = [sum((r.net for r in accounts[k]), ZERO) for k in keys]
        pool = config.pool(share.pool)
        shared = f"Shared tax: {pool.description}" if share.part == TAX else f"Shared: {pool.description}"
        for account, amount in zip(keys, _split(share.amount, exact, share.currency)):
            if amount.is_zero():
                continue
            rows = accounts[account]
            projects = {r.project_or_account for r in rows}
            categories = {service_category(r.service) for r in rows}
            base = _base(*account, share.currency, shared, projects.pop() if len(projects) == 1 else "")
            category, subcategory = categories.pop() if len(categories) == 1 else OTHER_SERVICE
            base.update({"ServiceCategory": category, "ServiceSubcategory": subcategory,
                         "ChargeCategory": "Tax" if share.part == TAX else "Usage", "ChargeFrequency": "Usage-Based",
                         "x_AllocatedFrom": share.pool})
            community = names.get(share.community, share.community)
            key = (*account, 1, share.pool, share.part, share.currency, share.community)
            keyed.append((key + (0,), _amount({
                **base, "x_Bucket": "community", "x_Community": share.community,
                "x_InvoiceNumber": numbers.get(share.community),
                "ChargeDescription": f"{community}'s share of shared pool {share.pool} ({pool.description})"},
                amount)))
            keyed.append((key + (1,), _amount({
                **base, "x_Bucket": "shared", "x_SharedPool": share.pool,
                "ChargeDescription": f"Shared pool {share.pool} ({pool.description}): share allocated to {community}"},
                -amount)))
    return keyed


def _split(amount: Decimal, exact: list[Decimal], currency: str) -> list[Decimal]:
    """``amount`` (in minor units) over accounts in proportion to ``exact``, in minor units."""
    total = sum(exact, ZERO)
    if len(exact) == 1 or total.is_zero():
        return [amount] + [ZERO] * (len(exact) - 1)
    return round_to_total([amount * part / total for part in exact], currency, amount)


def _text(value: object) -> object:
    """A cell of the CSV files: plain decimal text, ISO 8601 UTC, ``""`` for null."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _plain(amount: Decimal) -> str:
    """Every digit, no exponent, trailing zeros dropped to two decimals: ``1.500000000`` -> ``1.50``.
    (Not ``Decimal.normalize``, which rounds to the context's 28 digits.)"""
    whole, _, fraction = format(amount.copy_abs() if amount.is_zero() else amount, "f").partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _places(amount: Decimal) -> int:
    """Decimal places ``amount`` needs: ``1.50`` -> 1."""
    digits = "".join(map(str, amount.as_tuple().digits))
    return -(amount.as_tuple().exponent + len(digits) - len(digits.rstrip("0")))


def _duckdb_type(column: str) -> str:
    if column in DECIMAL_COLUMNS:
        return f"DECIMAL({PRECISION}, {SCALE})"
    if column in DATETIME_COLUMNS:
        return "TIMESTAMP WITH TIME ZONE"
    return "JSON" if column in JSON_COLUMNS else "VARCHAR"


def _check_fits(rows: Sequence[dict[str, object]]) -> None:
    """Refuse an amount the Parquet type would round, rather than change it silently."""
    for row in rows:
        for column in DECIMAL_COLUMNS:
            value = row[column]
            if isinstance(value, Decimal) and not value.is_zero():
                if not value.is_finite() or _places(value) > SCALE or value.adjusted() >= PRECISION - SCALE:
                    raise OutputError(f"{column} {value} of {row['BillingAccountId']} ({row['ServiceName']}) does "
                                      f"not fit the FOCUS Parquet file's DECIMAL({PRECISION}, {SCALE}) exactly")


def _write_parquet(path: Path, rows: Sequence[dict[str, object]]) -> None:
    """The rows as Parquet, typed, through a plain CSV copy that DuckDB reads with the types given."""
    _check_fits(rows)
    types = ", ".join(f"'{column}': '{_duckdb_type(column)}'" for column in COLUMNS)
    with tempfile.TemporaryDirectory(prefix="billing-focus-") as scratch:
        plain = Path(scratch) / "focus.csv"
        with plain.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows([_text(row[column]) for column in COLUMNS] for row in rows)
        connection = duckdb.connect()
        try:
            connection.execute("SET threads = 1")  # one writer: the same rows give the same bytes
            connection.execute("SET TimeZone = 'UTC'")
            source = (f"read_csv(?, header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
                      f"columns = {{{types}}})")
            relation = connection.sql(f"SELECT * FROM {source}", params=[str(plain)])
            relation.write_parquet(str(path), compression="zstd")
        finally:
            connection.close()

"""FOCUS 1.2 files with Azure-shaped rows, made up for tests (deterministic, no randomness).

Azure Cost Management's FOCUS export: the billing account is
``/providers/Microsoft.Billing/billingAccounts/<id>``, each subscription a ``SubAccountId``
(``/subscriptions/<guid>``), the resource group in ``x_ResourceGroupName`` and the tags of the
resource (and those it inherits from its resource group) in ``Tags``. ``row()`` makes one charge
with every FOCUS 1.2 column; ``write_csv`` / ``write_parquet`` write rows as an export would.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

# FOCUS 1.2: column -> (feature level, data type, allows nulls). The 57 columns of the 1.2 column
# history (1.2 added BillingAccountType, InvoiceId, PricingCurrency, the three PricingCurrency*
# columns and SubAccountType). ServiceProviderName and HostProviderName are FOCUS 1.3 columns.
MANDATORY, RECOMMENDED, CONDITIONAL = "Mandatory", "Recommended", "Conditional"
STRING, DECIMAL, DATETIME, JSON = "String", "Decimal", "Date/Time", "JSON"
SPEC = {
    "AvailabilityZone": (RECOMMENDED, STRING, True),
    "BilledCost": (MANDATORY, DECIMAL, False),
    "BillingAccountId": (MANDATORY, STRING, False),
    "BillingAccountName": (MANDATORY, STRING, True),
    "BillingAccountType": (CONDITIONAL, STRING, True),
    "BillingCurrency": (MANDATORY, STRING, False),
    "BillingPeriodEnd": (MANDATORY, DATETIME, False),
    "BillingPeriodStart": (MANDATORY, DATETIME, False),
    "CapacityReservationId": (CONDITIONAL, STRING, True),
    "CapacityReservationStatus": (CONDITIONAL, STRING, True),
    "ChargeCategory": (MANDATORY, STRING, False),
    "ChargeClass": (MANDATORY, STRING, True),
    "ChargeDescription": (MANDATORY, STRING, True),
    "ChargeFrequency": (RECOMMENDED, STRING, False),
    "ChargePeriodEnd": (MANDATORY, DATETIME, False),
    "ChargePeriodStart": (MANDATORY, DATETIME, False),
    "CommitmentDiscountCategory": (CONDITIONAL, STRING, True),
    "CommitmentDiscountId": (CONDITIONAL, STRING, True),
    "CommitmentDiscountName": (CONDITIONAL, STRING, True),
    "CommitmentDiscountQuantity": (CONDITIONAL, DECIMAL, True),
    "CommitmentDiscountStatus": (CONDITIONAL, STRING, True),
    "CommitmentDiscountType": (CONDITIONAL, STRING, True),
    "CommitmentDiscountUnit": (CONDITIONAL, STRING, True),
    "ConsumedQuantity": (CONDITIONAL, DECIMAL, True),
    "ConsumedUnit": (CONDITIONAL, STRING, True),
    "ContractedCost": (MANDATORY, DECIMAL, False),
    "ContractedUnitPrice": (CONDITIONAL, DECIMAL, True),
    "EffectiveCost": (MANDATORY, DECIMAL, False),
    "InvoiceId": (RECOMMENDED, STRING, True),
    "InvoiceIssuerName": (MANDATORY, STRING, False),
    "ListCost": (MANDATORY, DECIMAL, False),
    "ListUnitPrice": (CONDITIONAL, DECIMAL, True),
    "PricingCategory": (CONDITIONAL, STRING, True),
    "PricingCurrency": (CONDITIONAL, STRING, True),
    "PricingCurrencyContractedUnitPrice": (CONDITIONAL, DECIMAL, True),
    "PricingCurrencyEffectiveCost": (CONDITIONAL, DECIMAL, True),
    "PricingCurrencyListUnitPrice": (CONDITIONAL, DECIMAL, True),
    "PricingQuantity": (MANDATORY, DECIMAL, True),
    "PricingUnit": (MANDATORY, STRING, True),
    "ProviderName": (MANDATORY, STRING, False),
    "PublisherName": (MANDATORY, STRING, False),
    "RegionId": (CONDITIONAL, STRING, True),
    "RegionName": (CONDITIONAL, STRING, True),
    "ResourceId": (CONDITIONAL, STRING, True),
    "ResourceName": (CONDITIONAL, STRING, True),
    "ResourceType": (CONDITIONAL, STRING, True),
    "ServiceCategory": (MANDATORY, STRING, False),
    "ServiceName": (MANDATORY, STRING, False),
    "ServiceSubcategory": (MANDATORY, STRING, False),
    "SkuId": (CONDITIONAL, STRING, True),
    "SkuMeter": (CONDITIONAL, STRING, True),
    "SkuPriceDetails": (CONDITIONAL, JSON, True),
    "SkuPriceId": (CONDITIONAL, STRING, True),
    "SubAccountId": (CONDITIONAL, STRING, True),
    "SubAccountName": (CONDITIONAL, STRING, True),
    "SubAccountType": (CONDITIONAL, STRING, True),
    "Tags": (CONDITIONAL, JSON, True),
}

# Every column of FOCUS 1.2, in the specification's order, then an Azure custom column.
COLUMNS = (*SPEC, "x_ResourceGroupName")
ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/7654321"
EURO_ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/9988776"
HUBS = "/subscriptions/0b5f2c1e-0000-4000-8000-00000000a001"
LAB = "/subscriptions/0b5f2c1e-0000-4000-8000-00000000a002"


def period(month: str) -> tuple[str, str]:
    """``"2024-09"`` -> its start and (exclusive) end, as Azure writes them."""
    year, number = int(month[:4]), int(month[5:])
    after = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return f"{month}-01T00:00:00Z", f"{after}-01T00:00:00Z"


def row(month: str, cost: str, *, category: str = "Usage", charge_class: str | None = None,
        subscription: str = HUBS, service: str = "Virtual Machines", tags: dict | str | None = None,
        currency: str = "USD", account: str = ACCOUNT, resource_group: str = "hubs-rg",
        description: str = "D4s v5 compute hours") -> dict[str, str]:
    """One charge. ``tags`` is written as JSON (a ``str`` as given, to make it broken)."""
    start, end = period(month)
    amount = Decimal(cost)
    values = dict.fromkeys(COLUMNS, "")
    values.update({
        "BilledCost": str(amount), "EffectiveCost": str(amount), "ListCost": str(amount), "ContractedCost": str(amount),
        "BillingAccountId": account, "BillingAccountName": "Example Hosting Ltd", "BillingAccountType": "Billing Profile",
        "BillingCurrency": currency, "BillingPeriodStart": start, "BillingPeriodEnd": end,
        "ChargePeriodStart": start, "ChargePeriodEnd": end, "ChargeCategory": category,
        "ChargeClass": charge_class or "", "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based" if category == "Usage" else "One-Time",
        "InvoiceIssuerName": "Microsoft", "ProviderName": "Microsoft", "PublisherName": "Microsoft",
        "InvoiceId": f"G{month.replace('-', '')}0001",
        "RegionId": "westeurope", "RegionName": "West Europe", "ServiceName": service, "ServiceCategory": "Compute",
        "SubAccountId": subscription, "SubAccountName": subscription.rsplit("-", 1)[-1],
        "SubAccountType": "Subscription", "PricingCurrency": currency, "x_ResourceGroupName": resource_group,
        "ResourceId": f"{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/vm1",
    })
    if tags is not None:
        values["Tags"] = tags if isinstance(tags, str) else json.dumps(tags, sort_keys=True)
    return values


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    """Rows as an Azure FOCUS CSV export (``.gz`` in the name: gzip'd)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def write_parquet(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    """Rows as Parquet, amounts as DECIMAL(38, 18) and times as timestamps (written by DuckDB)."""
    import duckdb

    source = write_csv(path.with_suffix(".csv"), rows, columns)
    kinds = {c: "DECIMAL(38, 18)" if c.endswith("Cost") else "TIMESTAMPTZ" if c.endswith(("Start", "End")) else "VARCHAR"
             for c in columns}
    spec = "{" + ", ".join(f"'{c}': '{k}'" for c, k in kinds.items()) + "}"
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT * FROM read_csv('{source}', header = true, columns = {spec})) "
                           f"TO '{path}' (FORMAT parquet)")
    source.unlink()
    return path


def month_rows(month: str = "2024-09") -> list[dict[str, str]]:
    """A month of two subscriptions: usage with and without tags, a credit, tax, a correction of
    an earlier month's usage, a purchase, and a second billing account billing in EUR."""
    hub = {"hub": "oceanhackweek", "environment": "prod"}
    return [
        row(month, "120.125", tags=hub),
        row(month, "30.0000000001", tags={**hub, "x_cost-center": "42"}, service="Storage"),
        row(month, "7.5", tags={"environment": "staging"}, service="Storage"),
        row(month, "11.11", subscription=LAB, tags={"hub": "lab"}, resource_group="lab-rg"),
        row(month, "4.40", subscription=LAB),  # untagged
        row(month, "-20.00", category="Credit", tags=hub, description="Azure credit offer"),
        row(month, "9.64", category="Tax", service="Tax", description="VAT"),
        row(month, "-3.25", charge_class="Correction", tags=hub, description="Correction of August usage"),
        row(month, "100", category="Purchase", service="Reserved VM Instances", description="1-year reservation"),
        row(month, "55.55", currency="EUR", account=EURO_ACCOUNT, subscription=LAB, tags={"hub": "lab"}),
        row(month, "5.55", category="Tax", currency="EUR", account=EURO_ACCOUNT, subscription=LAB, service="Tax"),
    ]

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

# Every column of FOCUS 1.2, in the order written, plus an Azure custom column.
COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit",
    "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName",
    "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory",
    "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId",
    "SubAccountId", "SubAccountName", "SubAccountType", "Tags", "x_ResourceGroupName",
)
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

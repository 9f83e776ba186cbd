"""Generate the demo billing data (deterministic, standard library only).

Usage: python demo/generate.py [FOLDER]   (default: demo/data beside this script)

The demo world: an organisation hosts JupyterHubs for many communities on GCP and
AWS and passes the cloud cost through to them. Invoice months: 2022-08, 2022-09 and
2022-10. Money is built with Decimal from a seeded Random, never with floats.

GCP: billing account 01A2B3-C4D5E6-F7A8B9, USD.
  gcp/billing-export-YYYY-MM.json.gz, one file per USAGE month 2022-07..2022-10, is
  the detailed billing export table as `bq extract --destination_format
  NEWLINE_DELIMITED_JSON` writes it (gzip'd, one row per line). One row stands for a
  day's use of one sku by one namespace (real exports are hourly and far bigger).
  - hubs-shared-gke: shared GKE cluster "hubs-shared". Rows are labelled with a
    k8s-namespace: community hubs paleohack, neurohackademy (large), oceanhackweek,
    coessing (small), plus support, kube:system-overhead and kube:unallocated.
    Its Cloud Storage, Networking and Filestore rows have no labels at all.
  - callysto-hub, temple-jupyterhub: dedicated clusters "callysto" and "temple"
    (namespaces prod, staging, support), partly paid by "Research credits".
  - hubs-internal-staging: the organisation's own staging project (no labels).
  Late usage: about a third of the rows used in the last 2 days of a month carry the
  NEXT month's invoice.month, so the 2022-07 file holds only rows invoiced in 202208,
  and October's late rows are invoiced in 202211 (outside the demo).
  Credits (negative, never more than the row's cost): sustained use and committed
  use discounts on Compute Engine, promotions, free tier on some Cloud Storage rows.
  Each invoice month has one tax row per project and a rounding_error row (project
  null); 2022-09 also has a negative adjustment on hubs-shared-gke.

AWS: payer account 111111111111, USD. Saved Cost Explorer GetCostAndUsage responses
  (MONTHLY, UnblendedCost), one JSON file per page chained by NextPageToken, for two
  requests a month, as the aws-cost-explorer source caches them:
  - aws/YYYY-MM/usage/page-N.json: RECORD_TYPE Usage only, GroupBy LINKED_ACCOUNT and
    TAG 2i2c:hub-name ("2i2c:hub-name$", an empty value, is untagged cost);
  - aws/YYYY-MM/record-types/page-N.json: everything, GroupBy RECORD_TYPE and
    LINKED_ACCOUNT: each account's Usage (the exact sum of its usage groups) plus Tax,
    a Credit (CIROH research credits, 2022-09), a Refund (shared cluster, 2022-10) and
    the management account's Support fee.
  Accounts:
  - 222222222222 ciroh-hub: dedicated CIROH cluster, mostly untagged.
  - 333333333333 hubs-shared-eks: shared cluster with hubs lis (London
    Interdisciplinary School), oceanhackweek and staging, plus untagged cost.
  - 111111111111 management: the payer's own small untagged costs.

Azure: billing account /providers/Microsoft.Billing/billingAccounts/7654321, USD.
  azure/focus-YYYY-MM.csv, one file per billing period 2022-08..2022-10, is what Azure Cost
  Management's FOCUS 1.2 export writes (CSV, every FOCUS 1.2 column): one row per day, service
  and subscription (real exports have a row per resource and meter), tags as a JSON object.
  - subscription ...a001 "ohw-azure-hub": OceanHackWeek's dedicated hub (an AKS cluster),
    tagged hub=oceanhackweek; September has an Azure sponsorship credit.
  - subscription ...a002 "hubs-azure-lab": the organisation's own test lab (untagged).

Metrics: metrics/YYYY-MM.csv (community, metric, value) as a Prometheus export would give
them: memory-request byte-hours of the hubs on the shared EKS cluster (to split its
untagged cost) and NeuroHackademy's monthly active users (for a tiered fee).
"""

import calendar
import csv
import datetime as dt
import gzip
import hashlib
import json
import shutil
import sys
import uuid
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from random import Random

DATA = Path(__file__).resolve().parent / "data"
BILLING_ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
INVOICE_MONTHS = [(2022, 8), (2022, 9), (2022, 10)]
USAGE_MONTHS = [(2022, 7)] + INVOICE_MONTHS
MICRO = Decimal("0.000001")
GIB, MONTH_SECONDS = 2**30, 2629743

SERVICES = {
    "compute": {"id": "6F81-5844-456A", "description": "Compute Engine"},
    "gke": {"id": "CCD8-9BF1-090E", "description": "Kubernetes Engine"},
    "storage": {"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"},
    "network": {"id": "E505-1604-58F8", "description": "Networking"},
    "filestore": {"id": "D97E-AB26-5D95", "description": "Cloud Filestore"},
    "rounding": {"id": "ROUNDING", "description": "Invoice"},
}
# sku: service, sku id, description, usage unit, pricing unit, USD per pricing unit,
# usage units per pricing unit
SKUS = {
    "core": ("compute", "0B84-F1F5-4F4C", "N2 Instance Core running in Americas",
             "seconds", "hour", "0.031611", 3600),
    "ram": ("compute", "7B2F-9D1C-3E5A", "N2 Instance Ram running in Americas",
            "byte-seconds", "gibibyte hour", "0.004237", 3600 * GIB),
    "pd": ("compute", "D973-5D65-BAB2", "Storage PD Capacity",
           "byte-seconds", "gibibyte month", "0.04", MONTH_SECONDS * GIB),
    "fee": ("gke", "B561-BFBD-1264", "Regional Kubernetes Clusters",
            "seconds", "hour", "0.1", 3600),
    "gcs": ("storage", "E5F0-6A5D-7BAD", "Standard Storage US Multi-region",
            "byte-seconds", "gibibyte month", "0.026", MONTH_SECONDS * GIB),
    "egress": ("network", "9DE9-9092-B3BC", "Network Internet Egress from Americas to Americas",
               "bytes", "gibibyte", "0.12", GIB),
    "filestore": ("filestore", "C3C1-A9D4-5E6F", "Filestore Capacity Basic HDD (Standard)",
                  "byte-seconds", "gibibyte hour", "0.000274", 3600 * GIB),
}
# project id: number, name, GKE cluster (or None), {namespace: USD/day},
# {unlabelled sku: USD/day}
PROJECTS = {
    "hubs-shared-gke": (
        "412345678901", "Shared hubs cluster", "hubs-shared",
        {"paleohack": 25, "neurohackademy": 60, "oceanhackweek": 30, "coessing": 6,
         "support": 18, "kube:system-overhead": 14, "kube:unallocated": 22},
        {"gcs": 8, "egress": 6, "filestore": 10}),
    "callysto-hub": ("423456789012", "Callysto hub", "callysto",
                     {"prod": 45, "staging": 8, "support": 6}, {"gcs": 3}),
    "temple-jupyterhub": ("434567890123", "Temple University JupyterHub", "temple",
                          {"prod": 26, "staging": 5, "support": 4}, {"gcs": 2}),
    "hubs-internal-staging": ("445678901234", "Hubs internal staging", None,
                              {}, {"core": 7, "gcs": 1, "egress": 2}),
}
DEDICATED = ("callysto-hub", "temple-jupyterhub")
NAMESPACE_SKUS = {"core": 60, "ram": 30, "pd": 10}  # percent of a namespace's daily cost
CLUSTER_FEE = Decimal("2.40")  # GKE management fee per cluster and day
CREDITS = {  # type: name, full_name, id
    "SUSTAINED_USAGE_DISCOUNT": ("Sustained Usage Discount", None, "SustainedUsageDiscount"),
    "COMMITTED_USAGE_DISCOUNT": ("Committed use discount: CPU", None, "CommittedUsageDiscountCpu"),
    "PROMOTION": ("Research credits", "Research credits", "promotions/1234567890123456789"),
    "FREE_TIER": ("Free tier", None, "FreeTier"),
}

TAG_KEY = "2i2c:hub-name"
AWS_ACCOUNTS = {"111111111111": "management", "222222222222": "ciroh-hub",
                "333333333333": "hubs-shared-eks"}
AWS_GROUPS = [  # linked account, hub tag ("" = untagged), min and max USD per month
    ("111111111111", "", 40, 60),
    ("222222222222", "", 3000, 3700),
    ("222222222222", "ciroh", 100, 250),
    ("333333333333", "", 60, 140),
    ("333333333333", "lis", 600, 800),
    ("333333333333", "oceanhackweek", 300, 500),
    ("333333333333", "staging", 150, 250),
]
# Record types other than Usage, per month: (linked account, record type, min, max USD).
AWS_OTHER_RECORDS = {
    (2022, 8): [("111111111111", "Tax", 2, 6), ("222222222222", "Tax", 150, 250)],
    (2022, 9): [("111111111111", "Tax", 2, 6), ("222222222222", "Tax", 150, 250),
                ("222222222222", "Credit", -600, -400), ("111111111111", "Support fee", 29, 29)],
    (2022, 10): [("111111111111", "Tax", 2, 6), ("222222222222", "Tax", 150, 250),
                 ("333333333333", "Refund", -25, -5), ("111111111111", "Support fee", 29, 29)],
}


AZURE_ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/7654321"
AZURE_SUBSCRIPTIONS = {  # id: name, {(service, service category): USD per day}, tags
    "/subscriptions/0b5f2c1e-0000-4000-8000-00000000a001": (
        "ohw-azure-hub", {("Azure Kubernetes Service", "Compute"): 12}, {"hub": "oceanhackweek", "environment": "prod"}),
    "/subscriptions/0b5f2c1e-0000-4000-8000-00000000a002": (
        "hubs-azure-lab", {("Virtual Machines", "Compute"): 2}, None),
}
AZURE_CREDITS = {(2022, 9): ("/subscriptions/0b5f2c1e-0000-4000-8000-00000000a001", "-45.00")}
# Every column of FOCUS 1.2, in the order the export writes them, and an Azure custom column.
FOCUS_COLUMNS = (
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


# ---------------------------------------------------------------- helpers
def to_json(value):
    """Compact JSON in which Decimals are written exactly as JSON numbers."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." not in text:
            return text + ".0"
        text = text.rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def usd(rng, low_micro, high_micro):
    return Decimal(rng.randint(low_micro, high_micro)) / Decimal(10**6)


def around(rng, micro):
    """A cost in USD within 30% of `micro` micro-USD."""
    return usd(rng, micro * 70 // 100, micro * 130 // 100)


def ts(moment, micros=False):
    return moment.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if micros else "") + " UTC")


def next_month(year, month):
    return (year + 1, 1) if month == 12 else (year, month + 1)


def days_in(year, month):
    return calendar.monthrange(year, month)[1]


def month_label(year, month):
    return f"{year:04d}-{month:02d}"


# ---------------------------------------------------------------- GCP rows
def row(project_id, service, sku, start, cost, invoice, cost_type="regular", labels=(),
        credits=(), usage=None, resource=None, export=None):
    number, name = PROJECTS[project_id][:2] if project_id else (None, None)
    if service == "rounding":
        location = dict.fromkeys(["location", "country", "region", "zone"])
    elif service == "storage":
        location = {"location": "US", "country": "US", "region": None, "zone": None}
    else:
        location = {"location": "us-central1", "country": "US", "region": "us-central1",
                    "zone": "us-central1-b"}
    no_usage = {"amount": Decimal(0), "unit": None, "amount_in_pricing_units": Decimal(0),
                "pricing_unit": None}
    project = {"id": project_id, "number": number, "name": name, "labels": [],
               "ancestry_numbers": "/100000000001/200000000002/"} if project_id else None
    return {
        "billing_account_id": BILLING_ACCOUNT, "service": SERVICES[service], "sku": sku,
        "usage_start_time": ts(start), "usage_end_time": ts(start + dt.timedelta(hours=1)),
        "project": project, "labels": [{"key": k, "value": v} for k, v in labels],
        "system_labels": [], "location": location,
        "resource": resource or {"name": None, "global_name": None},
        "export_time": ts(export or start + dt.timedelta(hours=6), micros=True),
        "cost": cost, "currency": "USD", "currency_conversion_rate": Decimal("1.0"),
        "usage": usage or no_usage, "credits": list(credits),
        "invoice": {"month": "%04d%02d" % invoice}, "cost_type": cost_type, "adjustment_info": None,
    }


def resource_for(rng, project_id, sku_key):
    if sku_key in ("core", "ram"):
        node = f"gke-node-{rng.randrange(16**6):06x}"
        return {"name": node, "global_name": f"//compute.googleapis.com/projects/{project_id}"
                                             f"/zones/us-central1-b/instances/{node}"}
    if sku_key == "gcs":
        bucket = f"{project_id}-homes"
        return {"name": bucket, "global_name": f"//storage.googleapis.com/projects/_/buckets/{bucket}"}
    return None


def usage_for(cost, sku_key):
    unit, pricing_unit, price, factor = SKUS[sku_key][3:]
    in_pricing = (cost / Decimal(price)).quantize(MICRO)
    return {"amount": (in_pricing * factor).quantize(Decimal(1)), "unit": unit,
            "amount_in_pricing_units": in_pricing, "pricing_unit": pricing_unit}


def credits_for(rng, project_id, sku_key, cost):
    """0-2 credits, each a share of what earlier credits left, so they never exceed cost."""
    wanted = []  # credit type, min and max permille of the remaining cost
    if sku_key in ("core", "ram") and rng.randrange(100) < 20:
        wanted.append(("SUSTAINED_USAGE_DISCOUNT", 50, 200))
    if sku_key == "core" and project_id == "hubs-shared-gke" and rng.randrange(100) < 12:
        wanted.append(("COMMITTED_USAGE_DISCOUNT", 200, 370))
    if project_id in DEDICATED and rng.randrange(100) < 15:
        wanted.append(("PROMOTION", 200, 1000))
    if sku_key == "gcs" and rng.randrange(100) < 10:
        wanted.append(("FREE_TIER", 10, 150))
    credits, remaining = [], cost
    for kind, low, high in wanted[:2]:
        amount = (remaining * rng.randint(low, high) / 1000).quantize(MICRO, rounding=ROUND_DOWN)
        if amount > 0:
            name, full_name, credit_id = CREDITS[kind]
            credits.append({"name": name, "amount": -amount, "full_name": full_name,
                            "id": credit_id, "type": kind})
            remaining -= amount
    return credits


def usage_row(rng, project_id, sku_key, labels, day, cost):
    service, sku_id, description = SKUS[sku_key][:3]
    start = day + dt.timedelta(hours=rng.randrange(24))
    invoice = (day.year, day.month)
    export = start + dt.timedelta(hours=rng.randint(2, 20), seconds=rng.randrange(3600))
    if day.day > days_in(day.year, day.month) - 2 and rng.randrange(3) == 0:
        invoice = next_month(day.year, day.month)  # late usage: billed next month
        export = dt.datetime(*invoice, rng.randint(3, 5), rng.randrange(24), rng.randrange(60))
    return row(project_id, service, {"id": sku_id, "description": description}, start, cost,
               invoice, labels=labels, credits=credits_for(rng, project_id, sku_key, cost),
               usage=usage_for(cost, sku_key), resource=resource_for(rng, project_id, sku_key),
               export=export + dt.timedelta(microseconds=rng.randrange(10**6)))


def day_rows(rng, day):
    for project_id, (_, _, cluster, namespaces, unlabelled) in PROJECTS.items():
        cluster_label = [("goog-k8s-cluster-name", cluster)] if cluster else []
        for namespace, per_day in namespaces.items():
            labels = cluster_label + [("k8s-namespace", namespace)]
            for sku_key, percent in NAMESPACE_SKUS.items():
                if sku_key != "pd" or project_id == "hubs-shared-gke":
                    cost = around(rng, per_day * percent * 10**4)
                    yield usage_row(rng, project_id, sku_key, labels, day, cost)
        if cluster:
            yield usage_row(rng, project_id, "fee", cluster_label, day, CLUSTER_FEE)
        for sku_key, per_day in unlabelled.items():
            yield usage_row(rng, project_id, sku_key, [], day, around(rng, per_day * 10**6))


def invoice_rows(rng, year, month):
    """Tax per project, one rounding_error row and, in 2022-09, an adjustment."""
    end, invoice = dt.datetime(year, month, days_in(year, month), 23), (year, month)
    for project_id in PROJECTS:
        yield row(project_id, "gke", {"id": "TAX-0000-0000", "description": "Tax"}, end,
                  usd(rng, 1 * 10**6, 40 * 10**6), invoice, "tax")
    sign = 1 if rng.randrange(2) else -1
    yield row(None, "rounding", {"id": "ROUNDING", "description": "Rounding error"}, end,
              sign * usd(rng, 1000, 5000), invoice, "rounding_error")
    if (year, month) == (2022, 9):
        sku = {"id": "ADJ-0000-0000", "description": "Billing adjustment"}
        yield row("hubs-shared-gke", "compute", sku, dt.datetime(2022, 9, 15),
                  -usd(rng, 24 * 10**6, 26 * 10**6), invoice, "adjustment")


def gcp_rows(rng, year, month):
    rows = [r for d in range(1, days_in(year, month) + 1)
            for r in day_rows(rng, dt.datetime(year, month, d))]
    if (year, month) not in INVOICE_MONTHS:  # 2022-07: only its late rows matter
        return [r for r in rows if r["invoice"]["month"] != "%04d%02d" % (year, month)]
    return rows + list(invoice_rows(rng, year, month))


def write_gcp(rng, data):
    (data / "gcp").mkdir(parents=True)
    for year, month in USAGE_MONTHS:
        rows = gcp_rows(rng, year, month)
        path = data / "gcp" / f"billing-export-{month_label(year, month)}.json.gz"
        with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write("".join(to_json(r) + "\n" for r in rows).encode())
        print(f"wrote {path} ({len(rows)} rows)")


# ---------------------------------------------------------------- AWS pages
def opaque(*parts):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def aws_amount(rng, low, high):
    return Decimal(rng.randint(low * 10**10, high * 10**10)) / Decimal(10**10)


def aws_group(keys, amount):
    cost = {"Amount": format(amount.quantize(Decimal("1E-10")), "f"), "Unit": "USD"}
    return {"Keys": keys, "Metrics": {"UnblendedCost": cost}}


def aws_usage(rng):
    """(linked account, hub tag) -> Usage amount."""
    return {(account, tag): aws_amount(rng, low, high) for account, tag, low, high in AWS_GROUPS}


def usage_groups(usage):
    return sorted((aws_group([account, f"{TAG_KEY}${tag}"], amount) for (account, tag), amount in usage.items()),
                  key=lambda g: g["Keys"])


def record_type_groups(rng, year, month, usage):
    """Usage per account (the exact sum of its tag groups) plus the month's other record types."""
    totals = {}
    for (account, _), amount in usage.items():
        totals[("Usage", account)] = totals.get(("Usage", account), Decimal(0)) + amount
    for account, record_type, low, high in AWS_OTHER_RECORDS[(year, month)]:
        totals[(record_type, account)] = aws_amount(rng, low, high)
    return sorted((aws_group(list(keys), amount) for keys, amount in totals.items()), key=lambda g: g["Keys"])


def aws_page(year, month, query, definitions, groups, number, last):
    label = month_label(year, month)
    accounts = sorted({key for g in groups for key in g["Keys"] if key in AWS_ACCOUNTS})
    page = {
        "GroupDefinitions": definitions,
        "ResultsByTime": [{
            "TimePeriod": {"Start": f"{label}-01", "End": month_label(*next_month(year, month)) + "-01"},
            "Total": {}, "Groups": groups, "Estimated": False}],
        "DimensionValueAttributes": [{"Value": a, "Attributes": {"description": AWS_ACCOUNTS[a]}}
                                     for a in accounts],
    }
    if not last:
        page["NextPageToken"] = opaque("token", label, query, str(number + 1))
    page["ResponseMetadata"] = {"RequestId": str(uuid.UUID(opaque("request", label, query, str(number))[:32])),
                                "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
    return page


QUERIES = {  # folder: GroupDefinitions of the request saved there
    "usage": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": TAG_KEY}],
    "record-types": [{"Type": "DIMENSION", "Key": "RECORD_TYPE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
}


def write_aws(rng, data):
    for year, month in INVOICE_MONTHS:
        usage = aws_usage(rng)
        groups = {"usage": usage_groups(usage), "record-types": record_type_groups(rng, year, month, usage)}
        for query, definitions in QUERIES.items():
            size = rng.randint(3, 4)  # Cost Explorer picks its own page size
            chunks = [groups[query][i:i + size] for i in range(0, len(groups[query]), size)]
            folder = data / "aws" / month_label(year, month) / query
            folder.mkdir(parents=True)
            for number, chunk in enumerate(chunks, start=1):
                path = folder / f"page-{number}.json"
                page = aws_page(year, month, query, definitions, chunk, number, number == len(chunks))
                path.write_text(json.dumps(page, separators=(",", ":")) + "\n")
                print(f"wrote {path} ({len(chunk)} groups)")


# ---------------------------------------------------------------- usage metrics
METRICS = [  # community, metric, low, high: per month, as a Prometheus export would give them
    ("lis", "memory-request-byte-hours", 2 * 10**12, 5 * 10**12),
    ("oceanhackweek", "memory-request-byte-hours", 1 * 10**12, 3 * 10**12),
    ("neurohackademy", "monthly-active-users", 150, 600),
]


# ---------------------------------------------------------------- Azure FOCUS rows
def iso(day):
    return day.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_row(period, day_start, day_end, subscription, service, category, cost, tags, charge, description):
    name = AZURE_SUBSCRIPTIONS[subscription][0]
    values = dict.fromkeys(FOCUS_COLUMNS, "")
    values.update({
        "BilledCost": str(cost), "EffectiveCost": str(cost), "ListCost": str(cost), "ContractedCost": str(cost),
        "BillingAccountId": AZURE_ACCOUNT, "BillingAccountName": "Open Hub Hosting Cooperative",
        "BillingAccountType": "Billing Profile", "BillingCurrency": "USD", "BillingPeriodStart": iso(period[0]),
        "BillingPeriodEnd": iso(period[1]), "ChargeCategory": charge, "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based" if charge == "Usage" else "One-Time", "ChargePeriodStart": iso(day_start),
        "ChargePeriodEnd": iso(day_end), "InvoiceIssuerName": "Microsoft", "ProviderName": "Microsoft",
        "PublisherName": "Microsoft", "InvoiceId": f"G{period[0]:%Y%m}0001",
        "PricingCurrency": "USD", "RegionId": "westeurope", "RegionName": "West Europe", "ServiceName": service,
        "ServiceCategory": category, "SubAccountId": subscription, "SubAccountName": name,
        "SubAccountType": "Subscription", "x_ResourceGroupName": f"{name}-rg",
        "Tags": json.dumps(tags, sort_keys=True) if tags else "",
    })
    if charge == "Usage":
        values["ResourceId"] = f"{subscription}/resourceGroups/{name}-rg/providers/{service.replace(' ', '')}/{name}"
    return values


def azure_rows(rng, year, month):
    start = dt.datetime(year, month, 1)
    end = dt.datetime(*next_month(year, month), 1)
    rows = []
    for day in range(1, days_in(year, month) + 1):
        day_start = dt.datetime(year, month, day)
        for subscription, (_, services, tags) in AZURE_SUBSCRIPTIONS.items():
            for (service, category), per_day in services.items():
                cost = around(rng, per_day * 1_000_000)
                rows.append(focus_row((start, end), day_start, day_start + dt.timedelta(days=1), subscription,
                                      service, category, cost, tags, "Usage", f"{service} usage"))
    if (year, month) in AZURE_CREDITS:
        subscription, amount = AZURE_CREDITS[(year, month)]
        rows.append(focus_row((start, end), start, end, subscription, "Azure Kubernetes Service", "Compute", Decimal(amount),
                              AZURE_SUBSCRIPTIONS[subscription][2], "Credit", "Azure sponsorship credit"))
    return rows


def write_azure(rng, data):
    (data / "azure").mkdir(parents=True)
    for year, month in INVOICE_MONTHS:
        path = data / "azure" / f"focus-{month_label(year, month)}.csv"
        rows = azure_rows(rng, year, month)
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=FOCUS_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {path} ({len(rows)} rows)")


def write_metrics(rng, data):
    (data / "metrics").mkdir(parents=True)
    for year, month in INVOICE_MONTHS:
        path = data / "metrics" / f"{month_label(year, month)}.csv"
        lines = ["community,metric,value"] + [f"{c},{m},{rng.randint(low, high)}" for c, m, low, high in METRICS]
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path} ({len(METRICS)} values)")


def main(data=DATA):
    """Write the demo data into ``data`` (default: demo/data beside this script)."""
    data = Path(data)
    for part in ("gcp", "aws", "azure", "metrics"):
        shutil.rmtree(data / part, ignore_errors=True)
    rng = Random(20220901)
    write_gcp(rng, data)
    write_aws(rng, data)
    write_metrics(rng, data)
    write_azure(Random(20220902), data)  # its own sequence: the other parts stay as they were


if __name__ == "__main__":
    main(*sys.argv[1:2])

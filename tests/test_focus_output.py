"""The month's FOCUS 1.2 files (``focus-YYYY-MM.csv`` and ``.parquet``), checked against the
FOCUS 1.2 column list and against the month's other files.

The FinOps Foundation's own checker (``focus-validator`` 1.0.0 on PyPI) validates the pre-1.0
column names and pins numpy and sqlglot versions that conflict with this project's, so it cannot
be used here. The check below is written from the FOCUS 1.2 specification instead (the
FOCUS_Spec repository, ``specification/columns/*.md`` and ``CHANGELOG.md`` at 1.2): each
column's feature level, data type and nullability, and the allowed values of the columns that
have them. Row-level rules that depend on data the sources do not have are not checked and are
not met: PricingQuantity and PricingUnit are null on usage rows (cost rows are grouped across
SKUs and carry no quantity).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from billing.allocation import Share
from billing.cli import main
from billing.config import load_config
from billing.money import quantize
from billing.pricing import withheld_credit_types
from billing.records import Attributed, Bucket, CostRow, Month
from billing.render import focus
from billing.render.csv_files import read_csv, restored
from billing.run import MonthResult, compute_month

from conftest import ROOT
from focus_data import DATETIME, DECIMAL, JSON, MANDATORY, SPEC, STRING

DEMO_CONFIG = ROOT / "config" / "billing.yaml"
MONTH = "2022-09"

SUBCATEGORIES = {
    "AI and Machine Learning": ("Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
                                "Other (AI and Machine Learning)"),
    "Analytics": ("Analytics Platform", "Business Intelligence", "Data Processing", "Search", "Streaming Analytics",
                  "Other (Analytics)"),
    "Business Applications": ("Other (Business Applications)",),
    "Compute": ("Containers", "End User Computing", "Quantum", "Serverless Compute", "Virtual Machines",
                "Other (Compute)"),
    "Databases": ("Caching", "Data Warehouse", "Relational", "NoSQL", "Ledger", "Time Series", "Other (Databases)"),
    "Developer Tools": ("Other (Developer Tools)",),
    "Identity": ("Other (Identity)",),
    "Integration": ("API Management", "Messaging", "Workflow Automation", "Other (Integration)"),
    "Internet of Things": ("Other (Internet of Things)",),
    "Management and Governance": ("Administration", "Architecture", "Compliance", "Cost Management",
                                  "Data Governance", "Disaster Recovery", "Observability", "Support",
                                  "Other (Management and Governance)"),
    "Media": ("Other (Media)",),
    "Migration": ("Other (Migration)",),
    "Mobile": ("Other (Mobile)",),
    "Multicloud": ("Other (Multicloud)",),
    "Networking": ("Content Delivery", "Data Transfer", "Load Balancing", "Network Management", "Network Security",
                   "Other (Networking)"),
    "Security": ("CSPM", "Credentials", "SIEM", "Threat Detection", "Other (Security)"),
    "Storage": ("Backups", "Bulk Transfer", "Disk", "Files", "Object Storage", "Other (Storage)"),
    "Web": ("Other (Web)",),
    "Other": ("Other (Other)",),
}
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "CapacityReservationStatus": {"Used", "Unused"},
    "CommitmentDiscountCategory": {"Spend", "Usage"},
    "CommitmentDiscountStatus": {"Used", "Unused"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
    "ServiceCategory": set(SUBCATEGORIES),
}
DATETIME_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")  # FOCUS Date/Time Format: ISO 8601, UTC
PARQUET_TYPES = {DECIMAL: ("DECIMAL(",), DATETIME: ("TIMESTAMP WITH TIME ZONE",), JSON: ("JSON", "VARCHAR"),
                 STRING: ("VARCHAR",)}


def focus_problems(columns: list[str], rows: list[dict[str, str]]) -> list[str]:
    """What makes a table (cells as text, ``""`` for null) not a FOCUS 1.2 dataset, one line per
    kind of problem; empty when it passes."""
    problems = [f"mandatory column {c} is missing" for c, (level, _, _) in SPEC.items()
                if level == MANDATORY and c not in columns]
    problems += [f"column {c} is neither a FOCUS 1.2 column nor prefixed x_" for c in columns
                 if c not in SPEC and not c.startswith("x_")]
    custom = [i for i, c in enumerate(columns) if c.startswith("x_")]
    if custom and any(c in SPEC for c in columns[min(custom):]):
        problems.append("a FOCUS column comes after a custom column")
    found: set[str] = set()
    for row in rows:
        found.update(_row_problems({c: row[c] for c in columns}))
    return problems + sorted(found)


def _row_problems(row: dict[str, str]) -> list[str]:
    problems = []
    for column, value in row.items():
        if column not in SPEC:
            continue
        _, kind, nullable = SPEC[column]
        if value == "":
            if not nullable:
                problems.append(f"{column} is null")
            continue
        if kind == DECIMAL:
            try:
                Decimal(value)
            except InvalidOperation:
                problems.append(f"{column} {value!r} is not a decimal")
            if re.search(r"[eE]", value):
                problems.append(f"{column} {value!r} is not plain decimal text")
        elif kind == DATETIME and not DATETIME_FORMAT.fullmatch(value):
            problems.append(f"{column} {value!r} is not an ISO 8601 UTC date/time")
        elif kind == JSON:
            try:
                if not isinstance(json.loads(value), dict):
                    problems.append(f"{column} {value!r} is not a JSON object")
            except ValueError:
                problems.append(f"{column} {value!r} is not JSON")
        if column in ALLOWED and value not in ALLOWED[column]:
            problems.append(f"{column} {value!r} is not an allowed value")
    if row.get("ServiceSubcategory") and row.get("ServiceCategory") in SUBCATEGORIES:
        if row["ServiceSubcategory"] not in SUBCATEGORIES[row["ServiceCategory"]]:
            problems.append(f"ServiceSubcategory {row['ServiceSubcategory']!r} is not one of "
                            f"{row['ServiceCategory']}'s")
    if not re.fullmatch(r"[A-Z]{3}", row.get("BillingCurrency") or ""):
        problems.append(f"BillingCurrency {row.get('BillingCurrency')!r} is not an ISO 4217 code")
    for period in ("BillingPeriod", "ChargePeriod"):
        start, end = row.get(f"{period}Start", ""), row.get(f"{period}End", "")
        if DATETIME_FORMAT.fullmatch(start) and DATETIME_FORMAT.fullmatch(end) and not end > start:
            problems.append(f"{period}End is not after {period}Start")
    for parent, child in (("BillingAccountId", "BillingAccountType"), ("SubAccountId", "SubAccountType")):
        if child in row and bool(row[child]) != bool(row.get(parent)):
            problems.append(f"{child} is not null exactly when {parent} is not null")
    if row.get("ChargeCategory") == "Tax" and (row.get("PricingQuantity") or row.get("PricingUnit")):
        problems.append("PricingQuantity or PricingUnit is not null on a Tax row")
    return problems


def read_focus_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and rows of a FOCUS CSV file, text cells as written before neutralising."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        columns = next(csv.reader(handle))
    return columns, read_csv(path)


def read_parquet(path: Path) -> tuple[dict[str, str], list[dict[str, object]]]:
    """The column types and the rows of a Parquet file, as DuckDB reads them."""
    relation = duckdb.connect().sql(f"SELECT * FROM read_parquet('{path}')")
    return dict(zip(relation.columns, map(str, relation.types))), [dict(zip(relation.columns, r))
                                                                  for r in relation.fetchall()]


def as_text(value: object) -> str:
    """A Parquet value as the CSV file writes it."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def parquet_problems(path: Path) -> list[str]:
    """``focus_problems`` for a Parquet file, and each FOCUS column stored as its data type."""
    types, rows = read_parquet(path)
    problems = [f"{c} is stored as {t}, not {SPEC[c][1]}" for c, t in types.items()
                if c in SPEC and not t.startswith(PARQUET_TYPES[SPEC[c][1]])]
    return problems + focus_problems(list(types), [{c: as_text(v) for c, v in r.items()} for r in rows])


def amounts(rows, by, column="BilledCost") -> dict:
    totals: dict = {}
    for row in rows:
        key = by(row)
        totals[key] = totals.get(key, Decimal(0)) + Decimal(row[column])
    return totals


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("output")
    result = CliRunner().invoke(main, ["run", "--month", MONTH, "--config", str(DEMO_CONFIG), "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output / MONTH


@pytest.fixture(scope="module")
def rows(folder) -> list[dict[str, str]]:
    return read_focus_csv(folder / f"focus-{MONTH}.csv")[1]


def test_the_month_folder_has_both_files_and_the_csv_is_excel_friendly(folder):
    data = (folder / f"focus-{MONTH}.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and (folder / f"focus-{MONTH}.parquet").stat().st_size > 0


def test_the_csv_file_passes_the_focus_1_2_check(folder):
    columns, rows = read_focus_csv(folder / f"focus-{MONTH}.csv")
    assert focus_problems(columns, rows) == []
    assert set(SPEC) <= set(columns)  # every FOCUS 1.2 column, the optional ones empty where unknown
    assert [c for c in columns if c.startswith("x_")] == ["x_Bucket", "x_Community", "x_SharedPool",
                                                          "x_AbsorbedReason", "x_AllocatedFrom", "x_CreditType",
                                                          "x_InvoiceNumber"]


def test_the_parquet_file_passes_the_focus_1_2_check_with_exact_decimal_types(folder):
    assert parquet_problems(folder / f"focus-{MONTH}.parquet") == []
    types, _ = read_parquet(folder / f"focus-{MONTH}.parquet")
    assert types["BilledCost"] == "DECIMAL(38,18)" and types["BillingPeriodStart"] == "TIMESTAMP WITH TIME ZONE"


def test_csv_and_parquet_hold_the_same_rows_in_the_same_order(folder, rows):
    types, parquet = read_parquet(folder / f"focus-{MONTH}.parquet")
    assert list(types) == list(rows[0])
    assert len(parquet) == len(rows)
    for text, typed in zip(rows, parquet):
        for column, value in typed.items():
            if isinstance(value, Decimal):
                assert Decimal(text[column]) == value, column
            else:
                assert restored(text[column]) == as_text(value), column


def test_billed_cost_adds_up_to_each_accounts_source_total_exactly(folder, rows):
    by_account = amounts(rows, lambda r: r["BillingAccountId"])
    detail = amounts(read_csv(folder / "cost-detail.csv"), lambda r: r["billing_account"], "net")
    assert by_account == detail  # at full precision: every cost and credit once, shares netting to zero
    reconciliation = read_csv(folder / "reconciliation.csv")
    assert {r["billing_account"]: Decimal(r["source_total"]) for r in reconciliation} == {
        account: quantize(total, "USD") for account, total in by_account.items()}
    names = {"gcp": "Google Cloud", "aws": "Amazon Web Services", "azure": "Microsoft Azure"}
    assert {(r["ProviderName"], r["BillingAccountId"]) for r in rows} == {
        (names[r["provider"]], r["billing_account"]) for r in reconciliation}


def test_summing_by_community_gives_its_own_cost_plus_its_shares(folder, rows):
    by_community = amounts(rows, lambda r: r["x_Community"])
    expected = amounts([r for r in read_csv(folder / "cost-detail.csv") if r["bucket"] == "community"],
                       lambda r: r["assigned_to"], "net")
    for share in read_csv(folder / "shared-allocation.csv"):
        expected[share["community_id"]] += Decimal(share["amount"])
    assert {c: a for c, a in by_community.items() if c} == expected


def test_that_is_each_communitys_cloud_cost_as_invoiced_before_rounding(folder, rows):
    """The invoice's lines passed through at cost (provider lines and shares; not a markup or a
    cap) add up to that sum rounded once, less the credits the contract withholds."""
    config = load_config(DEMO_CONFIG)
    lines = read_csv(folder / "invoice-lines.csv")
    checked = []
    for community in config.communities:
        mine = [line for line in lines if line["community_id"] == community.id and line["section"] == "cloud"
                and (line["provider"] or line["description"].startswith("Shared"))]
        if not mine or mine[0]["currency"] != "USD":
            continue  # invoiced in another currency: converted after rounding
        withheld = withheld_credit_types(community, Month.parse(MONTH))
        exact = sum((Decimal(r["BilledCost"]) for r in rows
                     if r["x_Community"] == community.id and r["x_CreditType"] not in withheld), Decimal(0))
        assert sum(Decimal(line["amount"]) for line in mine) == quantize(exact, "USD"), community.id
        checked.append(community.id)
    assert "temple" in checked and len(checked) >= 5  # temple's contract withholds its PROMOTION credits


def test_shares_are_pairs_that_net_to_zero_and_leave_the_pool_its_rounding(folder, rows):
    allocated = [r for r in rows if r["x_AllocatedFrom"]]
    assert allocated and all(r["x_Bucket"] in ("community", "shared") for r in allocated)
    pairs = amounts(allocated, lambda r: (r["x_AllocatedFrom"], r["BillingAccountId"], r["ChargeCategory"]))
    assert set(pairs.values()) == {Decimal(0)}
    shares = {(s["pool"], s["community_id"], "Tax" if s["part"] == "tax" else "Usage"): Decimal(s["amount"])
              for s in read_csv(folder / "shared-allocation.csv") if Decimal(s["amount"])}
    assert amounts([r for r in allocated if r["x_Community"]],
                   lambda r: (r["x_AllocatedFrom"], r["x_Community"], r["ChargeCategory"])) == shares
    for pool, left in amounts(rows, lambda r: r["x_SharedPool"]).items():
        if pool:
            assert abs(left) < Decimal("0.01"), pool  # under half a cent for each of its two parts


def test_rows_say_what_they_are(rows):
    credits = [r for r in rows if r["x_CreditType"]]
    assert credits and all(r["ChargeCategory"] == "Credit" and Decimal(r["BilledCost"]) < 0 for r in credits)
    assert {r["x_Bucket"] for r in rows} == {"community", "shared", "absorbed", "rounding"}  # none unattributed
    assert {r["ChargeCategory"] for r in rows if r["x_Bucket"] == "rounding"} == {"Adjustment"}  # Google's rounding
    assert all(r["x_AbsorbedReason"] for r in rows if r["x_Bucket"] == "absorbed")
    labelled = [r for r in rows if r["Tags"] != "{}"]
    assert labelled and all(json.loads(r["Tags"]) for r in labelled)
    assert {r["BillingPeriodStart"] for r in rows} == {"2022-09-01T00:00:00Z"}
    assert {r["BillingPeriodEnd"] for r in rows} == {"2022-10-01T00:00:00Z"}
    assert all(r["x_InvoiceNumber"] == "" for r in rows)  # drafts: no number yet


@pytest.mark.parametrize("break_it, problem", [
    (lambda cols, rows: (cols[:1] + cols[2:], rows), "mandatory column BilledCost is missing"),
    (lambda cols, rows: (cols, [{**rows[0], "ChargeCategory": "Discount"}] + rows[1:]),
     "ChargeCategory 'Discount' is not an allowed value"),
    (lambda cols, rows: (cols, [{**rows[0], "ChargeClass": "Regular"}] + rows[1:]),
     "ChargeClass 'Regular' is not an allowed value"),
    (lambda cols, rows: (cols, [{**rows[0], "ChargeFrequency": "Monthly"}] + rows[1:]),
     "ChargeFrequency 'Monthly' is not an allowed value"),
    (lambda cols, rows: (cols + ["Community"], [{**r, "Community": ""} for r in rows]),
     "column Community is neither a FOCUS 1.2 column nor prefixed x_"),
    (lambda cols, rows: (cols, [{**rows[0], "Tags": "k8s-namespace=prod"}] + rows[1:]),
     "Tags 'k8s-namespace=prod' is not JSON"),
    (lambda cols, rows: (cols, [{**rows[0], "BilledCost": "1,234.00"}] + rows[1:]),
     "BilledCost '1,234.00' is not a decimal"),
    (lambda cols, rows: (cols, [{**rows[0], "BillingPeriodEnd": "2022-09-01T00:00:00Z"}] + rows[1:]),
     "BillingPeriodEnd is not after BillingPeriodStart"),
    (lambda cols, rows: (cols, [{**rows[0], "ChargePeriodStart": "2022-09-01"}] + rows[1:]),
     "ChargePeriodStart '2022-09-01' is not an ISO 8601 UTC date/time"),
])
def test_the_check_fails_on_a_broken_copy(folder, tmp_path, break_it, problem):
    columns, rows = read_focus_csv(folder / f"focus-{MONTH}.csv")
    columns, rows = break_it(columns, rows)
    broken = tmp_path / "broken.csv"
    with broken.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert problem in focus_problems(*read_focus_csv(broken))


def test_the_parquet_check_fails_on_an_amount_stored_as_a_float(folder, tmp_path):
    broken = tmp_path / "broken.parquet"
    duckdb.connect().execute(f"COPY (SELECT * REPLACE (CAST(BilledCost AS DOUBLE) AS BilledCost) FROM "
                             f"read_parquet('{folder / f'focus-{MONTH}.parquet'}')) TO '{broken}' (FORMAT parquet)")
    assert "BilledCost is stored as DOUBLE, not Decimal" in parquet_problems(broken)


@pytest.fixture(scope="module")
def computed():
    return compute_month(load_config(DEMO_CONFIG), Month.parse(MONTH))


def test_the_same_month_gives_the_same_bytes(computed, tmp_path):
    config = load_config(DEMO_CONFIG)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        focus.write_focus(tmp_path / name, computed, config)
    for path in (tmp_path / "one").iterdir():
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes(), path.name


def test_a_finalized_invoice_gives_its_number_to_the_communitys_rows(computed, tmp_path):
    invoices = tuple(i._replace(number=f"INV-2022-{n:05}", status="finalized") if i.community_id == "paleohack"
                     else i for n, i in enumerate(computed.invoices, start=1))
    focus.write_focus(tmp_path, computed._replace(invoices=invoices), load_config(DEMO_CONFIG))
    rows = read_csv(tmp_path / f"focus-{MONTH}.csv")
    numbered = {r["x_InvoiceNumber"] for r in rows if r["x_Community"] == "paleohack"}
    assert numbered == {"INV-2022-00001"}
    assert {r["x_InvoiceNumber"] for r in rows if r["x_Community"] != "paleohack"} == {""}
    assert any(r["x_AllocatedFrom"] for r in rows if r["x_InvoiceNumber"])  # its shares too


def test_an_amount_the_parquet_type_cannot_hold_exactly_stops_the_writer(computed, tmp_path):
    item = computed.attributed[0]
    tiny = item._replace(row=item.row._replace(cost=Decimal("1E-19")))
    with pytest.raises(focus.OutputError, match=r"does not fit the FOCUS Parquet file's DECIMAL\(38, 18\)"):
        focus.write_focus(tmp_path, computed._replace(attributed=(tiny,) + computed.attributed[1:]),
                          load_config(DEMO_CONFIG))


def test_a_pool_from_two_billing_accounts_is_shared_on_each_in_proportion():
    def pool_row(account: str, cost: str) -> Attributed:
        return Attributed(CostRow("gcp", account, MONTH, "hubs-shared-gke", "Compute Engine", "usage", (), "USD",
                                  Decimal(cost), (), "gcp-export"), Bucket("shared", "gke-support"), 0)

    shares = tuple(Share("gke-support", c, "USD", Decimal("2.00"), Decimal(1), Decimal("4.00"))
                   for c in ("neurohackademy", "paleohack"))
    result = MonthResult(Month.parse(MONTH), (pool_row("A", "3.00"), pool_row("B", "1.00")), (), (), (), shares=shares)
    rows = focus.focus_rows(result, load_config(DEMO_CONFIG))
    assert amounts(rows, lambda r: r["BillingAccountId"]) == {"A": Decimal("3.00"), "B": Decimal("1.00")}
    assert amounts([r for r in rows if r["x_Community"]], lambda r: (r["x_Community"], r["BillingAccountId"])) == {
        ("neurohackademy", "A"): Decimal("1.50"), ("neurohackademy", "B"): Decimal("0.50"),
        ("paleohack", "A"): Decimal("1.50"), ("paleohack", "B"): Decimal("0.50")}
    assert amounts(rows, lambda r: r["x_SharedPool"]) == {None: Decimal("4.00"), "gke-support": Decimal(0)}

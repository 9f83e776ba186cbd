"""The kinds of source a config can read costs from; ``SOURCE_TYPES`` maps ``type`` to each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from .fields import Count, EXPORT_TABLE, GCP_PROJECT, Id, MAX_QUANTITY, _Model, _as_written, _pattern


class GcpExportFiles(_Model):
    """Local copies of the GCP billing export (``bq extract``), NDJSON (optionally gzip'd) or Parquet.

    Rows that cannot be billed (no invoice month, no cost, a credit without an amount) stop the
    run; ``unbillable_rows: report`` leaves them out (or counts a missing amount as zero) and
    warns instead, naming the file, the first such line and the count.
    """

    type: Literal["gcp-export-files"]
    id: Id
    path: Path
    unbillable_rows: Literal["refuse", "report"] = "refuse"


class GcpBigQuery(_Model):
    """The GCP billing export in BigQuery, queried in place; credentials from Application Default
    Credentials only (never in this file).

    ``table`` is the export table's full name, ``project.dataset.gcp_billing_export_v1_<ACCOUNT>``
    (standard) or ``..._resource_v1_<ACCOUNT>`` (detailed). Query jobs run in ``job_project``.
    Only the partitions from ``partition_days_before`` days before the month to
    ``partition_days_after`` days after it are scanned (late rows arrive after the month ends).
    """

    type: Literal["gcp-bigquery"]
    id: Id
    table: Annotated[str, AfterValidator(_pattern(
        EXPORT_TABLE, "must be the export table's full name, project.dataset.gcp_billing_export_v1_<ACCOUNT> "
        "or project.dataset.gcp_billing_export_resource_v1_<ACCOUNT> (the account id with _ for -)"))]
    job_project: Annotated[str, AfterValidator(_pattern(GCP_PROJECT, "must be a GCP project id, e.g. my-billing-project"))]
    location: str | None = None
    api_endpoint: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    partition_days_before: Count = Field(7, ge=0, le=62)
    partition_days_after: Count = Field(15, ge=0, le=62)
    maximum_bytes_billed: Count = Field(50 * 10**9, gt=0, le=int(MAX_QUANTITY))
    timeout_seconds: Count = Field(300, gt=0, le=24 * 3600)


class AwsCostExplorerFiles(_Model):
    """Saved Cost Explorer GetCostAndUsage responses: ``<path>/<YYYY-MM>/*.json``, one file per page."""

    type: Literal["aws-cost-explorer-files"]
    id: Id
    path: Path
    payer_account: Annotated[str, BeforeValidator(_as_written),
                             AfterValidator(_pattern(r"\d{12}", "must be a 12-digit AWS account id"))]
    metric: Literal["UnblendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost",
                    "BlendedCost"] = "UnblendedCost"
    accept_estimated: bool = False


class AwsGroupBy(_Model):
    """One Cost Explorer GroupBy: ``{type: DIMENSION, key: LINKED_ACCOUNT}`` or ``{type: TAG, key: team}``."""

    type: Literal["DIMENSION", "TAG"]
    key: str = Field(min_length=1)


class AwsCostExplorer(_Model):
    """The Cost Explorer API (GetCostAndUsage), with the standard AWS credential chain.

    Each month costs two paged requests: Usage grouped by ``group_by`` (for attribution) and every
    record type grouped by type and account (credits, refunds, tax, fees, and the total). Raw
    responses are saved under ``cache/<source id>/<YYYY-MM>/`` and reused by later runs.
    """

    type: Literal["aws-cost-explorer"]
    id: Id
    payer_account: Annotated[str, BeforeValidator(_as_written),
                             AfterValidator(_pattern(r"\d{12}", "must be a 12-digit AWS account id"))]
    profile: str | None = None
    region: str = "us-east-1"
    group_by: list[AwsGroupBy] = Field(
        default_factory=lambda: [AwsGroupBy(type="DIMENSION", key="LINKED_ACCOUNT")], min_length=1, max_length=2)
    metric: Literal["UnblendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost",
                    "BlendedCost"] = "UnblendedCost"
    filter: dict[str, Any] | None = None
    accept_estimated: bool = False
    cache: Path = Path("cache/aws")
    max_attempts: Count = Field(8, ge=1, le=20)
    max_pages: Count = Field(100, ge=1, le=10_000)  # per request: each page is a paid request (0.01 USD)
    endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")

    @field_validator("group_by")
    @classmethod
    def _not_by_record_type(cls, value: list[AwsGroupBy]) -> list[AwsGroupBy]:
        if any(g.type == "DIMENSION" and g.key == "RECORD_TYPE" for g in value):
            raise ValueError("leave RECORD_TYPE out: record types are always fetched by a request of their own")
        return value


class FocusFiles(_Model):
    """Cost and usage files in the FinOps FOCUS format (1.0, 1.1 or 1.2), as Azure Cost
    Management, AWS Data Exports, Google Cloud and OCI export them: CSV (optionally gzip'd) or
    Parquet, a folder, a file or a glob.

    ``version`` is the FOCUS version the files follow; left out, it is told from their columns
    (``InvoiceId``, ``PricingCurrency``, ``BillingAccountType``, ``SubAccountType``, or the later
    ``ServiceProviderName``: 1.2; ``ServiceSubcategory``, ``SkuMeter`` or ``CapacityReservationId``:
    1.1; else 1.0). Rows whose ``BillingPeriodStart`` falls in the month are billed.
    """

    type: Literal["focus-files"]
    id: Id
    path: Path
    version: Literal["1.0", "1.1", "1.2"] | None = None


class AwsDataExports(_Model):
    """AWS Data Exports, CUR 2.0 in Parquet: the export's folder on disk (``path``) or in S3
    (``s3: s3://bucket/prefix/``, with the standard AWS credential chain; ``endpoint_url`` for an
    S3-compatible store). Give one of the two.

    ``table: cur2`` (the default) reads a CUR 2.0 export: amounts come from ``cost_column``, and a
    billing period AWS has not closed (rows without ``bill_invoice_id``) is refused unless
    ``accept_provisional`` is true; its invoices are then provisional. ``table: focus`` reads
    Data Exports' FOCUS 1.0 export of the same bucket layout, as a ``focus-files`` source reads
    FOCUS (``BilledCost``); FOCUS 1.0 cannot tell a closed period from an open one, so the settle
    days (``settle_days``) are what keeps an open period from being finalized.
    """

    type: Literal["aws-data-exports"]
    id: Id
    path: Path | None = None
    s3: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    region: str = "us-east-1"
    profile: str | None = None
    payer_account: Annotated[str, BeforeValidator(_as_written),
                             AfterValidator(_pattern(r"\d{12}", "must be a 12-digit AWS account id"))]
    table: Literal["cur2", "focus"] = "cur2"
    cost_column: Literal["line_item_unblended_cost", "line_item_net_unblended_cost", "line_item_blended_cost",
                         "pricing_public_on_demand_cost"] = "line_item_unblended_cost"
    accept_provisional: bool = False

    @model_validator(mode="after")
    def _one_place(self) -> AwsDataExports:
        if (self.path is None) == (self.s3 is None):
            raise ValueError("give the export's place as one of path (a folder on disk) or s3 (s3://bucket/prefix/)")
        return self


Source = Annotated[Union[GcpExportFiles, GcpBigQuery, AwsCostExplorerFiles, AwsCostExplorer, FocusFiles,
                         AwsDataExports],
                   Field(discriminator="type")]


SOURCE_TYPES = {"gcp-export-files": GcpExportFiles, "gcp-bigquery": GcpBigQuery,
                "aws-cost-explorer-files": AwsCostExplorerFiles, "aws-cost-explorer": AwsCostExplorer,
                "focus-files": FocusFiles, "aws-data-exports": AwsDataExports}


def source_providers(source: Source) -> frozenset[str] | None:
    """The providers whose costs ``source`` can hold; ``None``: any (FOCUS files name theirs)."""
    if source.type.startswith("gcp"):
        return frozenset({"gcp"})
    if source.type.startswith("aws"):
        return frozenset({"aws"})
    return None

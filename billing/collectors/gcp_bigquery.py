"""The GCP billing export in BigQuery, aggregated where it lives.

Sends the BigQuery-dialect text of ``gcp_sql`` (the same text the local collector runs on DuckDB,
plus a partition filter) with the month, label keys and partition window as query parameters.
The table name cannot be a parameter: the config only accepts names of the export's pattern,
and it is quoted before it is put into the text. Each query is first dry-run: its estimated
bytes are reported and a query over ``maximum_bytes_billed`` is refused before it costs anything
(the limit is also sent with the query, so BigQuery enforces it too). Results come back as
NUMERIC, which the client turns into ``Decimal``.

Credentials come from Application Default Credentials only.
"""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import google.auth
import requests
from google.api_core import exceptions as api
from google.api_core.exceptions import RetryError
from google.auth import exceptions as auth
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

from ..config import GcpBigQuery
from ..errors import DataError, SourceError, SourceUnavailable
from ..records import Month
from ..summary import human_bytes
from . import gcp_sql
from .base import Collection

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
PRICE_PER_TIB = Decimal("6.25")  # on-demand query price in USD (the first TiB of a month is free)
ROLES = ("BigQuery Job User (roles/bigquery.jobUser) on project {job_project} and BigQuery Data Viewer "
         "(roles/bigquery.dataViewer) on dataset {dataset}")


def _client(source: GcpBigQuery) -> bigquery.Client:
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except auth.DefaultCredentialsError:
        raise SourceError(
            f"source {source.id!r}: no Google credentials found; run `gcloud auth application-default "
            "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file") from None
    options = {"api_endpoint": source.api_endpoint} if source.api_endpoint else None
    return bigquery.Client(project=source.job_project, credentials=credentials, location=source.location,
                           client_options=options)


def _parameters(month: Month, label_keys: tuple[str, ...], source: GcpBigQuery) -> list:
    start, end = gcp_sql.partition_window(month, source.partition_days_before, source.partition_days_after)
    return [bigquery.ScalarQueryParameter(name, "STRING", value)
            for name, value in gcp_sql.parameters(month, label_keys).items()] + [
        bigquery.ScalarQueryParameter("partition_start", "DATE", start),
        bigquery.ScalarQueryParameter("partition_end", "DATE", end)]


def _query(client: bigquery.Client, source: GcpBigQuery, sql: str, parameters: list) -> tuple[list[dict], int]:
    """Dry-run, check the estimate against the limit, run, and read every page of the result."""
    retry = DEFAULT_RETRY.with_deadline(source.timeout_seconds).with_delay(initial=0.25, maximum=8.0)
    job_retry = DEFAULT_JOB_RETRY.with_deadline(source.timeout_seconds)
    dry = client.query(sql, job_config=bigquery.QueryJobConfig(
        dry_run=True, use_query_cache=False, query_parameters=parameters), retry=retry, job_retry=None)
    estimate = int(dry.total_bytes_processed or 0)
    if estimate > source.maximum_bytes_billed:
        raise SourceError(
            f"source {source.id!r}: the query would scan {human_bytes(estimate)}, more than "
            f"maximum_bytes_billed ({human_bytes(source.maximum_bytes_billed)}); raise the limit, or "
            "narrow partition_days_before/partition_days_after")
    # jobs.query: the grouped rows come back in the answer to the request that runs the query (one
    # round trip, unless the query takes longer than the request's wait or the rows span pages).
    rows = client.query_and_wait(sql, job_config=bigquery.QueryJobConfig(
        query_parameters=parameters, maximum_bytes_billed=source.maximum_bytes_billed),
        wait_timeout=source.timeout_seconds, retry=retry, job_retry=job_retry)
    return [dict(row.items()) for row in rows], estimate


def _existing_tables(client: bigquery.Client, source: GcpBigQuery) -> str:
    project, dataset, _ = source.table.split(".")
    try:
        names = sorted(t.table_id for t in client.list_tables(f"{project}.{dataset}")
                       if t.table_id.startswith("gcp_billing_export"))
    except api.NotFound:
        return f"dataset {project}.{dataset} was not found either"
    except api.GoogleAPICallError:
        return "the dataset's tables could not be listed"
    return ("billing export tables in that dataset: " + ", ".join(names)) if names else \
        "that dataset has no gcp_billing_export* table"


def _reason(error: api.GoogleAPICallError) -> str:
    return next((e.get("reason", "") for e in (error.errors or []) if isinstance(e, dict)), "")


def _said(error: api.GoogleAPICallError) -> str:
    """BigQuery's own message, without the client's request line and job details."""
    said = next((e.get("message") for e in (error.errors or []) if isinstance(e, dict) and e.get("message")), None)
    return said or str(error.message).splitlines()[0]


def collect(source: GcpBigQuery, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    """``refresh`` has no meaning here: nothing is cached."""
    where = f"source {source.id!r}"
    table = f"`{source.table}`"
    parameters = _parameters(month, label_keys, source)
    client = _client(source)
    try:
        cost_records, cost_bytes = _query(
            client, source, gcp_sql.cost_query(table, len(label_keys), partition_filter=True), parameters)
        total_records, total_bytes = _query(
            client, source, gcp_sql.total_query(table, partition_filter=True), parameters)
        carried = {key for i, key in enumerate(label_keys)
                   if any(r.get(gcp_sql.label_column(i)) is not None for r in cost_records)}
        if carried != set(label_keys):  # a key no row of the month carries: what keys are there?
            key_records, key_bytes = _query(client, source, gcp_sql.label_keys_query(table, partition_filter=True),
                                            parameters)
            carried |= {r["key"] for r in key_records if r["key"]}
            total_bytes += key_bytes
    except api.Forbidden as error:
        if _reason(error) in ("accessDenied", ""):
            dataset = ".".join(source.table.split(".")[:2])
            raise SourceError(f"{where}: permission denied on {source.table}; the account needs "
                              + ROLES.format(job_project=source.job_project, dataset=dataset)
                              + f" (BigQuery said: {_said(error)})") from None
        raise SourceError(f"{where}: BigQuery refused the query: {_said(error)}") from None
    except api.NotFound as error:
        raise SourceError(f"{where}: table {source.table} not found ({_said(error)}); "
                          f"{_existing_tables(client, source)}") from None
    except api.BadRequest as error:
        if _reason(error) == "bytesBilledLimitExceeded":
            raise SourceError(f"{where}: BigQuery stopped the query at maximum_bytes_billed: {_said(error)}") from None
        raise SourceError(f"{where}: BigQuery rejected the query: {_said(error)}") from None
    except (concurrent.futures.TimeoutError, requests.exceptions.Timeout):
        raise SourceUnavailable(f"{where}: BigQuery did not finish within timeout_seconds "
                                f"({source.timeout_seconds} s); try again, or raise the timeout") from None
    except RetryError as error:
        cause = _said(error.cause) if isinstance(error.cause, api.GoogleAPICallError) else error.cause
        raise SourceUnavailable(f"{where}: BigQuery kept failing for {source.timeout_seconds} s "
                                f"({cause}); try again later") from None
    except (api.ServerError, api.TooManyRequests) as error:
        raise SourceUnavailable(f"{where}: BigQuery is unavailable ({_said(error)}); try again later") from None
    except auth.RefreshError as error:
        raise SourceError(f"{where}: the Google credentials could not be refreshed ({error}); run "
                          "`gcloud auth application-default login` again") from None
    except (auth.TransportError, requests.exceptions.ConnectionError) as error:
        raise SourceUnavailable(f"{where}: cannot reach BigQuery"
                                f"{' at ' + source.api_endpoint if source.api_endpoint else ''} ({error})") from None
    if not total_records:
        raise DataError(f"{where}: no rows with invoice month {month} in {source.table} "
                        f"(partitions {parameters[-2].value} to {parameters[-1].value})")
    scanned = cost_bytes + total_bytes
    price = (PRICE_PER_TIB * scanned / 2**40).quantize(Decimal("0.01"))
    return Collection(
        rows=gcp_sql.rows_from_result(cost_records, label_keys, source.id),
        totals=gcp_sql.totals_from_result(total_records),
        label_keys=frozenset(carried),
        bytes_scanned=scanned,
        notes=(f"BigQuery scanned {human_bytes(scanned)} for {month} (about {price} USD at on-demand "
               f"prices of {PRICE_PER_TIB} USD per TiB)",),
    )

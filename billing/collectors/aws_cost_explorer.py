"""AWS Cost Explorer (GetCostAndUsage), paged, throttled and paid for by the request.

A month is two MONTHLY requests (TimePeriod End is exclusive), each looped on NextPageToken with
an otherwise identical request (boto3 has no paginator for this call):

- ``usage``: RECORD_TYPE Usage only, grouped by the source's ``group_by`` (e.g. linked account
  and the ``2i2c:hub-name`` tag), which attribution splits among communities;
- ``record-types``: everything, grouped by RECORD_TYPE and LINKED_ACCOUNT, which gives credits,
  refunds, tax and fees per account and the payer's total for reconciliation.

Every page costs 0.01 USD, so the raw responses are saved under ``<cache>/<source id>/<YYYY-MM>/``
in exactly the layout the ``aws-cost-explorer-files`` source reads, and read from there: a rerun
makes no request unless ``refresh`` is asked for, or the saved month was still Estimated.
Throttling (LimitExceededException) is retried with botocore's exponential backoff.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                 NoCredentialsError, ProfileNotFound, ReadTimeoutError, TokenRetrievalError)

from ..config import AwsCostExplorer
from ..errors import DataError, SourceError, SourceUnavailable
from ..records import Month
from . import aws_files
from .base import Collection

PRICE_PER_REQUEST = Decimal("0.01")
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "InvalidClientTokenId",
           "InvalidSignatureException", "RequestExpired"}
DENIED = {"AccessDenied", "AccessDeniedException"}


def month_folder(source: AwsCostExplorer, month: Month) -> Path:
    return source.cache / source.id / str(month)


def requests(source: AwsCostExplorer, month: Month) -> dict[str, dict[str, Any]]:
    """The two GetCostAndUsage requests of a month, by the folder their pages are saved in."""
    base = {"TimePeriod": {"Start": month.first_day.isoformat(), "End": month.next.first_day.isoformat()},
            "Granularity": "MONTHLY", "Metrics": [source.metric]}
    usage_only = {"Dimensions": {"Key": "RECORD_TYPE", "Values": list(aws_files.USAGE_RECORD_TYPES),
                                 "MatchOptions": ["EQUALS"]}}
    usage = {**base, "GroupBy": [{"Type": g.type, "Key": g.key} for g in source.group_by],
             "Filter": {"And": [source.filter, usage_only]} if source.filter else usage_only}
    record_types = {**base, "GroupBy": [{"Type": "DIMENSION", "Key": "RECORD_TYPE"},
                                        {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]}
    if source.filter:
        record_types["Filter"] = source.filter
    return {aws_files.USAGE_QUERY: usage, aws_files.RECORD_TYPES_QUERY: record_types}


def endpoint_url(source: AwsCostExplorer) -> str | None:
    """The endpoint to use instead of AWS's: the source's ``endpoint_url``, else AWS_ENDPOINT_URL_CE.

    boto3 itself honours AWS_ENDPOINT_URL_COST_EXPLORER (named after the service id "Cost
    Explorer") and AWS_ENDPOINT_URL, but not the shorter AWS_ENDPOINT_URL_CE, which is accepted here.
    """
    return source.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_CE") or None


def client(source: AwsCostExplorer):
    """A Cost Explorer client from the standard credential chain (or the source's profile)."""
    with aws_errors(source):
        session = boto3.Session(profile_name=source.profile, region_name=source.region)
        return session.client("ce", endpoint_url=endpoint_url(source), config=BotoConfig(
            retries={"mode": "standard", "total_max_attempts": source.max_attempts},
            connect_timeout=10, read_timeout=60))


@contextlib.contextmanager
def aws_errors(source: AwsCostExplorer, month: Month | None = None) -> Iterator[None]:
    """Turn what boto3 raises into one line that says what to do."""
    where = f"source {source.id!r}"
    try:
        yield
    except ProfileNotFound:
        raise SourceError(f"{where}: AWS profile {source.profile!r} not found in the AWS config files") from None
    except NoCredentialsError:
        raise SourceError(f"{where}: no AWS credentials found; set `profile:` in the source, run `aws configure` "
                          "or `aws sso login`, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except TokenRetrievalError as error:
        raise SourceError(f"{where}: AWS credentials expired ({error}); log in again (e.g. `aws sso login`)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "LimitExceededException":
            raise SourceUnavailable(f"{where}: Cost Explorer kept throttling the requests (LimitExceededException) "
                                    f"after {source.max_attempts} attempts; try again later") from None
        if code == "DataUnavailableException":
            raise DataError(f"{where}: Cost Explorer has no data for {month or 'the period'} yet "
                            "(DataUnavailableException); it becomes available within a day of usage") from None
        if code in DENIED:
            raise SourceError(f"{where}: access denied by AWS ({message}); the credentials need the IAM action "
                              "ce:GetCostAndUsage (and ce:ListCostAllocationTags for `billing aws check-tags`) "
                              f"in the payer account {source.payer_account}") from None
        if code in EXPIRED:
            raise SourceError(f"{where}: AWS credentials are expired or invalid ({code}: {message}); refresh them, "
                              "e.g. `aws sso login`, or new access keys") from None
        if code == "ValidationException":
            raise SourceError(f"{where}: Cost Explorer rejected the request: {message}") from None
        raise SourceUnavailable(f"{where}: Cost Explorer failed ({code}: {message})") from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise SourceUnavailable(f"{where}: cannot reach Cost Explorer ({error}); try again later") from None
    except BotoCoreError as error:
        raise SourceError(f"{where}: {error}") from None


def fetch(ce, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of one request: the same request again with each NextPageToken."""
    pages = []
    token = None
    while True:
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        pages.append(page)
        token = page.get("NextPageToken")
        if not token:
            return pages


def save(folder: Path, fetched: dict[str, tuple[dict, list[dict]]]) -> None:
    """Write each request and its pages, replacing ``folder`` whole (never half a month)."""
    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for query, (request, pages) in fetched.items():
        (staging / query).mkdir(parents=True)
        (staging / query / "request.json").write_text(json.dumps(request, indent=1) + "\n")
        for number, page in enumerate(pages, start=1):
            (staging / query / f"page-{number}.json").write_text(json.dumps(page, indent=1, default=str) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def _saved(folder: Path, month: Month) -> bool:
    return all((folder / q).is_dir() for q in (aws_files.USAGE_QUERY, aws_files.RECORD_TYPES_QUERY)) \
        and not aws_files.is_estimated(folder, month)


def collect(source: AwsCostExplorer, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    folder = month_folder(source, month)
    if refresh or not _saved(folder, month):
        ce = client(source)
        with aws_errors(source, month):
            fetched = {query: (request, fetch(ce, request)) for query, request in requests(source, month).items()}
        try:
            save(folder, fetched)
        except OSError as error:
            raise SourceError(f"source {source.id!r}: cannot save the responses under {folder}: "
                              f"{error.strerror or error}") from None
        paid = sum(len(pages) for _, pages in fetched.values())
        note = (f"Cost Explorer: {paid} paid request{'s' if paid != 1 else ''} "
                f"({PRICE_PER_REQUEST * paid} USD); responses saved in {folder}")
    else:
        note = f"Cost Explorer: reused the responses saved in {folder} (no paid requests; --refresh fetches again)"
    collection = aws_files.read_month(
        folder, aws_files.Source(source.id, source.payer_account, source.metric, source.accept_estimated), month)
    return collection._replace(notes=collection.notes + (note,))


def tag_status(source: AwsCostExplorer, keys: list[str]) -> dict[str, str | None]:
    """Whether each cost allocation tag key is Active or Inactive; ``None`` when AWS does not know it."""
    ce = client(source)
    found: dict[str, str] = {}
    with aws_errors(source):
        token = None
        while True:
            response = ce.list_cost_allocation_tags(TagKeys=keys, **({"NextToken": token} if token else {}))
            found.update({t["TagKey"]: t["Status"] for t in response.get("CostAllocationTags", [])})
            token = response.get("NextToken")
            if not token:
                break
    return {key: found.get(key) for key in keys}

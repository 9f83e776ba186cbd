"""AWS Cost Explorer (GetCostAndUsage), paged, throttled and paid for by the request.

A month is two MONTHLY requests (TimePeriod End is exclusive), each looped on NextPageToken with
an otherwise identical request (boto3 has no paginator for this call):

- ``usage``: RECORD_TYPE Usage only, grouped by the source's ``group_by`` (e.g. linked account
  and the ``2i2c:hub-name`` tag), which attribution splits among communities;
- ``record-types``: everything, grouped by RECORD_TYPE and LINKED_ACCOUNT, which gives credits,
  refunds, tax and fees per account and the payer's total for reconciliation.

Every page costs 0.01 USD, so the raw responses are saved under ``<cache>/<source id>/<YYYY-MM>/``
in exactly the layout the ``aws-cost-explorer-files`` source reads, and reused: a rerun makes no
request unless ``refresh`` is asked for, or the saved month was still Estimated.

A fresh answer is checked before it is saved, exactly as a run reads saved pages (chain, shape,
period, amounts, Estimated): each page is written to JSON text, parsed back as ``aws_files``
parses a file, and only if the month passes every check is the text saved, replacing the month
folder in one step (``billing.atomic``). A bad or Estimated answer therefore never replaces a good
saved month. The month folder's lock is held from the decision to fetch to the switch, so a
second run at the same time stops at once (``Busy``) instead of paying for the same requests.

Paging stops on a NextPageToken Cost Explorer has already given (it would loop for ever, every
request paid) and after ``max_pages`` pages per request. When a run fails after paying, the
error's notes say how many paid requests it made. Throttling (LimitExceededException) is retried
with botocore's exponential backoff.
"""

from __future__ import annotations

import contextlib
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                 NoCredentialsError, ProfileNotFound, ReadTimeoutError, TokenRetrievalError)

from .. import atomic
from ..config import AwsCostExplorer
from ..errors import BillingError, DataError, SourceError, SourceUnavailable
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


def shorten(token: str) -> str:
    """A NextPageToken as a message shows it: quoted, its middle cut when long."""
    return repr(token if len(token) <= 24 else f"{token[:12]}...{token[-8:]}")


def fetch(ce, request: dict[str, Any], name: str, max_pages: int) -> Iterator[dict[str, Any]]:
    """Every page of one request: the same request again with each NextPageToken.

    Stops with a ``DataError`` (each further page would be paid for) when Cost Explorer gives a
    token it has already given, or when a page beyond ``max_pages`` would be needed. ``name``
    names the request in messages.
    """
    given: dict[str, int] = {}
    token = None
    number = 0
    while True:
        number += 1
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        yield page
        token = page.get("NextPageToken")
        if not token:
            return
        if not isinstance(token, str):
            raise DataError(f"{name}, page {number}: NextPageToken {token!r} is not a string")
        if token in given:
            raise DataError(f"{name}, page {number}: NextPageToken {shorten(token)} was already given by page "
                            f"{given[token]}; stopped asking, as following it would never end")
        if number >= max_pages:
            raise DataError(f"{name}: still more pages after {max_pages} (the source's max_pages); stopped "
                            "asking, as every page is a paid request; raise max_pages if the month needs more")
        given[token] = number


def _paid(count: int) -> str:
    return f"{count} paid request{'s' if count != 1 else ''} ({PRICE_PER_REQUEST * count} USD)"


def _reading(source: AwsCostExplorer) -> aws_files.Source:
    return aws_files.Source(source.id, source.payer_account, source.metric, source.accept_estimated)


def _saved(folder: Path, month: Month) -> bool:
    return all((folder / q).is_dir() for q in (aws_files.USAGE_QUERY, aws_files.RECORD_TYPES_QUERY)) \
        and not aws_files.is_estimated(folder, month)


@contextlib.contextmanager
def _cache_errors(source: AwsCostExplorer, folder: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise SourceError(f"source {source.id!r}: cannot save the responses under {folder}: "
                          f"{error.strerror or error}") from None


def collect(source: AwsCostExplorer, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    folder = month_folder(source, month)
    what = f"the saved Cost Explorer responses of {month}"
    with _cache_errors(source, folder), atomic.locked(folder, what):
        atomic.recover(folder)
        if not refresh and _saved(folder, month):
            collection = aws_files.read_month(folder, _reading(source), month)
            return collection._replace(notes=collection.notes + (
                f"Cost Explorer: reused the responses saved in {folder} (no paid requests; --refresh fetches again)",))
        return _fetch_month(source, month, folder)


def _fetch_month(source: AwsCostExplorer, month: Month, folder: Path) -> Collection:
    """Fetch the month, check it as a run reads it, then save it in place of the saved month.

    Called holding the month folder's lock, from deciding to fetch to publishing, so that two
    runs never both pay for one month."""
    ce = client(source)
    fetched: dict[str, tuple[dict[str, Any], list[str]]] = {}
    paid = 0
    try:
        with _cache_errors(source, folder), atomic.writing(folder) as version:
            with aws_errors(source, month):
                for query, request in requests(source, month).items():
                    texts: list[str] = []
                    fetched[query] = (request, texts)
                    for page in fetch(ce, request, _response_name(source, query), source.max_pages):
                        paid += 1
                        texts.append(json.dumps(page, indent=1, default=str) + "\n")
            collection = aws_files.month_collection(_reading(source), month, tuple(
                aws_files.Pages(_response_name(source, query),
                                [aws_files.parse_page(text, f"{_response_name(source, query)}, page {number}")
                                 for number, text in enumerate(texts, start=1)], saved=False)
                for query, (_, texts) in fetched.items()), where=f"source {source.id!r}")
            save(version, fetched)
    except BillingError as error:
        if paid:
            kept = f"the responses saved before in {folder} are kept" if folder.exists() else "nothing was saved"
            error.notes += (f"{source.id}: Cost Explorer: {_paid(paid)} before the failure; {kept}",)
            error.paid_requests += paid
        raise
    return collection._replace(paid_requests=paid, notes=collection.notes + (
        f"Cost Explorer: {_paid(paid)}; responses saved in {folder}",))


def _response_name(source: AwsCostExplorer, query: str) -> str:
    return f"source {source.id!r}: Cost Explorer's response to the {query} request"


def save(version: Path, fetched: dict[str, tuple[dict[str, Any], list[str]]]) -> None:
    """Write each request and the JSON text of its pages into ``version`` (a new, empty folder)."""
    for query, (request, texts) in fetched.items():
        (version / query).mkdir()
        (version / query / "request.json").write_text(json.dumps(request, indent=1) + "\n", encoding="utf-8")
        for number, text in enumerate(texts, start=1):
            (version / query / f"page-{number}.json").write_text(text, encoding="utf-8")


def tag_status(source: AwsCostExplorer, keys: list[str]) -> dict[str, str | None]:
    """Whether each cost allocation tag key is Active or Inactive; ``None`` when AWS does not know it."""
    ce = client(source)
    found: dict[str, str] = {}
    given: set[str] = set()
    with aws_errors(source):
        token = None
        while True:
            response = ce.list_cost_allocation_tags(TagKeys=keys, **({"NextToken": token} if token else {}))
            found.update({t["TagKey"]: t["Status"] for t in response.get("CostAllocationTags", [])})
            token = response.get("NextToken")
            if not token:
                break
            if token in given:
                raise DataError(f"source {source.id!r}: Cost Explorer's answer to ListCostAllocationTags gave the "
                                f"NextToken {shorten(str(token))} twice; stopped asking, as it would never end")
            given.add(token)
    return {key: found.get(key) for key in keys}

"""Saved AWS Cost Explorer ``GetCostAndUsage`` responses, one JSON file per page.

Each response is exactly what boto3 or ``aws ce get-cost-and-usage`` returns for a MONTHLY
request whose TimePeriod is the whole month (End is exclusive); pages are read in natural
file-name order (``page-2`` before ``page-10``) and must form one NextPageToken chain.

A month folder ``<path>/<YYYY-MM>/`` holds either

- one request's pages (``page-*.json``), grouped by whatever GroupBy the request declared; or
- the two requests the ``aws-cost-explorer`` source makes and caches (``usage/`` and
  ``record-types/``): Usage grouped by account and tag for attribution, and every RECORD_TYPE
  grouped by type and account. Credits, refunds, tax and fees come from the second as
  account-level rows; its sum is the source total, and each account's Usage must equal the sum
  of its groups in the first.

GroupBy keys: the ``LINKED_ACCOUNT``, ``SERVICE`` and ``RECORD_TYPE`` dimensions fill the row's
account, service and charge type; a ``TAG`` group key comes back as ``key$value`` and becomes
the label ``key=value`` (``key$`` means untagged: no label). Other dimensions only split rows.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from ..config import AwsCostExplorerFiles
from ..errors import DataError, SourceError
from ..records import CREDIT, OTHER, REFUND, TAX, USAGE, CostRow, Month, SourceTotal
from .base import Collection

ALL_SERVICES = "All AWS services"
USAGE_QUERY, RECORD_TYPES_QUERY = "usage", "record-types"

# RECORD_TYPE values that are usage: what the usage request keeps and attribution splits.
USAGE_RECORD_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
# RECORD_TYPE values whose amount is a reduction, shown as credits of that type.
CREDIT_RECORD_TYPES = {
    "Credit": CREDIT, "Refund": REFUND, "Enterprise Discount Program Discount": CREDIT,
    "Private Rate Card Discount": CREDIT, "Bundled Discount": CREDIT,
    "Solution Provider Program Discount": CREDIT, "Distributor Discount": CREDIT,
    "SavingsPlanNegation": CREDIT, "Discount": CREDIT,
}
CHARGE_RECORD_TYPES = {"Tax": TAX, **{t: USAGE for t in USAGE_RECORD_TYPES}}


class Source(NamedTuple):
    """What reading saved responses needs to know of the configured source."""

    id: str
    payer_account: str
    metric: str
    accept_estimated: bool


class Chain(NamedTuple):
    """The pages of one request, checked to be one whole response."""

    files: list[Path]
    pages: list[dict[str, Any]]
    estimated: bool

    @property
    def definitions(self) -> list[dict[str, str]]:
        return self.pages[0].get("GroupDefinitions", [])


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _load(path: Path) -> dict[str, Any]:
    try:
        page = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON response: {exc}") from None
    if not isinstance(page, dict) or not isinstance(page.get("ResultsByTime"), list):
        raise DataError(f"{path}: not a GetCostAndUsage response (no ResultsByTime list)")
    return page


def read_chain(folder: Path, month: Month) -> Chain:
    """Read and check the pages in ``folder``: one response chain covering exactly ``month``.

    Every page but the last carries a NextPageToken and the last carries none; all pages share
    one GroupDefinitions (at most two, as Cost Explorer allows); every period is the month.
    """
    files = sorted(folder.glob("*.json"), key=_natural_key)
    files = [f for f in files if f.name != "request.json"]
    if not files:
        raise DataError(f"no saved Cost Explorer responses for {month} (expected {folder}/page-*.json)")
    pages = [_load(path) for path in files]
    if not any(page["ResultsByTime"] for page in pages):
        raise DataError(f"{folder}: the responses hold no result for {month} (empty ResultsByTime)")
    start, end = month.first_day.isoformat(), month.next.first_day.isoformat()
    definitions = pages[0].get("GroupDefinitions", [])
    if len(definitions) > 2:
        raise DataError(f"{files[0]}: {len(definitions)} GroupDefinitions; Cost Explorer allows two")
    tokens: set[str] = set()
    estimated = False
    for number, (path, page) in enumerate(zip(files, pages), start=1):
        token = page.get("NextPageToken")
        if number == len(pages) and token:
            raise DataError(f"{path}: the last saved page has a NextPageToken, so at least one "
                            f"page of {month} is missing")
        if number < len(pages) and not token:
            raise DataError(f"{path}: page {number} of {len(pages)} has no NextPageToken, yet more "
                            "pages follow; these files are not one response chain")
        if token in tokens:
            raise DataError(f"{path}: NextPageToken repeats an earlier page's; a page is saved twice")
        tokens.add(token)
        if page.get("GroupDefinitions", []) != definitions:
            raise DataError(f"{path}: GroupDefinitions differ from {files[0].name}; "
                            "these pages come from different requests")
        for result in page["ResultsByTime"]:
            period = result.get("TimePeriod", {})
            if (period.get("Start"), period.get("End")) != (start, end):
                raise DataError(
                    f"{path}: covers {period.get('Start')} to {period.get('End')}, not {month} "
                    f"({start} to {end}, End exclusive); request one MONTHLY period per month")
            estimated = estimated or bool(result.get("Estimated"))
    return Chain(files, pages, estimated)


def _amount(path: Path, metrics: dict[str, Any], metric: str) -> tuple[Decimal, str]:
    try:
        value = metrics[metric]
        return Decimal(str(value["Amount"])), str(value["Unit"])
    except KeyError:
        raise DataError(f"{path}: no {metric} amount in a result (metrics present: "
                        f"{', '.join(metrics) or 'none'}); set the source's metric") from None
    except InvalidOperation:
        raise DataError(f"{path}: {metric} amount {metrics[metric].get('Amount')!r} is not a number") from None


def _row(source: Source, month: Month, definitions: list[dict], keys: list[str],
         amount: Decimal, currency: str, path: Path) -> CostRow:
    account, service, record_type = source.payer_account, ALL_SERVICES, None
    labels = []
    for definition, key in zip(definitions, keys):
        kind, name = definition.get("Type"), definition.get("Key")
        if kind == "TAG":
            prefix = f"{name}$"
            if not key.startswith(prefix):
                raise DataError(f"{path}: group key {key!r} does not start with {prefix!r}")
            if key[len(prefix):]:
                labels.append((name, key[len(prefix):]))
        elif kind == "DIMENSION":
            if name == "LINKED_ACCOUNT":
                account = key
            elif name == "SERVICE":
                service = key
            elif name == "RECORD_TYPE":
                record_type = key
        else:
            raise DataError(f"{path}: GroupBy type {kind!r} is not supported (use DIMENSION or TAG)")
    credits: tuple[tuple[str, Decimal], ...] = ()
    charge_type, cost = USAGE, amount
    if record_type in CREDIT_RECORD_TYPES:
        charge_type, cost, credits = CREDIT_RECORD_TYPES[record_type], Decimal(0), ((record_type, amount),)
    elif record_type is not None:
        charge_type = CHARGE_RECORD_TYPES.get(record_type, OTHER)
        if charge_type == OTHER:
            service = record_type  # "Support fee", "Recurring reservation fee", ...
    return CostRow("aws", source.payer_account, str(month), account, service, charge_type,
                   tuple(sorted(labels)), currency, cost, credits, source.id)


def chain_rows(source: Source, month: Month, chain: Chain) -> list[CostRow]:
    """One row per group (or per result, for a request without GroupBy)."""
    rows: list[CostRow] = []
    for path, page in zip(chain.files, chain.pages):
        try:
            rows += _page_rows(source, month, chain.definitions, path, page)
        except (TypeError, AttributeError, KeyError, ValueError) as error:
            raise DataError(f"{path}: not the shape of a GetCostAndUsage response ({type(error).__name__}: "
                            f"{error})") from None
    return rows


def _page_rows(source: Source, month: Month, definitions: list[dict], path: Path,
               page: dict[str, Any]) -> list[CostRow]:
    rows = []
    for result in page["ResultsByTime"]:
        if definitions:
            entries = [(g.get("Keys", []), g.get("Metrics", {})) for g in result.get("Groups", [])]
        else:
            entries = [([], result.get("Total", {}))]
        for keys, metrics in entries:
            if len(keys) != len(definitions):
                raise DataError(f"{path}: group keys {keys} do not match GroupDefinitions")
            amount, currency = _amount(path, metrics, source.metric)
            rows.append(_row(source, month, definitions, keys, amount, currency, path))
    return rows


def _check_tags_carry_cost(chain: Chain, rows: list[CostRow], month: Month) -> None:
    """A tag that no cost carries is almost always one that is not activated for cost allocation."""
    for definition in chain.definitions:
        key = definition.get("Key")
        if definition.get("Type") == "TAG" and rows and not any(r.label(key) for r in rows):
            raise DataError(
                f"{chain.files[0].parent}: no cost in {month} carries the tag {key!r} (every group is "
                f"'{key}$'); is it activated as a cost allocation tag? Check with `billing aws check-tags`")


def _totals(source: Source, month: Month, rows: list[CostRow]) -> tuple[SourceTotal, ...]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.net
    if len(totals) > 1:
        raise DataError(f"source {source.id!r}: payer {source.payer_account} has {month} costs in "
                        f"{' and '.join(sorted(totals))}; one payer must bill in one currency")
    return tuple(SourceTotal("aws", source.payer_account, str(month), currency, total)
                 for currency, total in sorted(totals.items()))


def _record_type_rows(source: Source, month: Month, usage: Chain, record_types: Chain,
                      usage_rows: list[CostRow]) -> tuple[list[CostRow], list[CostRow]]:
    """The record-type request's rows, split into usage (to check) and the rest (to bill)."""
    keys = [d.get("Key") for d in record_types.definitions]
    if "RECORD_TYPE" not in keys:
        raise DataError(f"{record_types.files[0]}: the record-types request must group by RECORD_TYPE "
                        f"(it groups by {', '.join(map(str, keys)) or 'nothing'})")
    rows = chain_rows(source, month, record_types)
    usage_part = [r for r in rows if r.charge_type == USAGE]
    other = [r for r in rows if r.charge_type != USAGE]

    per_account = "LINKED_ACCOUNT" in keys and any(d.get("Key") == "LINKED_ACCOUNT" for d in usage.definitions)

    def account_sums(items: list[CostRow]) -> dict[str, Decimal]:
        sums: dict[str, Decimal] = {}
        for r in items:
            account = r.project_or_account if per_account else source.payer_account
            sums[account] = sums.get(account, Decimal(0)) + r.net
        return sums

    expected, got = account_sums(usage_part), account_sums(usage_rows)
    for account in sorted(set(expected) | set(got)):
        if expected.get(account, Decimal(0)) != got.get(account, Decimal(0)):
            raise DataError(
                f"{usage.files[0].parent.parent}: account {account} has {expected.get(account, 0)} of Usage by "
                f"record type but {got.get(account, 0)} in the usage request; the two requests disagree "
                "(were they made at different times? fetch the month again)")
    return usage_part, other


def read_month(folder: Path, source: Source, month: Month) -> Collection:
    """Rows and totals of the saved responses of ``month`` in ``folder``."""
    two_requests = (folder / USAGE_QUERY).is_dir() or (folder / RECORD_TYPES_QUERY).is_dir()
    if two_requests:
        usage = read_chain(folder / USAGE_QUERY, month)
        record_types = read_chain(folder / RECORD_TYPES_QUERY, month)
        rows = chain_rows(source, month, usage)
        _check_tags_carry_cost(usage, rows, month)
        usage_part, other = _record_type_rows(source, month, usage, record_types, rows)
        rows += other
        totals = _totals(source, month, usage_part + other)
        chains = [usage, record_types]
        tag_keys = usage.definitions
    else:
        chain = read_chain(folder, month)
        rows = chain_rows(source, month, chain)
        _check_tags_carry_cost(chain, rows, month)
        totals = _totals(source, month, rows)
        chains = [chain]
        tag_keys = chain.definitions
    if not rows:
        raise DataError(f"source {source.id!r}: the saved responses for {month} hold no cost groups")
    warnings = []
    if any(c.estimated for c in chains):
        if not source.accept_estimated:
            raise DataError(f"{folder}: Cost Explorer marks {month} as Estimated (not final); run again "
                            "once the month has closed, or set accept_estimated: true for a provisional invoice")
        warnings.append(f"{month} AWS costs are Estimated by Cost Explorer: invoices are provisional")
    return Collection(
        rows=tuple(sorted(rows)),
        totals=totals,
        label_keys=frozenset(d.get("Key") for d in tag_keys if d.get("Type") == "TAG"),
        warnings=tuple(warnings),
    )


def is_estimated(folder: Path, month: Month) -> bool:
    """Whether saved responses in ``folder`` mark ``month`` as Estimated (unreadable counts as yes)."""
    try:
        chains = ([read_chain(folder / q, month) for q in (USAGE_QUERY, RECORD_TYPES_QUERY)]
                  if (folder / USAGE_QUERY).is_dir() else [read_chain(folder, month)])
    except DataError:
        return True
    return any(c.estimated for c in chains)


def collect(source: AwsCostExplorerFiles, month: Month, label_keys: tuple[str, ...],
            refresh: bool = False) -> Collection:
    if not source.path.is_dir():
        raise SourceError(f"source {source.id!r}: folder {source.path} not found")
    folder = source.path / str(month)
    if not folder.is_dir():
        raise DataError(f"source {source.id!r}: no saved Cost Explorer responses for {month} "
                        f"(expected a folder {folder})")
    try:
        return read_month(folder, Source(source.id, source.payer_account, source.metric,
                                         source.accept_estimated), month)
    except DataError as error:
        if error.message.startswith("no saved"):
            raise DataError(f"source {source.id!r}: {error.message}") from None
        raise

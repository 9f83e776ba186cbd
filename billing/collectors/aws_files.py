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

The checks work on named pages (``Page``), so the same code reads saved files and checks what
the ``aws-cost-explorer`` source has just fetched, before it saves it. ``Pages.saved`` picks the
wording: saved pages are named by their path and messages speak of files; a fresh answer is
named by its request and page number, and messages speak of Cost Explorer's response.

Every amount must be a finite decimal number smaller in size than ``AMOUNT_LIMIT``: JSON text
with ``NaN`` or ``Infinity`` (which Python's json module accepts), or a number no bill can hold,
is refused with the page, the group and the value. Numbers are parsed as ``Decimal`` only; a
float never holds an amount.
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

# No single cost of one payer in one month comes near ten trillion; a number this size is garbage.
AMOUNT_LIMIT = Decimal(10) ** 13
_PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Source(NamedTuple):
    """What reading saved responses needs to know of the configured source."""

    id: str
    payer_account: str
    metric: str
    accept_estimated: bool


class Page(NamedTuple):
    """One GetCostAndUsage response page.

    Attributes:
        name: how a message names it: the file's path, or the request and page number of a
            response Cost Explorer has just given.
        body: the response, parsed by ``parse_page``.
    """

    name: str
    body: dict[str, Any]


class Pages(NamedTuple):
    """The pages of one request, in order, not yet checked.

    Attributes:
        name: how a message names them all: the folder of saved pages, or the request.
        pages: the pages.
        saved: saved files (messages speak of files), or Cost Explorer's fresh response.
    """

    name: str
    pages: list[Page]
    saved: bool


class Chain(NamedTuple):
    """The pages of one request, checked to be one whole response for the month."""

    name: str
    pages: list[Page]
    saved: bool
    estimated: bool

    @property
    def definitions(self) -> list[dict[str, str]]:
        return self.pages[0].body.get("GroupDefinitions", [])


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _short(value: Any, limit: int = 40) -> str:
    """A value as a message shows it: quoted if a string, and cut if long."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _malformed(page: Page, detail: str) -> DataError:
    return DataError(f"{page.name}: not the shape of a GetCostAndUsage response ({detail})")


def parse_page(text: str, name: str) -> Page:
    """One page from its JSON text; every number (``NaN`` and ``Infinity`` too) becomes a Decimal."""
    try:
        body = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise DataError(f"{name}: not a readable JSON response: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("ResultsByTime"), list):
        raise DataError(f"{name}: not a GetCostAndUsage response (no ResultsByTime list)")
    return Page(name, body)


def load_pages(folder: Path, month: Month) -> Pages:
    """The saved pages in ``folder``, in natural file-name order (``page-2`` before ``page-10``)."""
    files = sorted(folder.glob("*.json"), key=_natural_key)
    files = [f for f in files if f.name != "request.json"]
    if not files:
        raise DataError(f"no saved Cost Explorer responses for {month} (expected {folder}/page-*.json)")
    pages = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable JSON response: {exc}") from None
        pages.append(parse_page(text, str(path)))
    return Pages(str(folder), pages, saved=True)


def _definitions(page: Page) -> list[dict[str, str]]:
    definitions = page.body.get("GroupDefinitions", [])
    if not isinstance(definitions, list) or not all(
            isinstance(d, dict) and isinstance(d.get("Type"), str) and isinstance(d.get("Key"), str)
            for d in definitions):
        raise _malformed(page, f"GroupDefinitions {_short(definitions)} is not a list of Type and Key")
    return definitions


def check_chain(pages: Pages, month: Month) -> Chain:
    """Check ``pages`` to be one response chain covering exactly ``month``.

    Every page but the last carries a NextPageToken and the last carries none; all pages share
    one GroupDefinitions (at most two, as Cost Explorer allows); every period is the month; every
    result says whether it is Estimated, as a JSON boolean.
    """
    saved, items = pages.saved, pages.pages
    if not any(page.body["ResultsByTime"] for page in items):
        raise DataError(f"{pages.name}: the responses hold no result for {month} (empty ResultsByTime)" if saved
                        else f"{pages.name}: no result for {month} (empty ResultsByTime)")
    start, end = month.first_day.isoformat(), month.next.first_day.isoformat()
    definitions = _definitions(items[0])
    if len(definitions) > 2:
        raise DataError(f"{items[0].name}: {len(definitions)} GroupDefinitions; Cost Explorer allows two")
    tokens: set[str | None] = set()
    estimated = False
    for number, page in enumerate(items, start=1):
        token = page.body.get("NextPageToken")
        if token is not None and not isinstance(token, str):
            raise _malformed(page, f"NextPageToken {_short(token)} is not a string")
        if number == len(items) and token:
            raise DataError(f"{page.name}: the last saved page has a NextPageToken, so at least one page of "
                            f"{month} is missing" if saved else
                            f"{page.name}: the last page has a NextPageToken, so at least one page of "
                            f"{month} is missing")
        if number < len(items) and not token:
            raise DataError(f"{page.name}: page {number} of {len(items)} has no NextPageToken, yet more pages "
                            "follow; " + ("these files are not one response chain" if saved
                                          else "these pages are not one response chain"))
        if token in tokens:
            raise DataError(f"{page.name}: NextPageToken repeats an earlier page's; "
                            + ("a page is saved twice" if saved else "Cost Explorer answered in a loop"))
        tokens.add(token)
        if _definitions(page) != definitions:
            raise DataError(f"{page.name}: GroupDefinitions differ from {Path(items[0].name).name}; "
                            "these pages come from different requests" if saved else
                            f"{page.name}: GroupDefinitions differ from page 1's")
        for result in page.body["ResultsByTime"]:
            if not isinstance(result, dict):
                raise _malformed(page, f"a result is {_short(result)}, not an object")
            period = result.get("TimePeriod", {})
            if not isinstance(period, dict):
                raise _malformed(page, f"TimePeriod {_short(period)} is not an object")
            if (period.get("Start"), period.get("End")) != (start, end):
                covers = (f"covers {period.get('Start')} to {period.get('End')}, not {month} "
                          f"({start} to {end}, End exclusive)")
                raise DataError(f"{page.name}: {covers}; request one MONTHLY period per month" if saved
                                else f"{page.name}: {covers}, the period asked for")
            if "Estimated" not in result:
                raise DataError(f"{page.name}: a result has no Estimated flag, so whether {month} is final "
                                "cannot be told")
            flag = result["Estimated"]
            if not isinstance(flag, bool):
                raise DataError(f"{page.name}: Estimated is {_short(flag)}, not true or false, so whether "
                                f"{month} is final cannot be told")
            estimated = estimated or flag
    return Chain(pages.name, items, saved, estimated)


def read_chain(folder: Path, month: Month) -> Chain:
    """Read and check the saved pages in ``folder``: one response chain covering exactly ``month``."""
    return check_chain(load_pages(folder, month), month)


def _amount(page: Page, group: str, metrics: Any, metric: str, saved: bool) -> tuple[Decimal, str]:
    """The ``metric`` amount and unit of one group: a finite Decimal smaller than AMOUNT_LIMIT."""
    if not isinstance(metrics, dict):
        raise _malformed(page, f"the Metrics of {group} are {_short(metrics)}, not an object")
    if metric not in metrics:
        raise DataError(f"{page.name}: no {metric} amount in a result (metrics present: "
                        f"{', '.join(map(str, metrics)) or 'none'})" + ("; set the source's metric" if saved else ""))
    value = metrics[metric]
    if not isinstance(value, dict) or "Amount" not in value:
        raise _malformed(page, f"the {metric} of {group} is {_short(value)}, not an Amount and a Unit")
    unit, raw = value.get("Unit"), value["Amount"]
    if not isinstance(unit, str) or not unit:
        raise _malformed(page, f"the {metric} Unit of {group} is {_short(unit)}, not a currency code")
    said = f"{page.name}: {group}: {metric} amount {_short(raw)}"
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, (Decimal, int)) and not isinstance(raw, bool):  # a bare JSON number
        text = str(raw)
    else:
        raise DataError(f"{said} is not a number")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise DataError(f"{said} is not a number") from None
    if not amount.is_finite():
        raise DataError(f"{said} is not a finite number")
    if not _PLAIN_NUMBER.fullmatch(text):
        raise DataError(f"{said} is not a number")
    if abs(amount) >= AMOUNT_LIMIT:
        raise DataError(f"{said} is not a believable cost (10^13 or more in size)")
    return amount, unit


def _row(source: Source, month: Month, definitions: list[dict], keys: list[str],
         amount: Decimal, currency: str, page: Page) -> CostRow:
    account, service, record_type = source.payer_account, ALL_SERVICES, None
    labels = []
    for definition, key in zip(definitions, keys):
        kind, name = definition.get("Type"), definition.get("Key")
        if kind == "TAG":
            prefix = f"{name}$"
            if not key.startswith(prefix):
                raise DataError(f"{page.name}: group key {key!r} does not start with {prefix!r}")
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
            raise DataError(f"{page.name}: GroupBy type {kind!r} is not supported (use DIMENSION or TAG)")
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
    for page in chain.pages:
        try:
            rows += _page_rows(source, month, chain, page)
        except (TypeError, AttributeError, KeyError, ValueError) as error:
            raise _malformed(page, f"{type(error).__name__}: {error}") from None
    return rows


def _page_rows(source: Source, month: Month, chain: Chain, page: Page) -> list[CostRow]:
    definitions = chain.definitions
    rows = []
    for result in page.body["ResultsByTime"]:
        if definitions:
            groups = result.get("Groups", [])
            if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
                raise _malformed(page, f"Groups {_short(groups)} is not a list of objects")
            entries = [(g.get("Keys", []), g.get("Metrics", {})) for g in groups]
        else:
            entries = [([], result.get("Total", {}))]
        for keys, metrics in entries:
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise _malformed(page, f"group keys {_short(keys)} are not a list of strings")
            if len(keys) != len(definitions):
                raise DataError(f"{page.name}: group keys {keys} do not match GroupDefinitions")
            amount, currency = _amount(page, f"group {keys}" if definitions else "the Total", metrics,
                                       source.metric, chain.saved)
            rows.append(_row(source, month, definitions, keys, amount, currency, page))
    return rows


def _check_tags_carry_cost(chain: Chain, rows: list[CostRow], month: Month) -> None:
    """A tag that no cost carries is almost always one that is not activated for cost allocation."""
    for definition in chain.definitions:
        key = definition.get("Key")
        if definition.get("Type") == "TAG" and rows and not any(r.label(key) for r in rows):
            raise DataError(
                f"{chain.name}: no cost in {month} carries the tag {key!r} (every group is "
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
                      usage_rows: list[CostRow], where: str) -> tuple[list[CostRow], list[CostRow]]:
    """The record-type request's rows, split into usage (to check) and the rest (to bill)."""
    keys = [d.get("Key") for d in record_types.definitions]
    if "RECORD_TYPE" not in keys:
        raise DataError(f"{record_types.pages[0].name}: the record-types request must group by RECORD_TYPE "
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
                f"{where}: account {account} has {expected.get(account, 0)} of Usage by record type but "
                f"{got.get(account, 0)} in the usage request; the two requests disagree "
                + ("(were they made at different times? fetch the month again)" if usage.saved
                   else "(did Cost Explorer's data change between them? run again)"))
    return usage_part, other


def month_collection(source: Source, month: Month, requests: tuple[Pages, ...], where: str) -> Collection:
    """Rows and totals of a month's responses: one request's pages, or the two requests of the
    ``aws-cost-explorer`` source (usage, then record types). ``where`` names the month in messages."""
    saved = requests[0].saved
    if len(requests) == 2:
        usage, record_types = (check_chain(pages, month) for pages in requests)
        rows = chain_rows(source, month, usage)
        _check_tags_carry_cost(usage, rows, month)
        usage_part, other = _record_type_rows(source, month, usage, record_types, rows, where)
        rows += other
        totals = _totals(source, month, usage_part + other)
        chains = [usage, record_types]
        tag_keys = usage.definitions
    else:
        chain = check_chain(requests[0], month)
        rows = chain_rows(source, month, chain)
        _check_tags_carry_cost(chain, rows, month)
        totals = _totals(source, month, rows)
        chains = [chain]
        tag_keys = chain.definitions
    if not rows:
        raise DataError(f"source {source.id!r}: the saved responses for {month} hold no cost groups" if saved
                        else f"source {source.id!r}: Cost Explorer's responses for {month} hold no cost groups")
    warnings = []
    if any(c.estimated for c in chains):
        if not source.accept_estimated:
            raise DataError(f"{where}: Cost Explorer marks {month} as Estimated (not final); run again "
                            "once the month has closed, or set accept_estimated: true for a provisional invoice")
        warnings.append(f"{month} AWS costs are Estimated by Cost Explorer: invoices are provisional")
    return Collection(
        rows=tuple(sorted(rows)),
        totals=totals,
        label_keys=frozenset(d.get("Key") for d in tag_keys if d.get("Type") == "TAG"),
        warnings=tuple(warnings),
        provisional=bool(warnings),
    )


def read_month(folder: Path, source: Source, month: Month) -> Collection:
    """Rows and totals of the saved responses of ``month`` in ``folder``."""
    if (folder / USAGE_QUERY).is_dir() or (folder / RECORD_TYPES_QUERY).is_dir():
        requests = (load_pages(folder / USAGE_QUERY, month), load_pages(folder / RECORD_TYPES_QUERY, month))
    else:
        requests = (load_pages(folder, month),)
    return month_collection(source, month, requests, str(folder))


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

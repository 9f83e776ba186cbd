"""Saved AWS Cost Explorer ``GetCostAndUsage`` responses, one JSON file per page.

Layout: ``<path>/<YYYY-MM>/*.json``, pages in natural file-name order (``page-2`` before
``page-10``), each exactly what boto3 or ``aws ce get-cost-and-usage`` returns for a MONTHLY
request whose TimePeriod is the whole month (End is exclusive).

Whatever GroupBy the responses declare in ``GroupDefinitions`` is understood: the
``LINKED_ACCOUNT``, ``SERVICE`` and ``RECORD_TYPE`` dimensions fill the row's account, service and
charge type; a ``TAG`` group key comes back as ``key$value`` and becomes the label ``key=value``
(``key$`` means untagged: no label). Other dimensions only split rows further.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..config import AwsCostExplorerFiles
from ..errors import DataError, SourceError
from ..records import CREDIT, OTHER, REFUND, TAX, USAGE, CostRow, Month, SourceTotal
from .base import Collection

ALL_SERVICES = "All AWS services"

# RECORD_TYPE values whose amount is a reduction, shown as credits of that type.
CREDIT_RECORD_TYPES = {
    "Credit": CREDIT, "Refund": REFUND, "Enterprise Discount Program Discount": CREDIT,
    "Private Rate Card Discount": CREDIT, "Bundled Discount": CREDIT,
    "Solution Provider Program Discount": CREDIT, "Distributor Discount": CREDIT,
    "SavingsPlanNegation": CREDIT, "Discount": CREDIT,
}
CHARGE_RECORD_TYPES = {"Tax": TAX, "Usage": USAGE, "DiscountedUsage": USAGE,
                       "SavingsPlanCoveredUsage": USAGE}


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def page_files(source: AwsCostExplorerFiles, month: Month) -> list[Path]:
    if not source.path.is_dir():
        raise SourceError(f"source {source.id!r}: folder {source.path} not found")
    folder = source.path / str(month)
    files = sorted(folder.glob("*.json"), key=_natural_key) if folder.is_dir() else []
    if not files:
        raise DataError(f"source {source.id!r}: no saved Cost Explorer responses for {month} "
                        f"(expected {folder}/*.json)")
    return files


def _load(path: Path) -> dict[str, Any]:
    try:
        page = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON response: {exc}") from None
    if not isinstance(page, dict) or not isinstance(page.get("ResultsByTime"), list):
        raise DataError(f"{path}: not a GetCostAndUsage response (no ResultsByTime list)")
    return page


def check_pages(files: list[Path], pages: list[dict[str, Any]], month: Month,
                accept_estimated: bool) -> list[str]:
    """Check that the pages form one response chain covering exactly ``month``.

    Every page but the last carries a NextPageToken and the last carries none; all pages share
    one GroupDefinitions; every period is the whole month. Returns warnings.
    """
    start, end = month.first_day.isoformat(), month.next.first_day.isoformat()
    definitions = pages[0].get("GroupDefinitions", [])
    tokens: set[str] = set()
    estimated = False
    for number, (path, page) in enumerate(zip(files, pages), start=1):
        token = page.get("NextPageToken")
        is_last = number == len(pages)
        if is_last and token:
            raise DataError(f"{path}: the last saved page has a NextPageToken, so at least one "
                            f"page of {month} is missing")
        if not is_last and not token:
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
    if estimated and not accept_estimated:
        raise DataError(f"{files[0].parent}: Cost Explorer marks {month} as Estimated (not final); "
                        "run again once the month has closed, or set accept_estimated: true "
                        "for a provisional invoice")
    return [f"{month} AWS costs are Estimated by Cost Explorer: invoices are provisional"] if estimated else []


def _amount(path: Path, metrics: dict[str, Any], metric: str) -> tuple[Decimal, str]:
    try:
        value = metrics[metric]
        return Decimal(str(value["Amount"])), str(value["Unit"])
    except KeyError:
        raise DataError(f"{path}: no {metric} amount in a result (metrics present: "
                        f"{', '.join(metrics) or 'none'}); set the source's metric") from None
    except InvalidOperation:
        raise DataError(f"{path}: {metric} amount {metrics[metric].get('Amount')!r} is not a number") from None


def _row(source: AwsCostExplorerFiles, month: Month, definitions: list[dict], keys: list[str],
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
    return CostRow("aws", source.payer_account, str(month), account, service, charge_type,
                   tuple(sorted(labels)), currency, cost, credits, source.id)


def collect(source: AwsCostExplorerFiles, month: Month, label_keys: tuple[str, ...]) -> Collection:
    files = page_files(source, month)
    pages = [_load(path) for path in files]
    warnings = check_pages(files, pages, month, source.accept_estimated)
    definitions = pages[0].get("GroupDefinitions", [])
    if len(definitions) > 2:
        raise DataError(f"{files[0]}: {len(definitions)} GroupDefinitions; Cost Explorer allows two")

    rows: list[CostRow] = []
    totals: dict[str, Decimal] = {}
    for path, page in zip(files, pages):
        for result in page["ResultsByTime"]:
            if definitions:
                entries = [(g.get("Keys", []), g.get("Metrics", {})) for g in result.get("Groups", [])]
            else:
                entries = [([], result.get("Total", {}))]
            for keys, metrics in entries:
                if len(keys) != len(definitions):
                    raise DataError(f"{path}: group keys {keys} do not match GroupDefinitions")
                amount, currency = _amount(path, metrics, source.metric)
                totals[currency] = totals.get(currency, Decimal(0)) + amount
                rows.append(_row(source, month, definitions, keys, amount, currency, path))
    if not rows:
        raise DataError(f"source {source.id!r}: the saved responses for {month} hold no cost groups")
    return Collection(
        rows=tuple(sorted(rows)),
        totals=tuple(SourceTotal("aws", source.payer_account, str(month), currency, total)
                     for currency, total in sorted(totals.items())),
        label_keys=frozenset(d.get("Key") for d in definitions if d.get("Type") == "TAG"),
        warnings=tuple(warnings),
    )

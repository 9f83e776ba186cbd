"""The month folders as pandas tables: the entry point for a notebook, and what the review page
reads.

Example, in a notebook next to the config::

    from billing import api

    september = api.load_month("config/billing.yaml", "2022-09")
    september.register[["community_name", "currency", "total", "status"]]

    costs = api.history("config/billing.yaml").cloud_costs
    (costs.assign(cost=costs["cost"].astype(float))          # floats for the plot only
          .pivot_table(index="month", columns="community_id", values="cost", aggfunc="sum")
          .plot.bar(stacked=True))

Everything is read from the files the runs wrote into ``<output>/<YYYY-MM>/`` (with
``csv_files.read_csv``), never computed again, so the tables say what the invoices and the CSV
files say. Amounts are ``decimal.Decimal`` objects (pandas ``object`` dtype), exact as written:
``.sum()`` over them stays exact. Turning them into floats (``.astype(float)``) is the reader's
choice, for a plot, never for a figure that goes back to finance. ``issue_date`` and ``due_date``
are ``datetime64``; months are ``"YYYY-MM"`` text, which sorts in time order.

The month's status (``draft``, ``provisional``, ``partly finalized``, ``finalized``) comes from
the register's ``status`` column, and, where a ledger exists, from the ledger as well (opened
read-only: a notebook never creates one).

pandas is used here, on the analysis side, and nowhere in a run's own computation.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import pandas as pd

from . import ledger
from .config import Config, load_config
from .errors import DataError, UsageError
from .money import ZERO
from .records import Month
from .render import csv_files

# Each table of a month: the file it is read from and the columns it must have.
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "register": ("invoice-register.csv", csv_files.REGISTER_COLUMNS),
    "lines": ("invoice-lines.csv", csv_files.LINE_COLUMNS),
    "cost_detail": ("cost-detail.csv", csv_files.DETAIL_COLUMNS),
    "shared_allocation": ("shared-allocation.csv", csv_files.SHARED_COLUMNS),
    "unattributed": ("unattributed.csv", csv_files.UNATTRIBUTED_COLUMNS),
    "absorbed": ("absorbed.csv", csv_files.ABSORBED_COLUMNS),
    "reconciliation": ("reconciliation.csv", csv_files.RECONCILIATION_COLUMNS),
    "adjustments": ("adjustments.csv", csv_files.ADJUSTMENT_COLUMNS),
    "findings": ("findings.csv", csv_files.FINDING_COLUMNS),
}
REGISTER = TABLES["register"][0]
INTEGER_COLUMNS = frozenset({"line"})
AMOUNT_COLUMNS = csv_files.NUMERIC_COLUMNS - INTEGER_COLUMNS
DATE_COLUMNS = frozenset({"issue_date", "due_date"})
MONTH_FOLDER = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
# A month's status, from its invoices (void ones and credit notes aside).
DRAFT, PROVISIONAL, PARTLY, FINALIZED, NO_INVOICES = (
    "draft", "provisional", "partly finalized", "finalized", "no invoices")
# What a month's summary needs (``read_history`` without ``detail``): the small files.
SUMMARY_TABLES = ("register", "reconciliation", "unattributed", "findings")
READ_ATTEMPTS = 3  # a run may replace a month's folder while it is read: read the new one


@dataclass(frozen=True, eq=False)
class MonthData:
    """One month's folder as tables, one per CSV file (an empty table, with its columns, for a
    file the folder does not have).

    Attributes:
        month: ``"YYYY-MM"``.
        folder: the folder read (a published month is a link to a version folder; the version
            it pointed to when read).
        files: the names of the files in the folder, sorted.
        register: ``invoice-register.csv``, one row per invoice or credit note.
        lines: ``invoice-lines.csv``, one row per invoice line.
        cost_detail: ``cost-detail.csv``, every cost group with its bucket, exact amounts.
        shared_allocation: ``shared-allocation.csv``, each community's share of each pool.
        unattributed: ``unattributed.csv``, the costs no rule assigned.
        absorbed: ``absorbed.csv``, the costs the organisation carries.
        reconciliation: ``reconciliation.csv``, one row per billing account.
        adjustments: ``adjustments.csv``, late data found and carried.
        findings: ``findings.csv``, the guards' findings accepted with ``--allow`` and the warnings.
    """

    month: str
    folder: Path
    files: tuple[str, ...]
    register: pd.DataFrame
    lines: pd.DataFrame
    cost_detail: pd.DataFrame
    shared_allocation: pd.DataFrame
    unattributed: pd.DataFrame
    absorbed: pd.DataFrame
    reconciliation: pd.DataFrame
    adjustments: pd.DataFrame
    findings: pd.DataFrame


class History(NamedTuple):
    """Every month folder under the output folder, as tables across months.

    Attributes:
        months: one row per month: ``month``, ``status`` (from the register), ``ledger_status``
            (the same from the ledger; ``None`` without a ledger or a record of the month),
            ``invoices`` (how many, void ones and credit notes aside), ``folder``.
        totals: one row per month and invoice currency: ``invoices``, ``total``, ``amount_due``.
        invoices: one row per month and community with an invoice (its current one; void ones and
            credit notes aside): ``community_id``, ``community_name``, ``invoice_number``,
            ``status``, ``currency``, ``cloud_costs``, ``fees``, ``discounts``, ``tax``, ``total``,
            ``amount_due``.
        sources: one row per month and currency of the cloud bills: ``source_total`` (the
            providers' own total), ``unattributed``, ``unattributed_percent`` (of the source total;
            ``None`` when that is zero), from ``reconciliation.csv``.
        cloud_costs: one row per month, community, provider and currency of the cloud bills:
            ``cost``, the community's cloud cost before its contract's terms: its own cost at full
            precision plus its shares of shared pools (to the cent; see ``cloud_costs``). Empty
            when read without ``detail``.
    """

    months: pd.DataFrame
    totals: pd.DataFrame
    invoices: pd.DataFrame
    sources: pd.DataFrame
    cloud_costs: pd.DataFrame


def config_of(config: Config | str | Path) -> Config:
    """``config`` itself, or the config file at that path, loaded and checked."""
    return config if isinstance(config, Config) else load_config(Path(config))


def load_month(config: Config | str | Path, month: str | Month, folder: str | Path | None = None) -> MonthData:
    """The tables of ``month``'s folder: ``<output>/<YYYY-MM>/`` of ``config`` (a ``Config`` or
    the path of its file), or ``folder``. ``UsageError`` if the folder has not been written."""
    month = Month.parse(str(month))
    path = Path(folder) if folder is not None else config_of(config).output / str(month)
    if not (path / REGISTER).is_file():
        raise UsageError(f"{path} is not a month's folder (it has no {REGISTER}); run `billing run --month {month}` "
                         "with that output folder first")
    return read_month(path, str(month))


def read_month(folder: Path, month: str, tables: Iterable[str] | None = None) -> MonthData:
    """The tables of the month folder ``folder``, read from one version of it: if a run replaces
    the folder while it is read, it is read again. ``tables`` (names of ``MonthData``'s tables):
    read only those; the others come back empty."""
    wanted = set(TABLES) if tables is None else set(tables)
    for attempt in range(READ_ATTEMPTS):
        resolved = folder.resolve()
        if not resolved.is_dir():
            raise UsageError(f"{folder}: no such month folder; run `billing run --month {month}` first")
        try:
            files = tuple(sorted(p.name for p in resolved.iterdir() if p.is_file() and not p.name.startswith(".")))
            read = {name: _table(resolved / file, columns, file in files and name in wanted)
                    for name, (file, columns) in TABLES.items()}
        except FileNotFoundError:  # this version was removed meanwhile: read the one that replaced it
            if attempt == READ_ATTEMPTS - 1:
                raise DataError(f"{folder}: the folder kept changing while it was read (runs replacing it); try "
                                "again") from None
            continue
        return MonthData(month, resolved, files, **read)
    raise AssertionError("unreachable")


def _table(path: Path, columns: tuple[str, ...], present: bool) -> pd.DataFrame:
    """One CSV file as a table with typed columns; a file that is not there, as an empty one."""
    if not present:
        return _typed(path, pd.DataFrame({column: pd.Series([], dtype=object) for column in columns}))
    try:
        with path.open(encoding=csv_files.ENCODING, newline="") as handle:
            header = next(csv.reader(handle), [])
        rows = csv_files.read_csv(path)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a CSV file this tool wrote ({error})") from None
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)} (written by another version of billing? run the "
                        "month again)")
    values: dict[str, list] = {column: [] for column in header}
    for number, row in enumerate(rows, start=2):
        for column in header:
            values[column].append(_value(path, number, column, row[column]))
    return _typed(path, pd.DataFrame({column: pd.Series(items, dtype=object) for column, items in values.items()}))


def _value(path: Path, number: int, column: str, text: str):
    if column in AMOUNT_COLUMNS:
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            raise DataError(f"{path}:{number}: {column} {text!r} is not an amount") from None
        return amount
    if column in INTEGER_COLUMNS:
        if not text.isdigit():
            raise DataError(f"{path}:{number}: {column} {text!r} is not a whole number")
        return int(text)
    return text


def _typed(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if column in DATE_COLUMNS:
            try:
                frame[column] = pd.to_datetime(frame[column], format="%Y-%m-%d")
            except ValueError:
                raise DataError(f"{path}: a {column} is not a date (YYYY-MM-DD)") from None
        elif column in INTEGER_COLUMNS:
            frame[column] = frame[column].astype("int64")
        elif column not in AMOUNT_COLUMNS:
            frame[column] = frame[column].astype(str)
    return frame


# --- what the review page and a notebook derive from a month ------------------------------------

def current_invoices(register: pd.DataFrame) -> pd.DataFrame:
    """The register's invoices that stand: void invoices and credit notes aside (a credit note
    cancels a void invoice; the community's new invoice is the one that counts)."""
    return register[(register["type"] == "invoice") & (register["status"] != "void")]


def register_status(register: pd.DataFrame) -> str:
    """The month's status from its register: ``month_status`` of its current invoices, a community
    whose invoice was voided and not drafted again counting as a draft (it is owed a new one)."""
    invoices = register[register["type"] == "invoice"]
    standing = set(invoices[invoices["status"] != "void"]["community_id"])
    awaiting = set(invoices["community_id"]) - standing
    return month_status(list(current_invoices(register)["status"]) + [DRAFT] * len(awaiting))


def month_status(statuses: Iterable[str]) -> str:
    """The status of a month from its current invoices' (``draft``, ``provisional``,
    ``finalized``): ``finalized`` when all are, ``partly finalized`` when some are,
    ``provisional`` when any draft is, else ``draft``."""
    found = list(statuses)
    if not found:
        return NO_INVOICES
    finalized = sum(status == FINALIZED for status in found)
    if finalized == len(found):
        return FINALIZED
    if finalized:
        return PARTLY
    return PROVISIONAL if PROVISIONAL in found else DRAFT


def ledger_statuses(documents: Iterable[ledger.Document]) -> dict[str, str]:
    """Each month's status as the ledger has it (``month_status`` of its current invoices)."""
    found: dict[str, dict[str, list[str]]] = {}
    for document in documents:
        if document.kind == "invoice":
            status = PROVISIONAL if document.status == DRAFT and document.provisional else document.status
            found.setdefault(document.month, {}).setdefault(document.community_id, []).append(status)
    # a community with only a void invoice is owed a new one: a draft to come
    return {month: month_status(s for statuses in communities.values()
                                for s in ([x for x in statuses if x != "void"] or [DRAFT]))
            for month, communities in found.items()}


def cloud_costs(data: MonthData) -> pd.DataFrame:
    """Each community's cloud cost in ``data``'s month, per provider and currency of the cloud
    bills: its own cost (``cost-detail.csv``, exact) plus its shares of shared pools
    (``shared-allocation.csv``, to the cent), before its contract's terms (markup, cap, credits
    withheld, conversion). A share counts for the provider its pool's costs came from; a pool
    with costs from two providers is split between them in proportion to those costs."""
    detail = data.cost_detail
    totals: dict[tuple[str, str, str], Decimal] = {}
    pools: dict[tuple[str, str, str], dict[str, Decimal]] = {}  # (pool, currency, part) -> provider -> cost

    def add(community: str, provider: str, currency: str, amount: Decimal) -> None:
        totals[(community, provider, currency)] = totals.get((community, provider, currency), ZERO) + amount

    for bucket, name, provider, currency, charge_type, net in zip(
            detail["bucket"], detail["assigned_to"], detail["provider"], detail["currency"], detail["charge_type"],
            detail["net"]):
        if bucket == "community":
            add(name, provider, currency, net)
        elif bucket == "shared":
            by_provider = pools.setdefault((name, currency, "tax" if charge_type == "tax" else "costs"), {})
            by_provider[provider] = by_provider.get(provider, ZERO) + net
    shares = data.shared_allocation
    for pool, part, currency, community, amount in zip(shares["pool"], shares["part"], shares["currency"],
                                                       shares["community_id"], shares["amount"]):
        by_provider = pools.get((pool, currency, "tax" if part == "tax" else "costs"), {})
        whole = sum(by_provider.values(), ZERO)
        if len(by_provider) <= 1 or not whole:
            add(community, max(by_provider, key=lambda p: abs(by_provider[p]), default=""), currency, amount)
            continue
        for provider, cost in sorted(by_provider.items()):
            add(community, provider, currency, amount * cost / whole)
    rows = [(data.month, community, provider, currency, amount)
            for (community, provider, currency), amount in sorted(totals.items())]
    return _frame(rows, ("month", "community_id", "provider", "currency", "cost"))


def _frame(rows: Sequence[Sequence], columns: Sequence[str]) -> pd.DataFrame:
    """A table of ``rows``, every column of Python objects (Decimals stay Decimals)."""
    return pd.DataFrame({column: pd.Series([row[i] for row in rows], dtype=object)
                         for i, column in enumerate(columns)})


# --- across months ------------------------------------------------------------------------------

def month_folders(output: Path) -> dict[str, Path]:
    """The month folders under ``output`` (named ``YYYY-MM``, holding a register), by month, sorted."""
    if not output.is_dir():
        return {}
    return {p.name: p for p in sorted(output.iterdir())
            if MONTH_FOLDER.fullmatch(p.name) and (p / REGISTER).is_file()}


def history(config: Config | str | Path, months: Iterable[str | Month] | None = None, *,
            output: str | Path | None = None, detail: bool = True) -> History:
    """The multi-month tables (``History``) of every month folder under the config's output
    folder (or ``output``), or of ``months`` only, with each month's status in the ledger when
    the config's ledger exists (it is never created). ``detail=False`` skips reading the large
    files (``cost-detail.csv``): ``cloud_costs`` comes back empty."""
    config = config_of(config)
    folders = month_folders(Path(output) if output is not None else config.output)
    if months is not None:
        wanted = [str(Month.parse(str(month))) for month in months]
        missing = [month for month in wanted if month not in folders]
        if missing:
            raise UsageError(f"no month folder for {', '.join(missing)} under "
                             f"{output if output is not None else config.output}")
        folders = {month: folders[month] for month in sorted(set(wanted))}
    engine = ledger.open_existing(ledger.ledger_url(config.ledger.url), "billing.api")
    try:
        documents = ledger.status(engine) if engine is not None else None
    finally:
        if engine is not None:
            engine.dispose()
    return read_history(folders, documents, detail)


def read_history(folders: Mapping[str, Path], documents: Sequence[ledger.Document] | None = None,
                 detail: bool = True, read: Mapping[str, MonthData] | None = None) -> History:
    """``History`` of the month folders ``folders`` (by month); ``documents``: what the ledger
    holds (``ledger.status``), ``None`` without a ledger; ``read``: months already read."""
    in_ledger = ledger_statuses(documents) if documents is not None else {}
    months, totals, invoices, sources, costs = [], [], [], [], []
    for month, folder in sorted(folders.items()):
        data = (read or {}).get(month) or read_month(folder, month, None if detail else SUMMARY_TABLES)
        current = current_invoices(data.register)
        months.append((month, register_status(data.register), in_ledger.get(month) if documents is not None else None,
                       len(current), str(folder)))
        for currency, mine in current.groupby("currency", sort=True):
            totals.append((month, currency, len(mine), sum(mine["total"], ZERO), sum(mine["amount_due"], ZERO)))
        for row in current.itertuples(index=False):
            invoices.append((month, row.community_id, row.community_name, row.invoice_number, row.status, row.currency,
                             row.cloud_costs, row.fees, row.discounts, row.tax, row.total, row.amount_due))
        for currency, mine in data.reconciliation.groupby("currency", sort=True):
            source, unattributed = sum(mine["source_total"], ZERO), sum(mine["unattributed"], ZERO)
            sources.append((month, currency, source, unattributed,
                            unattributed * 100 / source if source else None))
        if detail:
            costs.append(cloud_costs(data))
    cost_columns = ("month", "community_id", "provider", "currency", "cost")
    return History(
        months=_frame(months, ("month", "status", "ledger_status", "invoices", "folder")).astype({"invoices": "int64"}),
        totals=_frame(totals, ("month", "currency", "invoices", "total", "amount_due")).astype({"invoices": "int64"}),
        invoices=_frame(invoices, ("month", "community_id", "community_name", "invoice_number", "status", "currency",
                                   "cloud_costs", "fees", "discounts", "tax", "total", "amount_due")),
        sources=_frame(sources, ("month", "currency", "source_total", "unattributed", "unattributed_percent")),
        cloud_costs=pd.concat(costs, ignore_index=True) if costs else _frame([], cost_columns),
    )

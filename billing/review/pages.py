"""The month page and the index of months: what they show, from the month folders' files.

Templates are in ``templates/review/`` (Jinja2, autoescaped); this module gives them plain
records. Amounts stay ``Decimal`` until the ``money`` filter formats them (``1,234.50 USD``).
Nothing on a page depends on when it was made: the same folders give the same bytes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import jinja2
from markupsafe import Markup
from sqlalchemy import Engine

from .. import api, atomic, ledger, logs
from ..config import Config
from ..config.job import MaxUnattributed
from ..errors import BillingError, Busy
from ..money import ZERO, format_amount
from ..records import PROVIDER_NAMES, Month, provider_name
from .charts import PALETTE, Series, month_label, stacked_bars

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "review"
PAGE, INDEX = "index.html", "index.html"
WINDOW = 12  # months in the month page's charts, the month itself the last
SHOWN_UNATTRIBUTED = 25  # rows of unattributed.csv listed on the page; the file has them all
INDEX_WAIT_SECONDS = 30  # another run writing the index holds its lock this long at most, in practice far less
PROVIDER_COLOURS = {"gcp": "#4285f4", "aws": "#ff9900", "azure": "#008272", "oci": "#c74634"}
SPLITS = {"proportional": "in proportion to direct cost", "even": "in equal parts", "fixed": "by agreed percentages",
          "metric": "by usage"}
# Files a month folder may hold, in the order the page lists them: (name, group, what it is).
KNOWN_FILES = (
    ("invoice-register.csv", "Tables (CSV)", "the register: one row per invoice and credit note"),
    ("invoice-lines.csv", "Tables (CSV)", "every invoice line, as printed"),
    ("cost-detail.csv", "Tables (CSV)", "every cost group and where it went, exact amounts"),
    ("shared-allocation.csv", "Tables (CSV)", "how each shared pool was split"),
    ("unattributed.csv", "Tables (CSV)", "costs no rule assigned"),
    ("absorbed.csv", "Tables (CSV)", "costs the organisation carries itself"),
    ("adjustments.csv", "Tables (CSV)", "late data found, and adjustments carried"),
    ("reconciliation.csv", "Tables (CSV)", "the providers' totals against where the costs went"),
    ("findings.csv", "Tables (CSV)", "guard findings accepted, and the run's warnings"),
    ("xero-invoices.csv", "Accounting imports", "sales invoices for Xero's import"),
    ("quickbooks-invoices.csv", "Accounting imports", "invoices for QuickBooks Online's import"),
    ("quickbooks-credit-notes.csv", "Accounting imports", "credit notes for QuickBooks Online's import"),
)
GROUPS = ("Invoices", "Workbook", "Accounting imports", "Tables (CSV)", "FinOps (FOCUS 1.2)", "Other files")


def long_month(month: str) -> str:
    """``2022-09`` -> ``September 2022``."""
    return Month.parse(month).label


def _money(amount: Decimal | None, currency: str, signed: bool = False) -> Markup:
    """``1,234.50 USD`` (the code smaller, never wrapped from its number); ``signed``: ``+1.00``."""
    if amount is None:
        return Markup("&ndash;")
    text = format_amount(amount, currency)
    if signed and not text.startswith("-") and text.strip("0.,"):
        text = "+" + text
    return Markup('{}&nbsp;<span class="ccy">{}</span>').format(text, currency)


def _percent(value: Decimal | None, signed: bool = False, places: int = 1) -> str:
    if value is None:
        return "\u2013"
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    rounded = rounded.copy_abs() if rounded.is_zero() else rounded  # never "-0.0%"
    return f"{rounded:{'+' if signed and rounded else ''},.{places}f}%"


@lru_cache(maxsize=2)
def _environment(folder: Path) -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters.update(money=_money, amount=format_amount, percent=_percent, month=long_month)
    return environment


def _render(template: str, **context) -> str:
    return _environment(TEMPLATES).get_template(template).render(**context)


# --- the month page ------------------------------------------------------------------------------

class Change(NamedTuple):
    """A total against the previous month's: ``None`` amounts when that month had none."""

    previous: Decimal | None
    amount: Decimal | None
    percent: Decimal | None


def _change(now: Decimal, before: Decimal | None) -> Change:
    if before is None:
        return Change(None, None, None)
    return Change(before, now - before, (now - before) * 100 / abs(before) if before else None)


class Unattributed(NamedTuple):
    """One currency's unattributed cost, measured as the guard measures it (each row's cost
    before credits, whatever its sign), against the config's ``guards.max_unattributed``."""

    currency: str
    size: Decimal
    net: Decimal
    source_total: Decimal
    percent: Decimal | None
    over: bool
    limit: str


def unattributed_by_currency(data: api.MonthData, limits: MaxUnattributed) -> list[Unattributed]:
    sizes: dict[str, Decimal] = defaultdict(lambda: ZERO)
    nets: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in data.unattributed.itertuples(index=False):
        sizes[row.currency] += abs(row.cost) or abs(row.net)
        nets[row.currency] += row.net
    sources: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in data.reconciliation.itertuples(index=False):
        sources[row.currency] += row.source_total
    found = []
    for currency in sorted(set(sources) | set(sizes)):
        size, total = sizes[currency], abs(sources[currency])
        percent = size * 100 / total if total else None
        over = ((limits.amount is not None and size > limits.amount)
                or (limits.percent is not None and percent is not None and percent > limits.percent))
        limit = " or ".join(part for part in (
            f"{format_amount(limits.amount, currency)} {currency}" if limits.amount is not None else "",
            f"{limits.percent.normalize():f}% of the providers' total" if limits.percent is not None else "") if part)
        found.append(Unattributed(currency, size, nets[currency], sources[currency], percent, over, limit))
    return found


def _pdf_name(row) -> str:
    """The PDF of a register row (as ``render.pdf.pdf_name`` names it)."""
    if row.type == "credit_note":
        return f"credit-note-{row.invoice_month}-{row.community_id}-{row.invoice_number}.pdf"
    if row.status == "void":
        return f"invoice-{row.invoice_month}-{row.community_id}-{row.invoice_number}-void.pdf"
    return f"invoice-{row.invoice_month}-{row.community_id}.pdf"


def _window(month: Month) -> list[str]:
    months = [month]
    for _ in range(WINDOW - 1):
        months.insert(0, months[0].previous)
    return [str(m) for m in months]


def _output_of(folder: Path) -> Path:
    """The output folder a month's folder belongs to: a run writes into a version folder
    (``<output>/.versions/2022-09.v-...``) before publishing it as ``<output>/2022-09``."""
    return folder.parent.parent if folder.parent.name == atomic.VERSIONS else folder.parent


def _read_others(output: Path, months: Iterable[str]) -> tuple[dict[str, api.MonthData], list[str]]:
    """The other months' folders that exist, read; a folder that cannot be read is named, not fatal
    (this month's page must not fail for another month's files)."""
    read, problems = {}, []
    for month in months:
        folder = output / month
        if (folder / api.REGISTER).is_file():
            try:
                read[month] = api.read_month(folder, month)
            except BillingError as error:
                problems.append(f"{month}: {error.message}")
    return read, problems


def _community_series(config: Config, keys: Iterable[str], names: Mapping[str, str]) -> list[Series]:
    """Communities in the config's order (then any no longer in it), each with its own colour."""
    order = [c.id for c in config.communities]
    keys = sorted(set(keys), key=lambda k: (order.index(k) if k in order else len(order), k))
    return [Series(key, names.get(key, key), PALETTE[(order.index(key) if key in order else len(order) + n)
                                                     % len(PALETTE)])
            for n, key in enumerate(keys)]


def _charts(config: Config, months: Sequence[str], costs, names: Mapping[str, str]) -> list[dict]:
    charts = []
    for n, (currency, mine) in enumerate(costs.groupby("currency", sort=True)):
        by_community: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        by_provider: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for row in mine.itertuples(index=False):
            by_community[(row.community_id, row.month)] += row.cost
            by_provider[(row.provider, row.month)] += row.cost
        providers = sorted({row.provider for row in mine.itertuples(index=False)})
        provider_series = [Series(p, provider_name(p),
                                  PROVIDER_COLOURS.get(p, PALETTE[7])) for p in providers]
        span = f"{month_label(months[0])} to {month_label(months[-1])}" if len(months) > 1 else month_label(months[0])
        charts.append({
            "currency": currency,
            "community": Markup(stacked_bars(
                f"chart{n + 1}-community", "community", months,
                _community_series(config, (k for k, _ in by_community), names), by_community, currency,
                f"Cloud cost per community, {currency}, {span}")),
            "provider": Markup(stacked_bars(
                f"chart{n + 1}-provider", "provider", months, provider_series, by_provider, currency,
                f"Cloud cost per provider, {currency}, {span}")),
        })
    return charts


def _pools(data: api.MonthData, config: Config, names: Mapping[str, str]) -> list[dict]:
    pools = []
    metrics = {pool.id: pool.metric for pool in config.shared_pools}
    for (pool, part, currency), mine in data.shared_allocation.groupby(["pool", "part", "currency"], sort=False):
        first = mine.iloc[0]
        split = first["split"]
        # What the shares are in proportion to, when it is not the share itself (fixed) or one each (even).
        weight = {"proportional": "Direct cost", "metric": metrics.get(pool) or "Usage"}.get(split)
        rows = [{"name": names.get(r.community_id, r.community_id), "percent": r.share_percent, "amount": r.amount,
                 "weight": _money(r.weight, currency) if split == "proportional" else f"{r.weight:,f}"}
                for r in mine.itertuples(index=False)]
        pools.append({"id": pool, "description": first["description"], "part": part, "currency": currency,
                      "split": SPLITS.get(split, split), "weight_header": weight, "rows": rows,
                      "total": first["pool_total"], "shared": sum((r["amount"] for r in rows), ZERO)})
    return pools


def _files(data: api.MonthData, names: Mapping[str, str]) -> list[dict]:
    """Every file in the folder (the page itself aside), grouped for a reader, with what it is."""
    known = {name: (group, what) for name, group, what in KNOWN_FILES}
    order = {name: n for n, (name, _, _) in enumerate(KNOWN_FILES)}
    documents = {_pdf_name(row): _document_text(row, names) for row in data.register.itertuples(index=False)}
    grouped: dict[str, list[dict]] = defaultdict(list)
    for name in data.files:
        if name == PAGE:
            continue
        if name.endswith(".pdf"):
            group, what = "Invoices", documents.get(name, "")
        elif name.endswith(".xlsx"):
            group, what = "Workbook", "every table in one Excel workbook"
        elif name.startswith("focus-") and name.endswith((".csv", ".parquet")):
            group, what = "FinOps (FOCUS 1.2)", ("the cost detail in FOCUS columns, shares as their own rows, "
                                                 f"for FinOps tools ({'CSV' if name.endswith('.csv') else 'Parquet'})")
        else:
            group, what = known.get(name, ("Other files", ""))
        grouped[group].append({"name": name, "what": what, "size": (data.folder / name).stat().st_size,
                               "order": order.get(name, len(order))})
    return [{"group": group, "files": sorted(grouped[group], key=lambda f: (f["order"], f["name"]))}
            for group in GROUPS if grouped[group]]


def _document_text(row, names: Mapping[str, str]) -> str:
    """``invoice for PaleoHack``, ``credit note INV-2022-00009 for PaleoHack``, ``void invoice ...``."""
    name = names.get(row.community_id, row.community_name)
    if row.type == "credit_note":
        return f"credit note {row.invoice_number} for {name}"
    if row.status == "void":
        return f"void invoice {row.invoice_number} for {name}"
    if row.status == "finalized":
        return f"invoice {row.invoice_number} for {name}"
    return f"{row.status} invoice for {name}"


def _size(size: int) -> str:
    return f"{size:,} bytes" if size < 1024 else f"{(size + 512) // 1024:,} KB"


def month_page(folder: Path, config: Config, month: Month) -> str:
    """The HTML of ``folder``'s page (see ``write_month_page``)."""
    data = api.read_month(folder, str(month))
    output = _output_of(folder)
    window = _window(month)
    others, problems = _read_others(output, window[:-1])
    read = {**others, str(month): data}
    first = min(read)
    shown = window[window.index(first):]
    history = api.read_history({m: d.folder for m, d in read.items()}, read=read)

    names = {c.id: c.name for c in config.communities}
    for row in history.invoices.itertuples(index=False):  # the name each community was billed under
        names.setdefault(row.community_id, row.community_name)
    current = api.current_invoices(data.register)
    previous_month = str(month.previous)
    has_previous = previous_month in read
    before = {(r.community_id, r.currency): r.total for r in history.invoices.itertuples(index=False)
              if r.month == previous_month}
    invoices = []
    for row in current.itertuples(index=False):
        invoices.append({"row": row, "pdf": _pdf_name(row) if _pdf_name(row) in data.files else None,
                         "change": _change(row.total, before.get((row.community_id, row.currency)))
                         if has_previous else None})
    others_documents = [{"row": row, "pdf": _pdf_name(row) if _pdf_name(row) in data.files else None}
                        for row in data.register.itertuples(index=False)
                        if row.type != "invoice" or row.status == "void"]
    totals = []
    for row in history.totals[history.totals["month"] == str(month)].itertuples(index=False):
        earlier = history.totals[(history.totals["month"] == previous_month)
                                 & (history.totals["currency"] == row.currency)]
        totals.append({"currency": row.currency, "invoices": row.invoices, "total": row.total,
                       "amount_due": row.amount_due,
                       "change": _change(row.total, earlier.iloc[0]["total"] if len(earlier) else
                                         (ZERO if has_previous else None))})
    status = api.register_status(data.register)
    unattributed = unattributed_by_currency(data, config.guards.max_unattributed)
    reconciliation = list(data.reconciliation.itertuples(index=False))
    return _render(
        "month.html.j2",
        organisation=config.organisation.name, month=str(month), status=status,
        previous=long_month(previous_month) if has_previous else None,
        previous_unread=any(problem.startswith(f"{previous_month}: ") for problem in problems),
        totals=totals, invoices=invoices, other_documents=others_documents,
        show_prepaid=any(r.prepaid_applied for r in current.itertuples(index=False)),
        charts=_charts(config, shown, history.cloud_costs, names), shown=shown,
        pools=_pools(data, config, names),
        unattributed=unattributed, unattributed_rows=list(data.unattributed.head(SHOWN_UNATTRIBUTED)
                                                          .itertuples(index=False)),
        unattributed_count=len(data.unattributed),
        reconciliation=reconciliation, balanced=all(not r.difference for r in reconciliation),
        providers=PROVIDER_NAMES, findings=list(data.findings.itertuples(index=False)),
        files=_files(data, names), size=_size, problems=problems,
    )


def write_month_page(folder: Path, config: Config, month: Month) -> None:
    """Write ``folder/index.html``: ``month``'s review page, from the files in ``folder`` (so write
    it after them) and the earlier months' folders beside it (for the change from the previous
    month and the charts over the last 12 months)."""
    (folder / PAGE).write_text(month_page(folder, config, month), encoding="utf-8")


# --- the index of months -------------------------------------------------------------------------

def index_page(config: Config, output: Path, documents: Sequence[ledger.Document] | None) -> str:
    """The HTML of ``output``'s index (see ``write_index``)."""
    read, problems = _read_summaries(output)
    history = api.read_history({m: d.folder for m, d in read.items()}, documents, detail=False, read=read)
    months = []
    for row in history.months.sort_values("month", ascending=False).itertuples(index=False):
        data = read[row.month]
        months.append({
            "month": row.month, "status": row.status,
            "ledger_status": row.ledger_status if row.ledger_status not in (None, row.status) else None,
            "page": f"{row.month}/{PAGE}" if PAGE in data.files else None,
            "invoices": row.invoices,
            "totals": list(history.totals[history.totals["month"] == row.month].itertuples(index=False)),
            "sources": list(history.sources[history.sources["month"] == row.month].itertuples(index=False)),
            "unattributed": unattributed_by_currency(data, config.guards.max_unattributed),
        })
    return _render("index.html.j2", organisation=config.organisation.name, months=months, problems=problems,
                   ledger=documents is not None)


def _read_summaries(output: Path) -> tuple[dict[str, api.MonthData], list[str]]:
    read, problems = {}, []
    for month, folder in api.month_folders(output).items():
        try:
            read[month] = api.read_month(folder, month, api.SUMMARY_TABLES)
        except BillingError as error:
            problems.append(f"{month}: {error.message}")
    return read, problems


def write_index(config: Config, output: Path, documents: Sequence[ledger.Document] | None = None) -> Path:
    """Write ``<output>/index.html``: every month folder under ``output``, newest first, with its
    totals per currency, invoice count, status (from the register, and from the ledger's
    ``documents`` when given) and unattributed share. Written whole (a temporary file renamed
    over it); call it holding the index's lock (``publish_index`` does)."""
    target = output / INDEX
    temporary = output / f".{INDEX}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        temporary.write_text(index_page(config, output, documents), encoding="utf-8")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def publish_index(config: Config, output: Path, engine: Engine | None) -> None:
    """Rewrite ``<output>/index.html`` after a month was published, under the index's own lock:
    two runs of different months finishing together each read every folder while holding it, so
    the last to write lists both. Waits for the lock up to ``INDEX_WAIT_SECONDS``. The month is
    published already, so a failure here is a warning (the next run, finalize or void rewrites the
    index), not an error."""
    log = logs.get("review")
    deadline = time.monotonic() + INDEX_WAIT_SECONDS
    while True:
        try:
            with atomic.locked(output / INDEX, "the index of months"):
                documents = ledger.status(engine) if engine is not None else None
                write_index(config, output, documents)
            return
        except Busy:
            if time.monotonic() > deadline:
                log.warning("%s was not rewritten: another run kept it locked for %d s; the next run rewrites it",
                            output / INDEX, INDEX_WAIT_SECONDS)
                return
            time.sleep(0.05)
        except (BillingError, OSError) as error:
            log.warning("%s was not rewritten: %s", output / INDEX, getattr(error, "message", None) or error)
            return

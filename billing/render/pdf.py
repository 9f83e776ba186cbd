"""PDF invoices: a Jinja2 template in ``templates/`` rendered by WeasyPrint.

The template folder is the project's ``templates/``; ``invoice.html.j2`` gets the invoice, the
community, the organisation, the page size and the purchase order, the invoice's lines by
section (the cloud lines passed through at cost apart from the markup and limit lines), and
filters that write as the community's locale does: ``money`` (an amount in a table, ``1,234.50``),
``total`` (with its currency, ``$1,234.50``, ``1.234,50 €``) and ``date`` (``September 30, 2022``).
"""

from __future__ import annotations

import calendar
import ctypes
import datetime as dt
import hashlib
import os
import shutil
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import jinja2

from .. import logs
from ..config import Community, Config
from ..errors import DataError
from ..adjustments import passed_through
from ..display import long_date
from ..money import ZERO, format_amount, format_money
from ..pricing import purchase_order
from ..records import Invoice
from . import csv_files

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATE = "invoice.html.j2"
# HarfBuzz's font subsetting library, by the file names WeasyPrint loads it by (Linux, macOS,
# Windows). Without it WeasyPrint subsets the fonts it embeds with fontTools, in Python: about
# four times the CPU per invoice, and PDFs whose bytes differ from those made with it.
HARFBUZZ_SUBSET = ("libharfbuzz-subset.so.0", "libharfbuzz-subset.0.dylib", "libharfbuzz-subset-0.dll")


def slow_font_subsetting() -> str | None:
    """A warning when WeasyPrint will not find HarfBuzz's font subsetting library; else None."""
    for name in HARFBUZZ_SUBSET:
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return ("HarfBuzz's font subsetting library (libharfbuzz-subset.so.0; the Debian and Ubuntu package "
            "libharfbuzz-subset0) is not installed, so each PDF takes about four times as long to render "
            "and its bytes differ from those rendered where it is: install it where invoices are rendered")


@lru_cache(maxsize=1)
def warn_of_slow_font_subsetting() -> None:
    """Say once per process, as a warning, what ``slow_font_subsetting`` finds."""
    said = slow_font_subsetting()
    if said:
        logs.get("render").warning(said)


def _locale(context: jinja2.runtime.Context) -> str:
    return context["community"].locale


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, amount: Decimal) -> str:
    """An amount in a table: the number as the community's locale writes it (``1,234.50``)."""
    return format_amount(amount, context["invoice"].currency, _locale(context))


@jinja2.pass_context
def _total(context: jinja2.runtime.Context, amount: Decimal) -> str:
    """An amount with its currency, as the community's locale writes it (``$1,234.50``, ``1.234,50 €``)."""
    return format_money(amount, context["invoice"].currency, _locale(context))


@jinja2.pass_context
def _date(context: jinja2.runtime.Context, day: dt.date) -> str:
    return long_date(day, _locale(context))


@lru_cache(maxsize=4)
def _environment(folder: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(money=_money, total=_total, date=_date)
    return environment


def invoice_html(invoice: Invoice, community: Community, config: Config, folder: Path = TEMPLATES) -> str:
    cloud_lines = [line for line in invoice.lines if line.section == "cloud"]
    passed = [line for line in cloud_lines if passed_through(line)]
    return _environment(folder).get_template(TEMPLATE).render(
        invoice=invoice,
        community=community,
        org=config.organisation,
        page_size=config.invoices.page_size,
        purchase_order=purchase_order(community, invoice.month),
        passed_lines=passed,
        other_cloud_lines=[line for line in cloud_lines if not passed_through(line)],
        fee_lines=[line for line in invoice.lines if line.section == "fees"],
        discount_lines=[line for line in invoice.lines if line.section == "discounts"],
        tax_lines=[line for line in invoice.lines if line.section == "tax"],
        passed_cost=sum((line.cost for line in passed), ZERO),
        passed_credits=sum((line.credits for line in passed), ZERO),
        passed_total=sum((line.amount for line in passed), ZERO),
    )


@contextmanager
def _fixed_timestamps(when: dt.date) -> Iterator[None]:
    """Make embedded font subsets carry ``when`` instead of the time of rendering.

    fontTools stamps each subset font it writes with the current time unless
    ``SOURCE_DATE_EPOCH`` is set; without this a rerun would not give the same bytes.
    """
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(calendar.timegm(when.timetuple()))
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


# The template links its stylesheet, so that the HTML is a document of its own (a preview, a test);
# a PDF is rendered with the stylesheet parsed once per process instead (the same bytes).
_LINK = '<link rel="stylesheet" href="invoice.css">'
STYLESHEET = "invoice.css"


@lru_cache(maxsize=4)
def prepared(folder: Path = TEMPLATES) -> tuple[object, object | None]:
    """What every PDF this process renders from ``folder`` shares: the template's stylesheet,
    parsed, and one font configuration (fonts found and loaded once). Each saves about a tenth of
    a document's time; the bytes are those of a document that links its stylesheet."""
    import weasyprint  # slow to import; only the runs that render pay for it
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    if not (folder / STYLESHEET).is_file():
        return fonts, None
    return fonts, weasyprint.CSS(filename=str(folder / STYLESHEET), font_config=fonts)


def write_invoice_pdf(path: Path, invoice: Invoice, community: Community, config: Config,
                      folder: Path = TEMPLATES) -> None:
    """Render the invoice to ``path`` as PDF/A-3b, with its lines embedded as a CSV file
    (``<number>-lines.csv``, the columns of ``invoice-lines.csv``) that accounting software can
    read; the same invoice always gives the same bytes."""
    import weasyprint

    fonts, stylesheet = prepared(folder)
    text = invoice_html(invoice, community, config, folder)
    if stylesheet is not None and _LINK in text:
        text, stylesheets = text.replace(_LINK, "", 1), [stylesheet]
    else:
        stylesheets = []
    html = weasyprint.HTML(string=text, base_url=str(folder))
    stamp = dt.datetime.combine(invoice.issue_date, dt.time(), dt.timezone.utc)
    lines = weasyprint.Attachment(
        string=csv_files.invoice_lines_text(invoice), base_url=str(folder), name=f"{invoice.number}-lines.csv",
        description=f"The lines of {invoice.number} as CSV", created=stamp, modified=stamp, relationship="Data")
    with _fixed_timestamps(invoice.issue_date):
        html.write_pdf(path, pdf_identifier=invoice.number.encode(), pdf_variant="pdf/a-3b", attachments=[lines],
                       stylesheets=stylesheets, font_config=fonts)


def pdf_name(invoice: Invoice) -> str:
    """``invoice-2022-09-<community>.pdf``; a void invoice and a credit note carry their numbers."""
    if invoice.kind == "credit_note":
        return f"credit-note-{invoice.month}-{invoice.community_id}-{invoice.number}.pdf"
    if invoice.status == "void":
        return f"invoice-{invoice.month}-{invoice.community_id}-{invoice.number}-void.pdf"
    return f"invoice-{invoice.month}-{invoice.community_id}.pdf"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_pdfs(folder: Path, previous: Path | None, invoices: Sequence[Invoice], finals: Mapping[str, str],
               config: Config, keep_drafts: bool = False, step: Callable[[str], None] | None = None,
               jobs: int | None = None, meanwhile: Callable[[], None] | None = None) -> None:
    """Every invoice's PDF into ``folder``.

    A final document (its number in ``finals``, with its PDF's sha256) is kept byte for byte: as
    ``folder`` has it already (finalize wrote it), or copied from ``previous`` (the month's
    folder as it is, under any name), or else rendered again from the record, which must give the
    recorded bytes. With ``keep_drafts``, a draft whose PDF ``previous`` has is copied as it is.
    The rest are rendered by ``jobs`` worker processes (``billing.render.pool``; default
    ``BILLING_JOBS``, else one per usable CPU; at most one per PDF; 1: in this process). ``step``
    (progress) is told each PDF's name once it is written, in the order of ``invoices``.
    ``meanwhile`` is called in this process once every PDF is on its way to a worker, before
    waiting for them (other files are written while the workers render).
    """
    from .pool import Renderer

    earlier: dict[str, Path] | None = None  # the PDFs of ``previous`` by sha256, read once if needed
    plan: list[tuple[Path, Invoice, Community, str | None] | None] = []  # per invoice: what to render, or None
    for invoice in invoices:
        target = folder / pdf_name(invoice)
        community = config.community(invoice.community_id)
        sha256 = finals.get(invoice.number)
        if sha256 is not None:
            if target.is_file() and sha256_of(target) == sha256:
                plan.append(None)
                continue
            if earlier is None:
                source = previous or folder
                earlier = {}
                for path in sorted(source.glob("*.pdf")) if source.is_dir() else ():
                    earlier.setdefault(sha256_of(path), path)
            if sha256 in earlier:
                shutil.copyfile(earlier[sha256], target)
                plan.append(None)
            else:
                plan.append((target, invoice._replace(status="finalized"), community, sha256))
        elif keep_drafts and previous is not None and (previous / target.name).is_file():
            shutil.copyfile(previous / target.name, target)
            plan.append(None)
        else:
            plan.append((target, invoice, community, None))
    with Renderer(config, jobs, sum(entry is not None for entry in plan)) as renderer:
        pending = [None if entry is None else renderer.start(*entry[:3]) for entry in plan]
        if meanwhile is not None:
            meanwhile()
        for invoice, entry, rendering in zip(invoices, plan, pending):
            target = folder / pdf_name(invoice)
            if entry is not None:
                rendering.wait()
                if entry[3] is not None and sha256_of(target) != entry[3]:
                    raise DataError(f"{invoice.number}: its PDF is not in {previous or folder}, and rendering it "
                                    f"again does not give the recorded bytes (sha256 {entry[3]}; did the template "
                                    "or the organisation's details change, or does this machine render with other "
                                    "fonts, another WeasyPrint, or without HarfBuzz's subsetting library?); put "
                                    f"back {target.name} from a copy: a finalized invoice never changes")
            if step:
                step(target.name)

"""PDF invoices: a Jinja2 template in ``templates/`` rendered by WeasyPrint.

The template folder is the project's ``templates/``; ``invoice.html.j2`` gets the invoice, the
community, the organisation, the page size and the purchase order, the invoice's lines by
section (the cloud lines passed through at cost apart from the markup and limit lines), and
filters that write as the community's locale does: ``money`` (an amount in a table, ``1,234.50``),
``total`` (with its currency, ``$1,234.50``, ``1.234,50 €``) and ``date`` (``September 30, 2022``).
"""

from __future__ import annotations

import calendar
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


def write_invoice_pdf(path: Path, invoice: Invoice, community: Community, config: Config,
                      folder: Path = TEMPLATES) -> None:
    """Render the invoice to ``path`` as PDF/A-3b, with its lines embedded as a CSV file
    (``<number>-lines.csv``, the columns of ``invoice-lines.csv``) that accounting software can
    read; the same invoice always gives the same bytes."""
    import weasyprint  # slow to import; only the runs that render pay for it

    html = weasyprint.HTML(string=invoice_html(invoice, community, config, folder), base_url=str(folder))
    stamp = dt.datetime.combine(invoice.issue_date, dt.time(), dt.timezone.utc)
    lines = weasyprint.Attachment(
        string=csv_files.invoice_lines_text(invoice), base_url=str(folder), name=f"{invoice.number}-lines.csv",
        description=f"The lines of {invoice.number} as CSV", created=stamp, modified=stamp, relationship="Data")
    with _fixed_timestamps(invoice.issue_date):
        html.write_pdf(path, pdf_identifier=invoice.number.encode(), pdf_variant="pdf/a-3b", attachments=[lines])


def pdf_name(invoice: Invoice) -> str:
    """``invoice-2022-09-<community>.pdf``; a void invoice and a credit note carry their numbers."""
    if invoice.kind == "credit_note":
        return f"credit-note-{invoice.month}-{invoice.community_id}-{invoice.number}.pdf"
    if invoice.status == "void":
        return f"invoice-{invoice.month}-{invoice.community_id}-{invoice.number}-void.pdf"
    return f"invoice-{invoice.month}-{invoice.community_id}.pdf"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def place_final_pdf(folder: Path, previous: Path, invoice: Invoice, sha256: str, community: Community,
                    config: Config) -> None:
    """Put a finalized (or void) invoice's or a credit note's PDF, byte for byte the one the ledger
    recorded, into ``folder``: copied from ``previous`` (the month's folder as it is, under any
    name), or rendered again from the ledger's record when it is not there; either way its
    sha256 must be the recorded one."""
    target = folder / pdf_name(invoice)
    for earlier in sorted(previous.glob("*.pdf")) if previous.is_dir() else ():
        if sha256_of(earlier) == sha256:
            shutil.copyfile(earlier, target)
            return
    write_invoice_pdf(target, invoice._replace(status="finalized"), community, config)
    if sha256_of(target) != sha256:
        raise DataError(f"{invoice.number}: its PDF is not in {previous}, and rendering it again does not give the "
                        f"recorded bytes (sha256 {sha256}; did the template or the organisation's details change?); "
                        f"put back {pdf_name(invoice)} from a copy: a finalized invoice never changes")


def write_pdfs(folder: Path, previous: Path | None, invoices: Sequence[Invoice], finals: Mapping[str, str],
               config: Config, keep_drafts: bool = False, step: Callable[[str], None] | None = None) -> None:
    """Every invoice's PDF into ``folder``. A final document (its number in ``finals``, with its
    PDF's sha256) is kept byte for byte (``place_final_pdf``, from ``previous``); with
    ``keep_drafts``, a draft whose PDF ``previous`` has is copied as it is; the rest are rendered.
    ``step`` (progress) is told each PDF's name as it starts."""
    for invoice in invoices:
        target = folder / pdf_name(invoice)
        if step:
            step(target.name)
        community = config.community(invoice.community_id)
        if invoice.number in finals:
            place_final_pdf(folder, previous or folder, invoice, finals[invoice.number], community, config)
        elif keep_drafts and previous is not None and (previous / target.name).is_file():
            shutil.copyfile(previous / target.name, target)
        else:
            write_invoice_pdf(target, invoice, community, config)

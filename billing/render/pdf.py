"""PDF invoices: a Jinja2 template in ``templates/`` rendered by WeasyPrint.

The template folder is the project's ``templates/``; ``invoice.html.j2`` gets the invoice, the
community, the organisation and the page size, plus a ``money`` filter that formats an amount in
the invoice's currency (``1,234.50``).
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
from ..money import ZERO, format_amount
from ..records import Invoice

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATE = "invoice.html.j2"


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, amount: Decimal) -> str:
    return format_amount(amount, context["invoice"].currency)


@lru_cache(maxsize=4)
def _environment(folder: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["money"] = _money
    return environment


def invoice_html(invoice: Invoice, community: Community, config: Config, folder: Path = TEMPLATES) -> str:
    cloud_lines = [line for line in invoice.lines if line.section == "cloud"]
    return _environment(folder).get_template(TEMPLATE).render(
        invoice=invoice,
        community=community,
        org=config.organisation,
        page_size=config.invoices.page_size,
        cloud_lines=cloud_lines,
        fee_lines=[line for line in invoice.lines if line.section == "fees"],
        discount_lines=[line for line in invoice.lines if line.section == "discounts"],
        tax_lines=[line for line in invoice.lines if line.section == "tax"],
        cloud_cost=sum((line.cost for line in cloud_lines if line.provider), ZERO),
        cloud_credits=sum((line.credits for line in cloud_lines if line.provider), ZERO),
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
    """Render the invoice to ``path``; the same invoice always gives the same bytes."""
    import weasyprint  # slow to import; only the runs that render pay for it

    html = weasyprint.HTML(string=invoice_html(invoice, community, config, folder), base_url=str(folder))
    with _fixed_timestamps(invoice.issue_date):
        html.write_pdf(path, pdf_identifier=invoice.number.encode())


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

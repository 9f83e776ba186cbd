"""Finalizing a month, and voiding a finalized invoice: the ledger and the month's folder
changed together.

Under the month's lock, a new version of the month's folder is written: the final PDFs (no DRAFT
mark) rendered while the ledger's transaction assigns the numbers, the drafts left as they were,
and the register and lines rewritten from the ledger; then the folder is switched in one step.
A run killed after the ledger committed leaves the old folder; finalizing again (a no-op in the
ledger) writes the folder from the ledger, so the two always end up matching.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import Engine

from . import atomic, ledger
from .config import Config
from .errors import LedgerError, UsageError
from .pricing import final_number
from .records import Invoice, Month
from .render import csv_files
from .render.derived import write_derived
from .render.pdf import pdf_name, sha256_of, write_invoice_pdf, write_pdfs
from .run import locked_month

REWRITTEN = ("invoice-register.csv", "invoice-lines.csv", "adjustments.csv")


def finalize_month(config: Config, month: Month, communities: Sequence[str] | None = None,
                   output: Path | None = None, command: str = "billing finalize",
                   then: Callable[[tuple[ledger.Finalized, ...]], None] | None = None) -> tuple[ledger.Finalized, ...]:
    """Finalize ``month``'s drafts (of ``communities``, or all) and write its folder to match;
    ``then`` is called with what was finalized while the month's lock is still held (delivery)."""
    with locked_month(config, month, output, command, existing=True) as (engine, final):
        with atomic.writing(final) as version:
            done = ledger.finalize(engine, month, communities, partial(final_number, config),
                                   partial(_render_final, version, config), command)
            _write_month(version, final, config, engine, month)
        _publish_index(config, final, engine)
        if then is not None:
            then(done)
    return done


def _publish_index(config: Config, final: Path, engine: Engine) -> None:
    """The index of months (``<output>/index.html``), now that the month's new folder is published."""
    from .review import publish_index  # pandas: imported only when a month is written
    publish_index(config, final.parent, engine)


def _render_final(folder: Path, config: Config, invoice: Invoice) -> str:
    path = folder / pdf_name(invoice)
    write_invoice_pdf(path, invoice, config.community(invoice.community_id), config)
    return sha256_of(path)


def _write_month(folder: Path, previous: Path, config: Config, engine: Engine, month: Month) -> None:
    """The month's folder as the ledger has it: every document's PDF (final and void invoices and
    credit notes byte for byte as recorded, drafts as they were), the register, lines and
    adjustments rewritten, the other files kept."""
    for path in previous.iterdir():
        if path.is_file() and path.name not in REWRITTEN and path.suffix != ".pdf":
            shutil.copyfile(path, folder / path.name)
    order = {community.id: n for n, community in enumerate(config.communities)}
    invoices = sorted(ledger.month_invoices(engine, month),
                      key=lambda i: (order.get(i.community_id, len(order)), i.community_id))
    finals = {invoice.number: sha256 for invoice, sha256 in ledger.finalized(engine, month)}
    write_pdfs(folder, previous, invoices, finals, config, keep_drafts=True)
    csv_files.write_register(folder / "invoice-register.csv", invoices)
    csv_files.write_lines(folder / "invoice-lines.csv", invoices)
    csv_files.write_adjustments(folder / "adjustments.csv", ledger.found_adjustments(engine, month), invoices)
    write_derived(folder, config, month)


def void_invoice(config: Config, number: str, reason: str, output: Path | None = None,
                 command: str = "billing void") -> ledger.Voided:
    """Void the finalized invoice ``number`` with a credit note, in the ledger and its month's folder."""
    if not reason.strip():
        raise UsageError(f"{command}: give the reason with --reason; it is printed on the credit note")
    url = ledger.ledger_url(config.ledger.url)
    engine = ledger.open_ledger(url, command)
    try:
        month_text = ledger.month_of(engine, number)
    finally:
        engine.dispose()
    if month_text is None:
        raise LedgerError(f"{command}: no invoice is numbered {number!r} (`billing status` lists the numbers)")
    month = Month.parse(month_text)
    with locked_month(config, month, output, command, existing=True) as (engine, final):
        with atomic.writing(final) as version:
            done = ledger.void(engine, number, reason.strip(), partial(final_number, config),
                               partial(_render_final, version, config), command)
            _write_month(version, final, config, engine, month)
        _publish_index(config, final, engine)
    return done

"""Finalizing a month, and voiding a finalized invoice: the ledger and the month's folder
changed together.

Under the month's lock, a new version of the month's folder is written: the final PDFs (no DRAFT
mark) rendered while the ledger's transaction assigns the numbers, the drafts left as they were,
and the register and lines rewritten from the ledger; then the folder is switched in one step.
A run killed after the ledger committed leaves the old folder; finalizing again (a no-op in the
ledger) writes the folder from the ledger, so the two always end up matching.

The ledger numbers the drafts one after the other and asks for each one's final PDF (its
sha256) before numbering the next. Rendered one by one, that would keep one CPU busy and the
transaction open for a quarter of a second per invoice; so when the ledger gives the first
number, every draft's final PDF is started at once in worker processes, each with the number it
will get (the next ones in turn, in the ledger's order). A PDF rendered ahead is used only for
the very invoice it was rendered from; any other is rendered when asked for. The numbers are
still given in the one transaction, and the PDFs are in the version folder that is published
only after it committed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import Engine

from . import atomic, dates, ledger
from .config import Config
from .errors import LedgerError, UsageError
from .pricing import final_number
from .records import Invoice, Month
from .render import csv_files, focus
from .render.derived import write_derived
from .render.pdf import pdf_name, sha256_of, write_pdfs
from .render.pool import Pending, Renderer, start_early, worker_count
from .run import locked_month

REWRITTEN = ("invoice-register.csv", "invoice-lines.csv", "adjustments.csv")


def finalize_month(config: Config, month: Month, communities: Sequence[str] | None = None,
                   output: Path | None = None, command: str = "billing finalize",
                   then: Callable[[tuple[ledger.Finalized, ...]], None] | None = None,
                   jobs: int | None = None, config_sha256: str = "") -> tuple[ledger.Finalized, ...]:
    """Finalize ``month``'s drafts (of ``communities``, or all) and write its folder to match;
    ``then`` is called with what was finalized while the month's lock is still held (delivery).
    ``jobs``: worker processes rendering the PDFs (default ``BILLING_JOBS``, else one per usable
    CPU; 1: this process). ``config_sha256`` (of the config file): drafts priced with another
    config are refused (not checked when empty, or when the run recorded none)."""
    with locked_month(config, month, output, command, existing=True) as (engine, final):
        with atomic.writing(final) as version:
            drafts = [invoice for invoice in ledger.month_invoices(engine, month)
                      if invoice.kind == "invoice" and invoice.status == "draft"
                      and (not communities or invoice.community_id in communities)]
            start_early(jobs, len(drafts))
            with FinalPdfs(version, config, drafts, jobs) as pdfs:
                done = ledger.finalize(engine, month, communities, pdfs.number, pdfs.render, command, config_sha256)
            _write_month(version, final, config, engine, month, jobs)
        _publish_index(config, final, engine)
        if then is not None:
            then(done)
    return done


def _publish_index(config: Config, final: Path, engine: Engine) -> None:
    """The index of months (``<output>/index.html``), now that the month's new folder is published."""
    from .review import publish_index  # pandas: imported only when a month is written
    publish_index(config, final.parent, engine)


class FinalPdfs:
    """The final PDFs of the invoices a ledger's transaction finalizes, into ``folder``:
    ``number`` and ``render`` are its callbacks. ``drafts`` are the drafts it is expected to
    finalize, in its order; at the first number, their final PDFs are started in ``jobs`` worker
    processes, into a hidden folder of ``folder``, and each is moved into place when the ledger
    asks for that very invoice. A context manager: leaving it stops the workers and removes what
    was rendered ahead and not asked for."""

    AHEAD = ".ahead"

    def __init__(self, folder: Path, config: Config, drafts: Sequence[Invoice], jobs: int | None = None):
        self.folder, self.config, self.drafts, self.jobs = folder, config, list(drafts), jobs
        self.ahead: dict[str, tuple[Invoice, Pending]] | None = None  # by PDF name, once started
        self._stack = ExitStack()

    def __enter__(self) -> "FinalPdfs":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()  # waits for the workers
        shutil.rmtree(self.folder / self.AHEAD, ignore_errors=True)

    def number(self, seq: int, draft: Invoice) -> str:
        if self.ahead is None:
            self._start(seq, draft)
        return final_number(self.config, seq, draft)

    def _start(self, seq: int, draft: Invoice) -> None:
        """Render ahead the drafts from ``draft`` on, numbered from ``seq``."""
        self.ahead = {}
        following = self.drafts[self.drafts.index(draft):] if draft in self.drafts else []
        if worker_count(self.jobs, len(following)) < 2:
            return  # one at a time, when asked for
        renderer = self._stack.enter_context(Renderer(self.config, self.jobs, len(following)))
        (self.folder / self.AHEAD).mkdir()
        for offset, invoice in enumerate(following):
            final = invoice._replace(number=final_number(self.config, seq + offset, invoice), status="finalized")
            path = self.folder / self.AHEAD / pdf_name(final)
            self.ahead[path.name] = (final, renderer.start(path, final, self.config.community(final.community_id)))

    def render(self, final: Invoice) -> str:
        """Write ``final``'s PDF into the folder; its sha256."""
        path = self.folder / pdf_name(final)
        expected, pending = (self.ahead or {}).pop(path.name, (None, None))
        if pending is not None and expected == final:
            pending.wait()
            os.replace(pending.path, path)
            return sha256_of(path)
        with Renderer(self.config, 1, 1) as renderer:
            renderer.start(path, final, self.config.community(final.community_id)).wait()
        return sha256_of(path)


def _write_month(folder: Path, previous: Path, config: Config, engine: Engine, month: Month,
                 jobs: int | None = None) -> None:
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
    write_pdfs(folder, previous, invoices, finals, config, keep_drafts=True, jobs=jobs)
    csv_files.write_register(folder / "invoice-register.csv", invoices)
    csv_files.write_lines(folder / "invoice-lines.csv", invoices)
    csv_files.write_adjustments(folder / "adjustments.csv", ledger.found_adjustments(engine, month), invoices)
    focus.renumber(folder, month, invoices)
    write_derived(folder, config, month)


def void_invoice(config: Config, number: str, reason: str, output: Path | None = None,
                 command: str = "billing void", today: dt.date | None = None) -> ledger.Voided:
    """Void the finalized invoice ``number`` with a credit note issued ``today`` (default: the date
    in UTC), in the ledger and its month's folder."""
    if not reason.strip():
        raise UsageError(f"{command}: give the reason with --reason; it is printed on the credit note")
    url = ledger.ledger_url(config.ledger.url)
    engine = ledger.open_ledger(url, command)
    try:
        month_text = ledger.month_of(engine, number)
    finally:
        engine.dispose()
    if month_text is None:
        if number.upper().startswith("DRAFT-"):
            raise LedgerError(f"{command}: {number} is a draft's reference, not an invoice number: a draft needs no "
                              "voiding (the next `billing run` of its month replaces it); only finalized invoices "
                              "are voided")
        raise LedgerError(f"{command}: no invoice is numbered {number!r} (`billing status` lists the numbers)")
    month = Month.parse(month_text)
    with locked_month(config, month, output, command, existing=True) as (engine, final):
        with atomic.writing(final) as version:
            with FinalPdfs(version, config, (), jobs=1) as pdfs:  # one credit note; the rest is copied
                done = ledger.void(engine, number, reason.strip(), pdfs.number, pdfs.render, command,
                                   today or dates.today())
            _write_month(version, final, config, engine, month, jobs=1)
        _publish_index(config, final, engine)
    return done

"""The one line a command ends with, for the scheduler's log and for the messages delivery sends:
the month, its invoices, their totals per currency, what was left unattributed, and what the run
paid for. Built from a run's result or, for a month already run, from the ledger."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any, Iterable, Mapping, NamedTuple

from .money import ZERO, format_amount, quantize
from .records import Invoice, Month


class Summary(NamedTuple):
    """What the closing line says; ``fields`` is the same for a JSON log."""

    command: str
    month: Month
    invoices: int
    provisional: int
    totals: dict[str, Decimal]
    unattributed: dict[str, Decimal]
    paid_requests: int = 0
    bytes_scanned: int = 0
    extra: str = ""
    drafts: int = 0

    def line(self) -> str:
        totals = ", ".join(f"{format_amount(a, c)} {c}" for c, a in sorted(self.totals.items())) or "none"
        loose = ", ".join(f"{format_amount(a, c)} {c}" for c, a in sorted(self.unattributed.items())
                          if quantize(a, c)) or "none"
        states = [f"{self.provisional} provisional"] if self.provisional else []
        if 0 < self.drafts < self.invoices:  # a month partly finalized
            states[:0] = [f"{self.invoices - self.drafts} final", f"{self.drafts} draft(s)"]
        said = f" ({', '.join(states)})" if states else ""
        return (f"{self.command} {self.month}: {self.invoices} invoice(s){said}; totals {totals}; "
                f"unattributed {loose}; paid API requests {self.paid_requests}; bytes scanned "
                f"{human_bytes(self.bytes_scanned)}" + (f"; {self.extra}" if self.extra else ""))

    def subject(self) -> str:
        """For finance's inbox: ``Invoices for September 2022: 8 invoices, 17,683.74 USD, ...``."""
        totals = ", ".join(f"{format_amount(a, c)} {c}" for c, a in sorted(self.totals.items()))
        state = " (provisional)" if self.provisional else ""
        return f"Invoices for {self.month.label}{state}: {self.invoices} invoice(s)" + (f", {totals}" if totals else "")

    def fields(self) -> dict[str, Any]:
        return {"invoices": self.invoices, "draft_invoices": self.drafts, "provisional_invoices": self.provisional,
                "totals": {c: str(a) for c, a in sorted(self.totals.items())},
                "unattributed": {c: str(a) for c, a in sorted(self.unattributed.items())},
                "paid_api_requests": self.paid_requests, "bytes_scanned": self.bytes_scanned}


def of_invoices(command: str, month: Month, invoices: Iterable[Invoice], unattributed: Mapping[str, Decimal],
                paid_requests: int = 0, bytes_scanned: int = 0) -> Summary:
    """The summary of a month's invoices (credit notes and void invoices are not counted)."""
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    count = provisional = drafts = 0
    for invoice in invoices:
        if invoice.kind != "invoice" or invoice.status == "void":
            continue
        count += 1
        drafts += invoice.status == "draft"
        provisional += invoice.provisional and invoice.status == "draft"
        totals[invoice.currency] += invoice.total
    return Summary(command, month, count, provisional, dict(totals), dict(unattributed), paid_requests,
                   bytes_scanned, drafts=drafts)



def human_bytes(count: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"

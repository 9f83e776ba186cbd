"""Late data as adjustments: what a month's finalized invoice would charge now, less what it did.

Billing data keeps arriving after a month is invoiced (a GCP adjustment row, a late credit, an
AWS refund posted later). A finalized invoice never changes, so when a run of its month prices
the community's cloud costs differently, the difference of each line passed through at cost (per
provider and service, and per shared pool) becomes an adjustment, carried as a line of the
community's next draft invoice: "Adjustment to INV-2022-00012 (September 2022): Google Cloud:
Compute Engine". Amounts are in the invoice's currency, as its lines are; the markup and fees of
the finalized invoice are not recomputed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from .money import ZERO
from .records import Invoice, InvoiceLine


class Adjustment(NamedTuple):
    """A difference found for a finalized invoice, to be carried by a later invoice.

    Attributes:
        id: the ledger's id of it (0 before it is recorded).
        community_id: whose invoice it adjusts.
        month: the month of the finalized invoice (``YYYY-MM``); month_label its name.
        invoice_number: the finalized invoice's number.
        description: the line it adjusts ("Google Cloud: Compute Engine").
        currency, amount: the difference, in the invoice's currency (positive: more to pay).
    """

    id: int
    community_id: str
    month: str
    month_label: str
    invoice_number: str
    description: str
    currency: str
    amount: Decimal


def passed_through(line: InvoiceLine) -> bool:
    """A cloud line passed through at cost: a provider's, a share of a pool, or an adjustment."""
    return line.section == "cloud" and bool(line.provider or line.description.startswith(("Shared", "Adjustment")))


def line_key(line: InvoiceLine) -> str:
    """What a line adjusts: its description, without a shared line's figures ("(21.1% of ...)")."""
    if line.description.startswith("Shared"):
        return line.description.rpartition(" (")[0] or line.description
    return line.description


def differences(finalized: Invoice, now: Invoice) -> dict[str, Decimal]:
    """Per line passed through at cost: what ``now`` (the month priced again) charges less what the
    ``finalized`` invoice charged; only the lines that differ."""
    amounts: dict[str, Decimal] = {}
    for sign, invoice in ((-1, finalized), (1, now)):
        for line in invoice.lines:  # adjustments an invoice carries are fixed amounts: not compared
            if passed_through(line) and not line.description.startswith("Adjustment"):
                amounts[line_key(line)] = amounts.get(line_key(line), ZERO) + sign * line.amount
    return {key: amount for key, amount in sorted(amounts.items()) if amount}


def describe(adjustment: Adjustment) -> str:
    return f"Adjustment to {adjustment.invoice_number} ({adjustment.month_label}): {adjustment.description}"

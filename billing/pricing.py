"""Pricing: a community's contract turns its attributed costs into invoice lines.

- Cloud costs are passed through at cost in their own section, one line per provider and
  service, showing the cost before credits, the credits, and the amount charged.
  Tax the provider charged on the community's usage is its own line per provider.
- Each flat monthly fee of the contract is a line of the fees section.

Rounding (the one place an invoice amount is rounded): a line's ``amount`` is its full-precision
cost plus credits, rounded half-up to the currency's minor unit; the cost shown is the
full-precision cost rounded the same way, and the credits shown are ``amount - cost``, so every
line adds up across. Every total is a sum of rounded line amounts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterable, Sequence

from .config import Community, InvoiceSettings
from .errors import DataError
from .money import ZERO, quantize
from .records import PROVIDER_NAMES, TAX, Attributed, Invoice, InvoiceLine, Month

TAX_SERVICE = "Tax"


def pass_through_lines(community: Community, attributed: Iterable[Attributed]) -> list[InvoiceLine]:
    """Cloud lines at cost, one per provider and service."""
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for item in attributed:
        row = item.row
        if row.currency != community.currency:
            raise DataError(
                f"community {community.id!r} is billed in {community.currency} but source "
                f"{row.source!r} has costs in {row.currency} (billing account {row.billing_account}); "
                "set the community's currency to match")
        service = TAX_SERVICE if row.charge_type == TAX else row.service
        cost_and_credits = sums.setdefault((row.provider, service), [ZERO, ZERO])
        cost_and_credits[0] += row.cost
        cost_and_credits[1] += row.credit_total
    lines = []
    for (provider, service), (cost, credits) in sorted(sums.items(), key=_cloud_order):
        amount = quantize(cost + credits, community.currency)
        shown_cost = quantize(cost, community.currency)
        lines.append(InvoiceLine(
            section="cloud",
            description=f"{PROVIDER_NAMES[provider]}: {service}",
            provider=provider,
            service=service,
            cost=shown_cost,
            credits=amount - shown_cost,
            amount=amount,
        ))
    return lines


def _cloud_order(item: tuple[tuple[str, str], list[Decimal]]) -> tuple:
    (provider, service), _ = item
    return (provider, service == TAX_SERVICE, service.lower())


def fee_lines(community: Community) -> list[InvoiceLine]:
    lines = []
    for fee in community.contract.fees:
        amount = quantize(fee.amount, community.currency)
        lines.append(InvoiceLine("fees", fee.description, "", "", amount, ZERO, amount))
    return lines


def invoice_number(settings: InvoiceSettings, community: Community, month: Month) -> str:
    """A draft reference such as ``DRAFT-202209-paleohack``, stable across reruns."""
    return f"{settings.number_prefix}-{month.compact}-{community.id}"


def price_invoice(community: Community, month: Month, attributed: Sequence[Attributed],
                  settings: InvoiceSettings, scope: Sequence[str] = ()) -> Invoice:
    """The invoice of ``community`` for ``month`` from the rows attributed to it.

    Issued on the first day of the month after the billing period (deterministic, so a rerun
    gives the same document), due ``payment_terms_days`` later. ``scope`` says what the cloud
    costs cover (``attribution.scope``).
    """
    issue_date = month.next.first_day
    return Invoice(
        number=invoice_number(settings, community, month),
        status="draft",
        community_id=community.id,
        community_name=community.name,
        month=month,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=community.contract.payment_terms_days),
        currency=community.currency,
        lines=tuple(pass_through_lines(community, attributed) + fee_lines(community)),
        scope=tuple(scope),
    )

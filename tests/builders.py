"""Small builders for records, so tests state only what they are about."""

from __future__ import annotations

from decimal import Decimal

from billing.config import Community, Rule
from billing.records import CostRow


def cost_row(provider="gcp", account="proj", service="Compute Engine", cost="0", credits=(),
             labels=(), charge_type="usage", billing_account=None, currency="USD",
             month="2022-09") -> CostRow:
    return CostRow(
        provider=provider,
        billing_account=billing_account or ("BA-1" if provider == "gcp" else "111111111111"),
        invoice_month=month,
        project_or_account=account,
        service=service,
        charge_type=charge_type,
        labels=tuple(sorted(labels)),
        currency=currency,
        cost=Decimal(cost),
        credits=tuple((t, Decimal(a)) for t, a in credits),
        source=f"{provider}-source",
    )


def rule(community: str, **match) -> Rule:
    return Rule.model_validate({"community": community, "match": match})


def community(id="hub", currency="USD", fees=(), **extra) -> Community:
    return Community.model_validate({
        "id": id, "name": id.title(), "currency": currency,
        "contract": {"fees": [{"description": d, "amount": Decimal(a)} for d, a in fees], **extra},
    })

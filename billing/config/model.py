"""The whole config file: its sections, and look-ups across them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field

from .fields import _Model

from .rules import Rule, SharedPool
from .sources import Source
from .terms import Community, ExchangeRate, InvoiceSettings, Organisation


class Config(_Model):
    organisation: Organisation
    invoices: InvoiceSettings = InvoiceSettings()
    sources: list[Source] = Field(min_length=1)
    communities: list[Community] = Field(min_length=1)
    attribution: list[Rule] = []
    shared_pools: list[SharedPool] = []
    exchange_rates: list[ExchangeRate] = []
    metrics: Path | None = None
    output: Path = Path("output")

    def community(self, community_id: str) -> Community:
        return next(c for c in self.communities if c.id == community_id)

    def pool(self, pool_id: str) -> SharedPool:
        return next(p for p in self.shared_pools if p.id == pool_id)

    def label_keys(self, provider: str) -> tuple[str, ...]:
        """The label (GCP) or tag (AWS) keys any rule or pool scope looks at, sorted."""
        keys: set[str] = set()
        matches = [r.match for r in self.attribution] + [p.scope for p in self.shared_pools if p.scope]
        for match in matches:
            conditions = match.gcp_label if provider == "gcp" else match.aws_tag
            keys.update(conditions or {})
        return tuple(sorted(keys))

    def exchange_rate(self, month: str, from_currency: str, to_currency: str) -> Decimal | None:
        for rate in self.exchange_rates:
            if (rate.month, rate.from_currency, rate.to_currency) == (month, from_currency, to_currency):
                return rate.rate
        return None



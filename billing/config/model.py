"""The whole config file: its sections, and look-ups across them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..errors import ConfigError
from .accounting import Accounting
from .delivery import Delivery
from .fields import _Model
from .job import Guards, SettleDays
from .rules import Rule, SharedPool
from .sources import Source
from .terms import Community, ExchangeRate, InvoiceSettings, Organisation


SQLITE_PREFIX = "sqlite:///"


class LedgerSettings(_Model):
    """Where the ledger is: ``sqlite:///<path>`` (relative to the config file; the default) or
    ``postgresql+psycopg://user@host/database``. A password never goes here: PostgreSQL takes it
    from the environment (``PGPASSWORD``) or a ``.pgpass`` file. ``BILLING_LEDGER_URL`` in the
    environment overrides the whole URL."""

    url: str = SQLITE_PREFIX + "../ledger.sqlite"

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if not rest or not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError("must be sqlite:///<path> or postgresql+psycopg://user@host/database")
        credentials = rest.split("@", 1)[0] if "@" in rest.split("/", 1)[0] else ""
        if ":" in credentials:
            raise ValueError("holds a password; give it in the environment (PGPASSWORD) or a .pgpass file, never "
                             "in the config")
        return value


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
    ledger: LedgerSettings = LedgerSettings()
    deliver: Delivery | None = None
    settle_days: SettleDays = 5
    guards: Guards = Guards()
    accounting: Accounting = Field(Accounting(), validate_default=True)

    @field_validator("accounting")
    @classmethod
    def _accounting_names_communities(cls, value: Accounting, info: ValidationInfo) -> Accounting:
        communities = info.data.get("communities")
        if communities is not None:
            prepaid = [c.id for c in communities if any(t.prepaid for t in c.all_contracts)]
            problems = value.problems([c.id for c in communities], prepaid)
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _payment_instructions_for_every_currency(self) -> Config:
        given = self.organisation.payment_instructions
        if isinstance(given, dict):
            billed = {c.currency or community.currency: community.id
                      for community in self.communities for c in community.all_contracts}
            missing = sorted(set(billed) - set(given))
            if missing:
                raise ValueError(f"organisation.payment_instructions has no instructions for {', '.join(missing)} "
                                 f"(community {billed[missing[0]]!r} is billed in {missing[0]}); add them, or give "
                                 "one text for every currency")
        return self

    def community(self, community_id: str) -> Community:
        for community in self.communities:
            if community.id == community_id:
                return community
        raise ConfigError(f"community {community_id!r} has invoices in the ledger but is not in the config; put it "
                          "back (its finalized invoices stay as they are)")

    def pool(self, pool_id: str) -> SharedPool:
        return next(p for p in self.shared_pools if p.id == pool_id)

    def label_keys(self, providers: str | frozenset[str] | None) -> tuple[str, ...]:
        """The label or tag keys any rule or pool scope that can match costs of ``providers`` (a
        provider, a set of them, or ``None``: any) looks at, sorted."""
        if isinstance(providers, str):
            providers = frozenset({providers})
        keys: set[str] = set()
        matches = [r.match for r in self.attribution] + [p.scope for p in self.shared_pools if p.scope]
        for match in matches:
            if providers is None or match.providers is None or match.providers & providers:
                keys.update(match.labels)
        return tuple(sorted(keys))

    def exchange_rate(self, month: str, from_currency: str, to_currency: str) -> Decimal | None:
        for rate in self.exchange_rates:
            if (rate.month, rate.from_currency, rate.to_currency) == (month, from_currency, to_currency):
                return rate.rate
        return None



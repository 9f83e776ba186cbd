"""Who bills whom and on what terms: the organisation, the communities and their contracts
(fees, tiers, cloud terms, minimums, discounts, tax), and exchange rates."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, PlainValidator, Tag, field_validator, model_validator

from ..errors import ConfigError
from ..money import DEFAULT_LOCALE, currencies
from .fields import Count, Currency, Id, LocaleName, Money, MonthText, Percent, Quantity, Rate, _Model


def _instructions(value: Any) -> str | dict[str, str]:
    """One text, or one text per currency."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        for currency in value:
            if currency not in currencies():
                raise ValueError(f"names {currency!r}, which is not an ISO 4217 currency code such as USD, EUR, GBP")
        return dict(value)
    raise ValueError("must be one text for every invoice, or one text per currency ({USD: ..., GBP: ...})")


class Organisation(_Model):
    """Who issues the invoices. ``tax_id`` is one registration or a list, each printed as written
    (``EIN 12-3456789``, ``GST/HST 123456789 RT0001``, ``VAT GB123456789``).
    ``payment_instructions`` is one text for every invoice, or one per currency (``{USD: ..., GBP:
    ...}``), so that a GBP invoice never carries US bank details; then every currency a community
    is billed in needs its own."""

    name: str
    address: list[str] = []
    email: str | None = None
    website: str | None = None
    tax_id: str | list[str] | None = None
    payment_instructions: Annotated[str | dict[str, str], PlainValidator(_instructions)]

    @property
    def tax_ids(self) -> list[str]:
        return [self.tax_id] if isinstance(self.tax_id, str) else list(self.tax_id or [])

    def instructions(self, currency: str) -> str:
        """How to pay an invoice in ``currency``; a ``ConfigError`` when the config has none for it
        (an invoice finalized in a currency its community is no longer billed in)."""
        if isinstance(self.payment_instructions, str):
            return self.payment_instructions
        if currency not in self.payment_instructions:
            raise ConfigError(f"organisation.payment_instructions has none for {currency}, the currency of an invoice "
                              f"being printed; add them (they are printed on its documents)")
        return self.payment_instructions[currency]


# What invoices print for ids that have no display name in the config (``invoices.display_names``).
DISPLAY_NAMES = {
    "PROMOTION": "Promotional credit", "SUSTAINED_USAGE_DISCOUNT": "Sustained use discount",
    "COMMITTED_USAGE_DISCOUNT": "Committed use discount",
    "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Committed use discount (spend-based)",
    "FREE_TIER": "Free tier", "DISCOUNT": "Discount", "SUBSCRIPTION_BENEFIT": "Subscription benefit",
    "RESELLER_MARGIN": "Reseller margin", "FEE_UTILIZATION_OFFSET": "Fee utilization offset",
    "Credit": "Credit", "Refund": "Refund", "BundledDiscount": "Bundled discount",
    "SavingsPlanNegation": "Savings Plan", "DiscountedUsage": "Reserved Instance discount",
}


class InvoiceSettings(_Model):
    """What page invoices are printed on, how final invoices are numbered (``number_pattern``
    with ``{prefix}``, ``{year}`` (of the issue date), ``{month}`` and ``{seq}``, the
    organisation's one sequence, with a format such as ``{seq:05}``), and ``display_names``: what
    invoices print for an id (a metric, a credit type, a pool's metric) instead of the id."""

    page_size: Literal["A4", "Letter"] = "A4"
    display_names: dict[str, str] = {}
    number_prefix: str = Field("INV", pattern=r"^[A-Za-z0-9-]+$")
    number_pattern: str = "{prefix}-{year}-{seq:05}"

    @field_validator("number_pattern")
    @classmethod
    def _pattern_makes_numbers(cls, value: str) -> str:
        if "{seq" not in value:
            raise ValueError("must hold {seq}, the sequence number, or numbers would repeat")
        try:
            example = value.format(prefix="INV", year=2022, month="09", seq=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"is not a pattern of {{prefix}}, {{year}}, {{month}} and {{seq}} ({error})") from None
        if not re.fullmatch(r"[A-Za-z0-9/_.-]{1,64}", example):
            raise ValueError(f"makes numbers such as {example!r}; use letters, digits and - / _ . (at most 64)")
        return value

    def display_name(self, key: str) -> str:
        """What an invoice prints for ``key``: its display name from the config; else a known
        credit type's name (``PROMOTION`` -> "Promotional credit"); else the id with its hyphens
        and underscores as spaces (``monthly-active-users`` -> "monthly active users")."""
        if key in self.display_names:
            return self.display_names[key]
        if key in DISPLAY_NAMES:
            return DISPLAY_NAMES[key]
        words = re.sub(r"[-_]+", " ", key).strip()
        return words.capitalize() if key.isupper() else words


class Contact(_Model):
    name: str
    email: str | None = None


class FlatFee(_Model):
    """A fixed amount every month (prorated by days when the contract covers part of the month)."""

    id: Id | None = None
    description: str
    amount: Money


class PercentFee(_Model):
    """A percentage of other fees of the same contract, named by their ``id``."""

    id: Id | None = None
    description: str
    percent: Percent
    of: list[Id] = Field(min_length=1)


class Tier(_Model):
    """Units up to ``up_to`` (inclusive; ``null`` for no upper bound) cost ``unit_price`` each."""

    up_to: Quantity | None = None
    unit_price: Money


class TieredFee(_Model):
    """A graduated fee on a monthly metric: each tier prices the units that fall in it."""

    id: Id | None = None
    description: str
    metric: str
    tiers: list[Tier] = Field(min_length=1)
    cap: Money | None = None

    @model_validator(mode="after")
    def _ascending(self) -> TieredFee:
        bounds = [t.up_to for t in self.tiers]
        if any(b is None for b in bounds[:-1]):
            raise ValueError("only the last tier may have no up_to")
        known = [b for b in bounds if b is not None]
        if known != sorted(set(known)):
            raise ValueError("tiers must have increasing up_to bounds")
        if bounds[-1] is not None:
            raise ValueError("the last tier must have no up_to, so that every unit has a price "
                             "(write {unit_price: 0} for free above the last bound)")
        return self


def _fee_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "tiered" if "tiers" in value else "percent" if "percent" in value else "flat"
    return "tiered" if hasattr(value, "tiers") else "percent" if hasattr(value, "percent") else "flat"


Fee = Annotated[Union[Annotated[FlatFee, Tag("flat")], Annotated[PercentFee, Tag("percent")],
                      Annotated[TieredFee, Tag("tiered")]], Discriminator(_fee_kind)]


class CloudTerms(_Model):
    """How cloud costs are passed through."""

    markup_percent: Percent = Decimal(0)
    withhold_credits: list[str] = []
    limit: Money | None = None
    cap_at_limit: bool = False


class Discount(_Model):
    """A reduction of the subtotal: ``percent`` of it or a fixed ``amount``; in one ``month``, or
    every month from ``start`` to ``end`` (inclusive; either may be left open)."""

    description: str
    percent: Percent | None = None
    amount: Money | None = None
    month: MonthText | None = None
    start: MonthText | None = None
    end: MonthText | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Discount:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of percent or amount")
        if self.month and (self.start or self.end):
            raise ValueError("give month (one month) or start/end (recurring), not both")
        return self

    def applies(self, month: str) -> bool:
        if self.month:
            return month == self.month
        return (self.start or month) <= month <= (self.end or month)


class Tax(_Model):
    """Tax the organisation charges: ``rate_percent`` of the lines of the ``base`` sections (cloud
    costs, fees, or both, the default), after their share of any discount. The provider's own tax
    lines (passed through at cost) are never taxed again, whatever the base."""

    description: str = "Tax"
    rate_percent: Percent
    base: list[Literal["cloud", "fees"]] = Field(["cloud", "fees"], min_length=1)

    @field_validator("base")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a section twice")
        return value


class Prepaid(_Model):
    """Funds paid up front (e.g. a grant): from ``start`` on, each finalized invoice draws the
    balance down by its total (never below zero)."""

    amount: Money
    start: MonthText


class Contract(_Model):
    """The terms a community is billed under, in force from ``start`` to ``end`` (inclusive days;
    either may be left open). ``currency`` defaults to the community's."""

    start: dt.date | None = None
    end: dt.date | None = None
    currency: Currency | None = None
    cloud: CloudTerms = CloudTerms()
    fees: list[Fee] = []
    minimum: Money | None = None
    discounts: list[Discount] = []
    tax: Tax | None = None
    prepaid: Prepaid | None = None
    payment_terms_days: Count = Field(30, ge=0, le=365)
    purchase_order: str | None = None

    @model_validator(mode="after")
    def _fee_references(self) -> Contract:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"ends ({self.end}) before it starts ({self.start})")
        ids = [f.id for f in self.fees if f.id]
        if len(ids) != len(set(ids)):
            raise ValueError("fee ids must be unique within a contract")
        base = {f.id for f in self.fees if f.id and not isinstance(f, PercentFee)}
        for fee in self.fees:
            if isinstance(fee, PercentFee):
                missing = [i for i in fee.of if i not in base]
                if missing:
                    raise ValueError(f"fee {fee.description!r} is a percentage of {', '.join(missing)}, which is "
                                     "not the id of a flat or tiered fee of this contract")
        return self

    def days_in(self, first: dt.date, last: dt.date) -> int:
        """How many days from ``first`` to ``last`` (inclusive) this contract is in force."""
        start = max(first, self.start or first)
        end = min(last, self.end or last)
        return max((end - start).days + 1, 0)


class Community(_Model):
    """A community billed by the organisation. ``locale`` decides how its invoices write numbers
    and dates (``en_US``: 1,234.56 and September 30, 2022; ``de_DE``: 1.234,56 and 30. September
    2022); ``tax_id`` is its tax registration, ``purchase_order`` its purchase order or reference
    (a contract's own ``purchase_order`` wins), both printed on its invoices when set."""

    id: Id
    name: str
    contact: Contact | None = None
    address: list[str] = []
    currency: Currency = "USD"
    locale: LocaleName = DEFAULT_LOCALE
    tax_id: str | None = None
    purchase_order: str | None = None
    contract: Contract | None = None
    contracts: list[Contract] | None = None

    @model_validator(mode="after")
    def _one_way_to_give_terms(self) -> Community:
        if self.contract is not None and self.contracts is not None:
            raise ValueError("give contract (always in force) or contracts (each with start/end), not both")
        return self

    @property
    def all_contracts(self) -> list[Contract]:
        if self.contracts is not None:
            return self.contracts
        return [self.contract or Contract()]


class ExchangeRate(_Model):
    """One unit of ``from`` is worth ``rate`` units of ``to`` in ``month``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    month: MonthText
    from_currency: Currency = Field(alias="from")
    to_currency: Currency = Field(alias="to")
    rate: Rate



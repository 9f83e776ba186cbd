"""Who bills whom and on what terms: the organisation, the communities and their contracts
(fees, tiers, cloud terms, minimums, discounts, tax), and exchange rates."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from .fields import Count, Currency, Id, Money, MonthText, Percent, Quantity, Rate, _Model


class Organisation(_Model):
    """Who issues the invoices."""

    name: str
    address: list[str] = []
    email: str | None = None
    website: str | None = None
    tax_id: str | None = None
    payment_instructions: str


class InvoiceSettings(_Model):
    """What page invoices are printed on, and how final invoices are numbered:
    ``number_pattern`` with ``{prefix}``, ``{year}`` (of the issue date), ``{month}`` and
    ``{seq}`` (the organisation's one sequence, with a format such as ``{seq:05}``)."""

    page_size: Literal["A4", "Letter"] = "A4"
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
    description: str = "Tax"
    rate_percent: Percent


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
    id: Id
    name: str
    contact: Contact | None = None
    address: list[str] = []
    currency: Currency = "USD"
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



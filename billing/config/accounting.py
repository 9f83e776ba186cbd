"""How invoice lines are coded in the accounting systems' imports (``xero-invoices.csv``,
``quickbooks-invoices.csv``): an account code (Xero) or an item (QuickBooks Online) per section of
the invoice, and the tax type (Xero) or tax code (QuickBooks) of a line the contract taxes and of
one it does not. Each value is the name the accounting system knows, exactly as it shows it.

The sections are those of ``invoice-lines.csv``: ``cloud`` (costs passed through, shared costs,
markup, a cap, adjustments), ``fees``, ``discounts`` and ``prepaid`` (what prepaid funds pay).
Tax lines are not imported: the accounting system computes tax per line, so each line carries
its own part of the invoice's tax instead.

A community that differs (a Canadian one charged GST, a British one VAT) overrides what differs
under ``communities``; everything it does not name comes from the defaults.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal

from pydantic import Field

from .fields import _Model

SECTIONS = ("cloud", "fees", "discounts", "prepaid")

# The date formats the importers read; strftime patterns.
DATE_FORMATS = {"dd/mm/yyyy": "%d/%m/%Y", "mm/dd/yyyy": "%m/%d/%Y", "yyyy-mm-dd": "%Y-%m-%d"}
DateFormat = Literal["dd/mm/yyyy", "mm/dd/yyyy", "yyyy-mm-dd"]

# Xero account codes are at most 10 characters; tax rate and item names are free text.
AccountCode = Annotated[str, Field(min_length=1, max_length=10, pattern=r"^\S(.*\S)?$")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]


class AccountCodes(_Model):
    """The Xero account each section's lines are coded to. ``prepaid`` (the account that holds
    prepaid funds, usually a liability) is needed only when a contract has prepaid funds."""

    cloud: AccountCode
    fees: AccountCode
    discounts: AccountCode
    prepaid: AccountCode | None = None


class AccountCodesOverride(_Model):
    cloud: AccountCode | None = None
    fees: AccountCode | None = None
    discounts: AccountCode | None = None
    prepaid: AccountCode | None = None


class Items(_Model):
    """The QuickBooks Online product/service each section's lines are entered as."""

    cloud: Name
    fees: Name
    discounts: Name
    prepaid: Name


class ItemsOverride(_Model):
    cloud: Name | None = None
    fees: Name | None = None
    discounts: Name | None = None
    prepaid: Name | None = None


class TaxNames(_Model):
    """The tax rate (Xero) or tax code (QuickBooks) of a line that carries tax (``taxed``) and of
    one that carries none (``not_taxed``: outside the contract's tax base, a contract without tax,
    the provider's own tax passed through, prepaid funds)."""

    taxed: Name
    not_taxed: Name


class TaxNamesOverride(_Model):
    taxed: Name | None = None
    not_taxed: Name | None = None


class Xero(_Model):
    """``xero-invoices.csv``. The defaults are Xero's standard chart of accounts (200, Sales) and a
    US organisation's tax rates. ``date_format``: the one the Xero organisation's region uses
    (``mm/dd/yyyy`` for a US organisation). ``branding_theme``: the theme to print with."""

    account_codes: AccountCodes = AccountCodes(cloud="200", fees="200", discounts="200")
    tax_types: TaxNames = TaxNames(taxed="Tax on Sales", not_taxed="Tax Exempt")
    date_format: DateFormat = "dd/mm/yyyy"
    branding_theme: Name | None = None


class QuickBooks(_Model):
    """``quickbooks-invoices.csv`` (and ``quickbooks-credit-notes.csv``). The default tax codes
    are a US company's (TAX, NON). ``date_format``: the one to choose when QuickBooks asks."""

    items: Items = Items(cloud="Cloud costs", fees="Service fees", discounts="Discounts", prepaid="Prepaid funds")
    tax_codes: TaxNames = TaxNames(taxed="TAX", not_taxed="NON")
    date_format: DateFormat = "dd/mm/yyyy"


class XeroOverride(_Model):
    account_codes: AccountCodesOverride = AccountCodesOverride()
    tax_types: TaxNamesOverride = TaxNamesOverride()


class QuickBooksOverride(_Model):
    items: ItemsOverride = ItemsOverride()
    tax_codes: TaxNamesOverride = TaxNamesOverride()


class CommunityAccounting(_Model):
    """What differs for one community; the rest comes from the defaults."""

    xero: XeroOverride = XeroOverride()
    quickbooks: QuickBooksOverride = QuickBooksOverride()


class Accounting(_Model):
    """The ``accounting:`` section: defaults, and per-community overrides keyed by community id."""

    xero: Xero = Xero()
    quickbooks: QuickBooks = QuickBooks()
    communities: dict[str, CommunityAccounting] = {}

    def xero_for(self, community_id: str) -> Xero:
        """The Xero settings of ``community_id``: the defaults with its overrides on top."""
        override = self.communities.get(community_id, CommunityAccounting()).xero
        return self.xero.model_copy(update={
            "account_codes": _merged(self.xero.account_codes, override.account_codes),
            "tax_types": _merged(self.xero.tax_types, override.tax_types)})

    def quickbooks_for(self, community_id: str) -> QuickBooks:
        """The QuickBooks settings of ``community_id``: the defaults with its overrides on top."""
        override = self.communities.get(community_id, CommunityAccounting()).quickbooks
        return self.quickbooks.model_copy(update={
            "items": _merged(self.quickbooks.items, override.items),
            "tax_codes": _merged(self.quickbooks.tax_codes, override.tax_codes)})

    def problems(self, community_ids: list[str], prepaid_ids: list[str]) -> list[str]:
        """What is wrong given the config's communities (``community_ids``) and those with prepaid
        funds in some contract (``prepaid_ids``): an override for a community that does not exist,
        and, when the config sets up Xero (``xero:``), a community with prepaid funds but no Xero
        account to code them to. (Without it, such a line's account is left empty: Xero asks for it.)"""
        found = []
        for name in self.communities:
            if name not in community_ids:
                close = [c for c in community_ids if _similar(name, c)]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                found.append(f"communities: {name!r} is not a community of the config{hint}")
        for community_id in prepaid_ids if "xero" in self.model_fields_set else ():  # only when Xero is set up
            if self.xero_for(community_id).account_codes.prepaid is None:
                found.append(f"xero.account_codes: community {community_id!r} has prepaid funds; give the account "
                             "that holds them as prepaid")
        return found


def _merged(defaults: _Model, override: _Model) -> _Model:
    return defaults.model_copy(update={k: v for k, v in override.model_dump().items() if v is not None})


def _similar(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.6

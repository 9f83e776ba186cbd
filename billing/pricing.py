"""Pricing: the contract in force turns a community's costs into invoice lines.

In order, for one community and month:

1. **Contracts.** Every contract in force for part of the month contributes its flat fees and
   its minimum, prorated by its days (``15 of 30 days``). The contract in force on the last day
   it covers *governs* the rest: cloud terms, usage (tiered) fees, discounts, tax, payment terms.
   All contracts of a community are in one currency (the config refuses others).
2. **Currency.** Cloud costs are in the billing account's currency; when the contract's currency
   differs, every cloud amount is converted at the month's rate from the config, and the invoice
   says which rate it used.
3. **Cloud costs, passed through at cost**: one line per provider and service (the provider's
   tax on its own line), then one line per share of a shared pool (a share of the pool's tax on
   its own line, after the pool's other costs). Credits of the types the contract withholds do
   not reduce the bill. Then, as their own lines: the markup (a percentage of the cloud lines
   but for the provider's own tax lines),
   and, when the cloud costs exceed the contract's monthly limit and it caps them, the part above
   the limit as a reduction. Exceeding the limit is flagged either way. Adjustments to earlier
   finalized invoices (late data, ``billing.adjustments``) are cloud lines after those passed
   through, before the markup.
4. **Fees**: flat fees (prorated), graduated tiered fees on a metric (each tier prices the units
   that fall in it; optionally capped), percentages of other fees (of their prorated amounts),
   and a true-up line when cloud costs and fees together are below the monthly minimum (each
   contract's minimum prorated by its days, like a flat fee; their sum is the month's minimum).
5. **Discounts**: a percentage of, or an amount off, the subtotal of cloud costs and fees, never
   more than it. The provider's own tax lines (a provider's "Tax" line, a share of a pool's tax, an
   adjustment to either) are passed through as they are: they are left out of that subtotal.
6. **Tax**: the contract's rate on its base (``tax.base``: the cloud lines, the fees, or both,
   the default), each discount counted in the base by the part of its subtotal the base makes up.
   The provider's own tax lines are never in the base: tax is not charged on tax.
   Each line keeps its part of the base and of the tax (``split_tax``), for accounting imports.
7. **Prepaid funds**: when the contract has them, what the balance covers of the total is paid
   from it (a line after the total; the amount due is what is left).

Rounding: every amount is kept at full precision until it becomes a line, and every total is a
sum of rounded lines. The cloud lines passed through at cost (step 3 before the markup, after
any conversion) are rounded together, so that a community's invoiced cloud costs are its exact
cloud cost rounded once: their amounts are rounded half-up to the currency's minor unit, then
single minor units move to the lines rounding moved furthest until they add up to the exact total
rounded half-up (``money.round_to_total``, largest remainder; no line moves more than one minor
unit). Their costs add up to the exact cost total rounded once in the same way, and the credits
shown are ``amount - cost``, so each line adds up; a line without credits (a share, a tax line)
keeps its cost equal to its amount, so that rounding never shows a credit the provider did not
give, and the other lines' costs share out the rest. Every other line's amount is rounded
half-up on its own.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple, Sequence

from .adjustments import Adjustment
from .adjustments import describe as describe_adjustment
from .allocation import Share
from .config import Community, Config, Contract, FlatFee, PercentFee, TieredFee
from .errors import ConfigError, DataError
from .metrics import Metrics
from . import display
from .money import ZERO, format_amount, quantize, round_to_total
from .records import TAX, Attributed, Invoice, InvoiceLine, Month, provider_name

TAX_SERVICE = "Tax"
HUNDRED = Decimal(100)


class InForce(NamedTuple):
    contract: Contract
    days: int


def contracts_in_force(community: Community, month: Month) -> list[InForce]:
    """The contracts in force for some days of ``month``, in date order."""
    found = [InForce(c, c.days_in(month.first_day, month.last_day)) for c in community.all_contracts]
    return sorted((f for f in found if f.days), key=lambda f: f.contract.start or dt.date.min)


def purchase_order(community: Community, month: Month) -> str | None:
    """The purchase order its invoice for ``month`` quotes: the governing contract's, else the community's."""
    in_force = contracts_in_force(community, month)
    return (in_force[-1].contract.purchase_order if in_force else None) or community.purchase_order


def withheld_credit_types(community: Community, month: Month) -> frozenset[str]:
    """The credit types the contract governing ``month`` keeps with the organisation."""
    in_force = contracts_in_force(community, month)
    return frozenset(in_force[-1].contract.cloud.withhold_credits) if in_force else frozenset()


class _PassedThrough(NamedTuple):
    """A cloud line passed through at cost, before rounding (in the invoice's currency)."""

    description: str
    provider: str
    service: str
    cost: Decimal
    amount: Decimal


class _Pricer:
    """Builds one invoice; each method adds the lines of one step of the module docstring."""

    def __init__(self, config: Config, community: Community, month: Month, in_force: list[InForce],
                 metrics: Metrics, all_shares: Sequence[Share], adjustments: Sequence[Adjustment] = ()):
        self.config, self.community, self.month, self.metrics = config, community, month, metrics
        self.in_force, self.all_shares, self.adjustments = in_force, all_shares, adjustments
        self.governing = in_force[-1].contract
        self.currency = self.governing.currency or community.currency
        self.month_days = month.last_day.day
        self.lines: list[InvoiceLine] = []
        self.notes: list[str] = []
        self.flags: list[str] = []
        self.rates: dict[str, Decimal] = {}

    def q(self, amount: Decimal) -> Decimal:
        return quantize(amount, self.currency)

    def money(self, amount: Decimal) -> str:
        return format_amount(amount, self.currency, self.community.locale)

    def number(self, value: Decimal) -> str:
        return display.number(value, self.community.locale)

    def name(self, key: str) -> str:
        return self.config.invoices.display_name(key)

    def date(self, day: dt.date) -> str:
        return display.long_date(day, self.community.locale)

    def add(self, section: str, description: str, amount: Decimal, provider: str = "", service: str = "",
            cost: Decimal | None = None) -> Decimal:
        amount = self.q(amount)
        cost = amount if cost is None else self.q(cost)
        self.lines.append(InvoiceLine(section, description, provider, service, cost, amount - cost, amount))
        return amount

    def total(self, *sections: str) -> Decimal:
        return sum((line.amount for line in self.lines if line.section in sections), ZERO)

    # --- currency ------------------------------------------------------------------------------

    def rate(self, source_currency: str) -> Decimal:
        if source_currency == self.currency:
            return Decimal(1)
        if source_currency not in self.rates:
            rate = self.config.exchange_rate(str(self.month), source_currency, self.currency)
            if rate is None:
                raise ConfigError(f"community {self.community.id!r} is billed in {self.currency} but has {self.month} "
                                f"costs in {source_currency}; add the {self.month} rate from {source_currency} to "
                                f"{self.currency} to exchange_rates")
            self.rates[source_currency] = rate
            self.notes.append(f"Cloud costs in {source_currency} are converted at 1 {source_currency} = {self.number(rate)} "
                              f"{self.currency}, the rate for {self.month.label}.")
        return self.rates[source_currency]

    # --- cloud ---------------------------------------------------------------------------------

    def cloud(self, direct: Sequence[Attributed], shares: Sequence[Share]) -> None:
        terms = self.governing.cloud
        withheld = withheld_credit_types(self.community, self.month)
        sums: dict[tuple[str, str, str], list[Decimal]] = {}
        for item in direct:
            row = item.row
            service = TAX_SERVICE if row.charge_type == TAX else row.service
            entry = sums.setdefault((row.provider, service, row.currency), [ZERO, ZERO])
            entry[0] += row.cost
            entry[1] += sum((amount for kind, amount in row.credits if kind not in withheld), ZERO)
        lines = []
        for (provider, service, currency), (cost, credits) in sorted(sums.items(), key=_cloud_order):
            rate = self.rate(currency)
            lines.append(_PassedThrough(f"{provider_name(provider)}: {service}", provider, service,
                                        cost * rate, (cost + credits) * rate))
        if withheld and any(kind in withheld for item in direct for kind, _ in item.row.credits):
            self.notes.append(f"Credits of these types stay with {self.config.organisation.name} and do not "
                              f"reduce this invoice: {', '.join(sorted(self.name(kind) for kind in withheld))}.")

        for share in shares:
            pool = self.config.pool(share.pool)
            weights = sum(s.weight for s in self.all_shares
                          if (s.pool, s.currency, s.part) == (share.pool, share.currency, share.part))
            basis = {"proportional": "in proportion to direct cost", "even": "equal parts",
                     "fixed": "agreed share", "metric": f"by {self.name(pool.metric or '')}"}[pool.split]
            label, service = ("Shared tax", TAX_SERVICE) if share.part == TAX else ("Shared", "")
            amount = share.amount * self.rate(share.currency)
            lines.append(_PassedThrough(
                f"{label}: {pool.description} ({share.percent(weights).quantize(Decimal('0.1'))}% of "
                f"{format_amount(share.pool_total, share.currency, self.community.locale)} {share.currency}, {basis})",
                "", service, amount, amount))
        self.pass_through(lines)
        for adjustment in self.adjustments:
            if adjustment.currency != self.currency:
                raise DataError(f"community {self.community.id!r}: an adjustment to {adjustment.invoice_number} is in "
                                f"{adjustment.currency}, its invoices now in {self.currency}; carry it by hand")
            self.add("cloud", describe_adjustment(adjustment), adjustment.amount,
                     service=TAX_SERVICE if _adjusts_tax(adjustment.description) else "")

        passed = _untaxed(self.lines, ("cloud",))  # the provider's own tax is not marked up
        if terms.markup_percent:
            self.add("cloud", f"Cloud management markup ({self.number(terms.markup_percent)}% of {self.money(passed)}"
                     f"{_base_without_tax(self.lines, ('cloud',), 'cloud costs')})",
                     passed * terms.markup_percent / HUNDRED)
        charged = self.total("cloud")
        if terms.limit is not None and charged > terms.limit:
            self.flags.append(f"cloud costs {self.money(charged)} exceed the monthly limit of {self.money(terms.limit)}")
            if terms.cap_at_limit:
                self.add("cloud", f"Cloud costs above the monthly limit of {self.money(terms.limit)} (not charged)",
                         terms.limit - charged)

    def pass_through(self, lines: Sequence[_PassedThrough]) -> None:
        """Add the lines passed through at cost, rounded together (see the module docstring)."""
        amounts = round_to_total([line.amount for line in lines], self.currency,
                                 self.q(sum((line.amount for line in lines), ZERO)))
        costs = [amount if line.cost == line.amount else None for line, amount in zip(lines, amounts)]
        credited = [i for i, cost in enumerate(costs) if cost is None]
        rest = self.q(sum((line.cost for line in lines), ZERO)) - sum((c for c in costs if c is not None), ZERO)
        for i, cost in zip(credited, round_to_total([lines[i].cost for i in credited], self.currency, rest)):
            costs[i] = cost
        for line, cost, amount in zip(lines, costs, amounts):
            self.lines.append(InvoiceLine("cloud", line.description, line.provider, line.service, cost,
                                          amount - cost, amount))

    # --- fees ----------------------------------------------------------------------------------

    def fees(self) -> None:
        for in_force in self.in_force:
            contract, days = in_force
            partial = days < self.month_days
            amounts: dict[str, Decimal] = {}
            for fee in contract.fees:
                if isinstance(fee, FlatFee):
                    suffix = f" (prorated: {days} of {self.month_days} days)" if partial else ""
                    amounts[fee.id or ""] = self.add("fees", fee.description + suffix,
                                                     fee.amount * days / self.month_days)
                elif isinstance(fee, TieredFee) and contract is self.governing:
                    amounts[fee.id or ""] = self.tiered(fee)
            for fee in contract.fees:
                if isinstance(fee, PercentFee):
                    base = sum((amounts.get(i, ZERO) for i in fee.of), ZERO)
                    self.add("fees", f"{fee.description} ({self.number(fee.percent)}% of {self.money(base)})",
                             base * fee.percent / HUNDRED)
            if partial:
                ends = min(contract.end or self.month.last_day, self.month.last_day)
                starts = max(contract.start or self.month.first_day, self.month.first_day)
                self.notes.append(f"A contract is in force from {self.date(starts)} to {self.date(ends)} ({days} of "
                                  f"{self.month_days} days): its monthly fees are prorated.")

    def tiered(self, fee: TieredFee) -> Decimal:
        quantity = self.metrics.value(self.community.id, fee.metric)
        if quantity is None:
            raise DataError(f"community {self.community.id!r} has a fee on {fee.metric!r}, but {self.metrics.path} "
                            f"has no {fee.metric} for it")
        amount, parts, below = ZERO, [], ZERO
        for tier in fee.tiers:
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = max(top - below, ZERO)
            if units:
                amount += units * tier.unit_price
                parts.append(f"{self.number(units)} × {self.money(tier.unit_price)}")
            if tier.up_to is not None:
                below = max(below, tier.up_to)
        detail = " + ".join(parts) or "none"
        if fee.cap is not None and amount > fee.cap:
            detail += f", capped at {self.money(fee.cap)}"
            amount = fee.cap
        return self.add("fees", f"{fee.description}: {self.number(quantity)} {self.name(fee.metric)} ({detail})", amount)

    def minimum(self) -> None:
        with_minimum = [(c, days) for c, days in self.in_force if c.minimum is not None]
        if not with_minimum:
            return
        minimum = self.q(sum((c.minimum * days / self.month_days for c, days in with_minimum), ZERO))
        charged = self.total("cloud", "fees")
        if charged < minimum:
            days = sum(days for _, days in with_minimum)
            prorated = f", prorated: {days} of {self.month_days} days" if days < self.month_days else ""
            self.add("fees", f"Monthly minimum true-up (minimum {self.money(minimum)}{prorated})", minimum - charged)

    # --- discounts and tax ---------------------------------------------------------------------

    def discounts(self) -> None:
        for discount in self.governing.discounts:
            if not discount.applies(str(self.month)):
                continue
            subtotal = _untaxed(self.lines, ("cloud", "fees", "discounts"))
            if discount.percent is not None:
                base = _untaxed(self.lines, ("cloud", "fees"))
                wanted = max(self.q(base * discount.percent / HUNDRED), ZERO)
                description = (f"{discount.description} ({self.number(discount.percent)}% of {self.money(base)}"
                               f"{_base_without_tax(self.lines, ('cloud', 'fees'), 'cloud costs and fees')})")
            else:
                wanted, description = self.q(discount.amount), discount.description
            given = min(wanted, max(subtotal, ZERO))
            if given < wanted:
                description += f" (limited to the subtotal of {self.money(subtotal)})"
            self.add("discounts", description, -given)

    def prepaid(self, used: Decimal) -> Decimal | None:
        """Pay what the prepaid balance covers of the total (never below zero); ``used`` is what
        finalized invoices drew from it before. Returns ``used`` (``None`` without prepaid funds)."""
        prepaid = self.governing.prepaid
        if prepaid is None or str(self.month) < prepaid.start:
            return None
        balance = prepaid.amount - used
        applied = self.q(max(min(balance, self.total("cloud", "fees", "discounts", "tax")), ZERO))
        self.add("prepaid", f"Paid from prepaid funds ({self.money(balance)} before, {self.money(balance - applied)} "
                 "left after this invoice)", -applied)
        return used

    def tax(self) -> None:
        """The tax line, and each line's part of the base and of the tax (``split_tax``)."""
        tax = self.governing.tax
        if tax is None:
            return
        lines = [(line.section, line.service, line.amount) for line in self.lines]
        base = self.q(sum(_taxable(tax.base, lines), ZERO))
        after = ", after discounts" if any(line.section == "discounts" and line.amount for line in self.lines) else ""
        without = _base_without_tax(self.lines, tuple(tax.base),
                                    " and ".join(_SECTION_WORDS[section] for section in tax.base), after)
        charged = self.add("tax", f"{tax.description} ({self.number(tax.rate_percent)}% of {self.money(base)}"
                                  f"{without})", base * tax.rate_percent / HUNDRED)
        for n, (taxable, part) in enumerate(split_tax(tax.base, lines, charged, self.currency)):
            self.lines[n] = self.lines[n]._replace(taxable=taxable, tax=part)


def _provider_tax(section: str, service: str) -> bool:
    """A line of the provider's own tax passed through at cost (its "Tax" line, a share of a pool's
    tax, an adjustment to either): never discounted nor taxed again."""
    return section == "cloud" and service == TAX_SERVICE


def _adjusts_tax(description: str) -> bool:
    return description.endswith(f": {TAX_SERVICE}") or description.startswith("Shared tax")


# What a tax base's sections are called where a line's description names them.
_SECTION_WORDS = {"cloud": "cloud costs", "fees": "fees"}


def _base_without_tax(lines: Sequence[InvoiceLine], sections: tuple[str, ...], named: str, after: str = "") -> str:
    """What a percentage line adds after its base (``, cloud costs without the provider's tax``)
    when the base leaves out provider tax lines the invoice shows in ``sections``, so that a
    reader can find the base on the invoice; nothing when it leaves none out."""
    if any(line.section in sections and _provider_tax(line.section, line.service) and line.amount
           for line in lines):
        return f", {named} without the provider's tax{after}"
    return ""


def _untaxed(lines: Sequence[InvoiceLine], sections: tuple[str, ...]) -> Decimal:
    """The sum of the lines of ``sections``, but for the provider's own tax lines."""
    return sum((line.amount for line in lines
                if line.section in sections and not _provider_tax(line.section, line.service)), ZERO)


def _taxable(base: Sequence[str], lines: Sequence[tuple[str, str, Decimal]]) -> list[Decimal]:
    """Per line (section, service, amount): the part of its amount in a tax ``base`` (full precision).

    Lines of the base's sections count whole, the provider's own tax lines not at all, and each
    discount by the share of the discounted subtotal (cloud costs and fees, without the provider's
    tax) that the base's sections make up."""
    subtotal = sum((a for s, v, a in lines if s in ("cloud", "fees") and not _provider_tax(s, v)), ZERO)
    in_base = sum((a for s, v, a in lines if s in base and not _provider_tax(s, v)), ZERO)
    share = in_base / subtotal if subtotal else ZERO
    return [amount if section in base and not _provider_tax(section, service)
            else amount * share if section == "discounts" else ZERO
            for section, service, amount in lines]


def split_tax(base: Sequence[str], lines: Sequence[tuple[str, str, Decimal]], tax_total: Decimal,
              currency: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """Per line (section, service, amount): its part of the tax ``base`` and its part of the
    tax ``tax_total``, in proportion to it. Each column is rounded so that it adds up to its total
    rounded once (largest remainder): the taxable parts to the base the tax line shows, the
    taxes to ``tax_total``. Accounting systems compute tax per line; this is what each carries."""
    parts = _taxable(base, lines)
    total = sum(parts, ZERO)
    taxable = round_to_total(parts, currency, quantize(total, currency))
    if not total:
        return tuple((amount, ZERO) for amount in taxable)
    return tuple(zip(taxable, round_to_total([tax_total * part / total for part in parts], currency, tax_total)))


def line_taxes(config: Config, community_id: str, month: Month, lines: Sequence[tuple[str, str, Decimal]],
               tax_total: Decimal) -> tuple[tuple[Decimal, Decimal], ...]:
    """``split_tax`` under the tax base of the contract governing ``month`` in the config, for
    the lines of an invoice priced before each line's part was kept (a ledger from before
    revision 0003); what later invoices keep from their pricing is used instead."""
    community = config.community(community_id)
    in_force = contracts_in_force(community, month)
    currency = (in_force[-1].contract.currency if in_force else None) or community.currency
    governing = in_force[-1].contract if in_force else None
    base = governing.tax.base if governing and governing.tax else ("cloud", "fees")
    if tax_total and not sum(_taxable(base, lines), ZERO):  # priced under other terms: what could be taxed
        base = ("cloud", "fees")
    if tax_total and not sum(_taxable(base, lines), ZERO):
        raise DataError(f"community {community_id!r}, {month}: a tax of {tax_total} {currency} but no line it could "
                        "be charged on")
    return split_tax(base, lines, tax_total, currency)


def _cloud_order(item: tuple[tuple[str, str, str], list[Decimal]]) -> tuple:
    (provider, service, currency), _ = item
    return (provider, service == TAX_SERVICE, service.lower(), currency)


def invoice_number(config: Config, community: Community, month: Month) -> str:
    """A draft reference such as ``DRAFT-202209-paleohack``, stable across reruns; a final
    number is given when the invoice is finalized (``billing.ledger.finalize``)."""
    return f"DRAFT-{month.compact}-{community.id}"


def final_number(config: Config, seq: int, invoice: Invoice) -> str:
    """The number of a finalized invoice: the config's pattern with the sequence number."""
    return config.invoices.number_pattern.format(prefix=config.invoices.number_prefix, seq=seq,
                                                 year=invoice.issue_date.year,
                                                 month=f"{invoice.issue_date.month:02d}")


def price_invoice(config: Config, community: Community, month: Month, direct: Sequence[Attributed],
                  shares: Sequence[Share], all_shares: Sequence[Share], metrics: Metrics,
                  scope: Sequence[str] = (), adjustments: Sequence[Adjustment] = (),
                  prepaid_used: Decimal = ZERO) -> Invoice | None:
    """The invoice of ``community`` for ``month``; ``None`` if no contract is in force and it has no costs.

    ``direct`` are the rows attributed to it, ``shares`` its parts of shared pools (``all_shares``
    every community's, to show percentages). Issued on the first day of the following month
    (deterministic, so a rerun gives the same document), due after the payment terms.
    """
    in_force = contracts_in_force(community, month)
    if not in_force:
        if direct or any(s.amount for s in shares):
            raise DataError(f"community {community.id!r} has costs in {month} but no contract in force; "
                            "add or extend a contract")
        return None
    pricer = _Pricer(config, community, month, in_force, metrics, all_shares, adjustments)
    pricer.cloud(direct, shares)
    pricer.fees()
    pricer.minimum()
    pricer.discounts()
    pricer.tax()
    used = pricer.prepaid(prepaid_used)
    issue_date = month.next.first_day
    return Invoice(
        number=invoice_number(config, community, month),
        status="draft",
        community_id=community.id,
        community_name=community.name,
        month=month,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=pricer.governing.payment_terms_days),
        currency=pricer.currency,
        lines=tuple(pricer.lines),
        scope=tuple(scope),
        notes=tuple(pricer.notes),
        flags=tuple(pricer.flags),
        prepaid_used=used,
    )

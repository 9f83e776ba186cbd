"""The records that flow between stages: plain, immutable, no I/O and no logic beyond sums.

Field names follow FinOps FOCUS where one exists (BilledCost -> ``cost``, ServiceName ->
``service``, SubAccountId -> ``project_or_account``, ChargeCategory -> ``charge_type``,
BillingCurrency -> ``currency``).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import NamedTuple

from .errors import UsageError
from .money import ZERO

# A cost row's ``provider`` is one of these short names, or, for a provider a FOCUS file names that
# is not among them, that name as the file writes it.
PROVIDER_NAMES = {"gcp": "Google Cloud", "aws": "Amazon Web Services", "azure": "Microsoft Azure",
                  "oci": "Oracle Cloud Infrastructure"}


# What providers call themselves (FOCUS's ProviderName, in lower case with hyphens) -> the short name.
PROVIDER_ALIASES = {
    "amazon-web-services": "aws", "amazon-web-services-inc": "aws", "amazon": "aws",
    "microsoft": "azure", "microsoft-azure": "azure",
    "google-cloud": "gcp", "google-cloud-platform": "gcp", "google": "gcp",
    "oracle": "oci", "oracle-cloud-infrastructure": "oci", "oracle-cloud": "oci",
}


def provider_slug(name: str) -> str:
    """The short name of a provider as it names itself: ``"Microsoft"`` -> ``"azure"``,
    ``"AWS"`` -> ``"aws"``, ``"Snowflake Inc."`` -> ``"snowflake-inc"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return PROVIDER_ALIASES.get(slug, slug)


# What a provider calls a project or account of its billing account (FOCUS's SubAccountId).
SUB_ACCOUNT_NOUNS = {"gcp": "project", "aws": "account", "azure": "subscription"}


def sub_account_noun(provider: str) -> str:
    """``"gcp"`` -> ``"project"``; ``"sub account"`` for a provider without a word of its own."""
    return SUB_ACCOUNT_NOUNS.get(provider, "sub account")


def provider_name(provider: str) -> str:
    """What a finance reader calls ``provider``: ``"aws"`` -> ``"Amazon Web Services"``."""
    return PROVIDER_NAMES.get(provider, provider or "Unknown provider")

# Values of CostRow.charge_type.
USAGE, TAX, ADJUSTMENT, ROUNDING, CREDIT, REFUND, OTHER = (
    "usage", "tax", "adjustment", "rounding", "credit", "refund", "other")

# The start of the flag an invoice carries when its month's data is not final (it cannot be finalized).
PROVISIONAL = "provisional"

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class Month(NamedTuple):
    """A calendar month, the unit of billing.

    Attributes:
        year: four-digit year.
        month: 1 to 12.
    """

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``"2022-09"`` -> ``Month(2022, 9)``; anything else is a ``UsageError``."""
        match = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match:
            raise UsageError(f"month {text!r} is not of the form YYYY-MM (for example 2022-09)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def compact(self) -> str:
        """``"202209"``: the form of GCP's ``invoice.month``."""
        return f"{self.year:04d}{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @classmethod
    def of(cls, day: dt.date) -> Month:
        """The month ``day`` falls in."""
        return cls(day.year, day.month)

    @property
    def last_day(self) -> dt.date:
        return self.next.first_day - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        """``"September 2022"``."""
        return self.first_day.strftime("%B %Y")


class CostRow(NamedTuple):
    """Cost of one group of source rows, as every collector returns it.

    Attributes:
        provider: ``"gcp"``, ``"aws"``, ``"azure"``, ``"oci"`` (``PROVIDER_NAMES``), or another
            provider's name as a FOCUS file gives it, in lower case with hyphens.
        billing_account: GCP billing account id or AWS payer account id.
        invoice_month: ``"YYYY-MM"``, the month of the provider's invoice (not of usage).
        project_or_account: GCP project id or AWS linked account id; ``""`` when the provider
            gives none (GCP rounding rows).
        service: the provider's service name ("Compute Engine", "Amazon Elastic Compute Cloud").
        charge_type: usage, tax, adjustment, rounding, credit, refund or other.
        labels: sorted ``(key, value)`` pairs, only for the keys attribution looks at; an AWS
            untagged group has no pair for its tag key.
        currency: ISO 4217 code of the billing account.
        cost: the cost before credits, at full precision.
        credits: sorted ``(credit type, amount)`` pairs; amounts are negative.
        source: id of the configured source the row came from.
    """

    provider: str
    billing_account: str
    invoice_month: str
    project_or_account: str
    service: str
    charge_type: str
    labels: tuple[tuple[str, str], ...]
    currency: str
    cost: Decimal
    credits: tuple[tuple[str, Decimal], ...]
    source: str

    @property
    def credit_total(self) -> Decimal:
        return sum((amount for _, amount in self.credits), ZERO)

    @property
    def net(self) -> Decimal:
        """Cost plus credits: what the provider bills for this row."""
        return self.cost + self.credit_total

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None


class Bucket(NamedTuple):
    """Where a cost row ends up. Every row ends in exactly one bucket.

    Attributes:
        kind: ``"community"``, ``"shared"``, ``"absorbed"``, ``"rounding"`` (the provider's own
            rounding rows, such as GCP's rounding_error, when no rule matches them: carried by the
            organisation like absorbed cost, never invoiced, and not unattributed) or
            ``"unattributed"``.
        name: the community or pool id, or the reason a cost is absorbed; ``""`` for rounding
            and unattributed.
    """

    kind: str
    name: str = ""


UNATTRIBUTED = Bucket("unattributed")
PROVIDER_ROUNDING = Bucket("rounding")


class Attributed(NamedTuple):
    """A cost row and the bucket the attribution rules put it in.

    Attributes:
        row: the cost row.
        bucket: its bucket.
        rule: index of the ``attribution`` rule that matched, ``None`` when none did.
    """

    row: CostRow
    bucket: Bucket
    rule: int | None


class InvoiceLine(NamedTuple):
    """One line of an invoice, in the currency's minor unit, so that ``cost + credits == amount``.

    Attributes:
        section: ``"cloud"`` (passed through at cost, shared costs, markup, a cap), ``"fees"``,
            ``"discounts"``, ``"tax"``, or ``"prepaid"`` (paid from prepaid funds, after the total).
        description: what a finance reader sees.
        provider: for a provider's own lines, its ``CostRow.provider``; ``""`` otherwise (shared
            lines too).
        service: for a provider's own lines, its service (``"Tax"`` for its tax); ``"Tax"`` for a
            share of a pool's tax; ``""`` otherwise.
        cost: cost before credits; the fee for fee lines.
        credits: ``amount - cost`` (credits are negative); zero for fee lines.
        amount: what the line charges. The cloud lines passed through at cost (a provider's
            lines and shared lines) are rounded together, so that their amounts add up to their
            exact total rounded half-up once, and so are their costs (largest remainder: a line
            can be one minor unit off its own rounding); every other line is its full-precision
            amount rounded half-up.
        taxable: the part of ``amount`` in the contract's tax base (a discount's share of it;
            zero for the provider's own tax lines, tax and prepaid lines), and
        tax: its part of the invoice's tax; each rounded so that they add up to the tax line's
            base and amount (largest remainder). ``None`` for a line priced before they were
            kept (a ledger from before revision 0003).
    """

    section: str
    description: str
    provider: str
    service: str
    cost: Decimal
    credits: Decimal
    amount: Decimal
    taxable: Decimal | None = ZERO
    tax: Decimal | None = ZERO


class Invoice(NamedTuple):
    """A community's invoice for one month. Totals are sums of rounded lines.

    Attributes:
        number: the invoice number (a draft reference until invoices are finalised).
        status: ``"draft"``, ``"finalized"`` or ``"void"`` (a finalized invoice a credit note cancels).
        community_id, community_name: who is billed.
        month: the billing period.
        issue_date, due_date: dates printed on the invoice.
        currency: currency of every amount on it.
        lines: cloud lines first, then fees, discounts and tax.
        scope: what the cloud costs cover, one phrase per attribution rule that matched
            ("Google Cloud project hubs-shared-gke where k8s-namespace is paleohack").
        notes: sentences printed on the invoice (exchange rate used, prorated contract).
        flags: what finance should look at (a cloud-cost limit exceeded).
        kind: ``"invoice"``, or ``"credit_note"`` for the document that cancels a voided invoice.
        references: for a credit note, the number of the invoice it cancels.
        prepaid_used: with a prepaid balance, what finalized invoices had drawn from it when this
            one was priced (finalizing checks it still holds); ``None`` without prepaid funds.
    """

    number: str
    status: str
    community_id: str
    community_name: str
    month: Month
    issue_date: dt.date
    due_date: dt.date
    currency: str
    lines: tuple[InvoiceLine, ...]
    scope: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    kind: str = "invoice"
    references: str = ""
    prepaid_used: Decimal | None = None

    def _sum(self, section: str) -> Decimal:
        return sum((line.amount for line in self.lines if line.section == section), ZERO)

    @property
    def provisional(self) -> bool:
        """Computed from data that is not final (it carries the ``PROVISIONAL`` flag)."""
        return any(flag.startswith(PROVISIONAL) for flag in self.flags)

    @property
    def cloud_costs(self) -> Decimal:
        return self._sum("cloud")

    @property
    def fees(self) -> Decimal:
        return self._sum("fees")

    @property
    def discounts(self) -> Decimal:
        return self._sum("discounts")

    @property
    def subtotal_excluding_tax(self) -> Decimal:
        return self.cloud_costs + self.fees + self.discounts

    @property
    def tax(self) -> Decimal:
        return self._sum("tax")

    @property
    def total(self) -> Decimal:
        return self.subtotal_excluding_tax + self.tax

    @property
    def prepaid(self) -> Decimal:
        """What prepaid funds pay of the total (negative, or zero)."""
        return self._sum("prepaid")

    @property
    def amount_due(self) -> Decimal:
        return self.total + self.prepaid


class ReconciliationRow(NamedTuple):
    """Per provider, billing account and month: where the source total went, and what the
    invoices passed through of it.

    Attributes:
        provider, billing_account, invoice_month, currency: as in ``CostRow``.
        source_total: what the source says it bills, at full precision.
        attributed, shared, absorbed, unattributed, provider_rounding: the net cost of the rows
            in each kind of bucket (community, shared pool, absorbed, unattributed, the
            provider's rounding), at full precision.
        invoiced: what the invoices pass through from this account, in its currency and in
            whole minor units: each community's direct cost rounded once and each part of each
            shared pool rounded once, allocated back to accounts by largest remainder. For a
            community invoiced in another currency, its direct cost rounded once before
            conversion.
        credits_withheld: credits that contracts keep with the organisation (``withhold_credits``),
            as a positive amount: the invoices pass through that much more than was attributed.
    """

    provider: str
    billing_account: str
    invoice_month: str
    currency: str
    source_total: Decimal
    attributed: Decimal
    shared: Decimal
    absorbed: Decimal
    unattributed: Decimal
    provider_rounding: Decimal = ZERO
    invoiced: Decimal = ZERO
    credits_withheld: Decimal = ZERO

    @property
    def difference(self) -> Decimal:
        """What no bucket received; must round to zero."""
        return self.source_total - (self.attributed + self.shared + self.absorbed + self.unattributed
                                    + self.provider_rounding)

    @property
    def invoice_rounding(self) -> Decimal:
        """What rounding the invoices added: ``invoiced - (attributed + shared + credits_withheld)``."""
        return self.invoiced - (self.attributed + self.shared + self.credits_withheld)


class SourceTotal(NamedTuple):
    """What a source says it bills in total for one billing account and month.

    Computed by the source independently of the grouped rows (for GCP, Google's own
    invoice-total query), so that reconciliation compares two different sums.

    Attributes:
        provider, billing_account, invoice_month, currency: as in ``CostRow``.
        total: cost plus credits, at full precision.
    """

    provider: str
    billing_account: str
    invoice_month: str
    currency: str
    total: Decimal


class Figure(NamedTuple):
    """What a month's run found for one subject, in one currency.

    Attributes:
        subject: ``rule:<target>#<n>`` (the n-th rule sending cost to a target, such as
            ``community:callysto``: a rule's place among its target's rules survives rules being
            added elsewhere), ``community:<id>`` (its cloud cost: own rows and shares),
            ``source`` (the sources' total) or ``unattributed``.
        currency: of the billing account.
        amount: net cost, at full precision.
        rows: cost rows counted (for rules: rows with any cost or credit).
        detail: for a rule, where it is and what it matches, as a person reads it.
    """

    subject: str
    currency: str
    amount: Decimal
    rows: int
    detail: str = ""

"""The configuration file: typed models, and a loader that names every problem and its place.

A typo must never silently drop a cost, so unknown keys, duplicate keys and references to
communities that do not exist are all errors. YAML numbers with a fraction are read as
``Decimal`` (never float), so ``amount: 1000.10`` means exactly 1000.10.

Relative paths in the file (sources, output) are relative to the file itself.
"""

from __future__ import annotations

import datetime as dt
import difflib
import glob
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      ValidationError, field_validator, model_validator)

from .errors import ConfigError
from .money import MINOR_UNITS

DEFAULT_CONFIG = Path("config/billing.yaml")


# Bounds on every number the config (and the metrics file) may hold: far above any real bill, so
# that a slip (``1e30``, a pasted byte count) is a config error instead of an absurd invoice.
MAX_MONEY = Decimal(10) ** 13          # an amount of money in any currency (fees, limits, caps)
MAX_QUANTITY = Decimal(10) ** 18       # a count of units (tier bounds, metric values)
MAX_PERCENT = Decimal(100)             # markups, taxes, discounts, percentage fees, pool splits
MAX_EXCHANGE_RATE = Decimal(10) ** 6   # a rate and its inverse: from 0.000001 to 1,000,000
MAX_YAML_VALUES = 100_000              # values in the file once its aliases are expanded
MAX_YAML_DEPTH = 100                   # levels of nesting


_NOT_A_NUMBER = "must be a number, not true or false"


def _no_float(value: Any) -> Any:
    """Numbers stay exact, and a YAML yes/no never passes for 1 or 0."""
    if isinstance(value, float):
        raise ValueError("amounts must be written as exact numbers, not floats")
    if isinstance(value, bool):
        raise ValueError(_NOT_A_NUMBER)
    return value


def _exact_number(low: Decimal, high: Decimal, low_included: bool = True) -> Any:
    """The type of an exact, finite number within bounds, refused with one message that states
    them (for infinity and NaN too)."""
    words = (f"from {low:,f} to {high:,f}" if low_included else f"more than {low:,f} and at most {high:,f}")

    def check(value: Decimal) -> Decimal:
        if not value.is_finite() or value > high or value < low or (value == low and not low_included):
            raise ValueError(f"must be a number {words}, not {value}")
        return value

    return Annotated[Decimal, Field(allow_inf_nan=True), BeforeValidator(_no_float), AfterValidator(check)]


def _currency(value: Any) -> Any:
    if isinstance(value, str) and value not in MINOR_UNITS:
        raise ValueError(f"unknown currency {value!r} (known: {', '.join(sorted(MINOR_UNITS))})")
    return value


def _as_written(value: Any) -> Any:
    """An id written without quotes (an AWS account, a project number) as the text in the file.

    YAML would read ``011111111111`` as an octal number; the loader keeps the digits as written.
    """
    if isinstance(value, _YamlInt):
        return value.text
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    """Let a match value be one string or a list of strings; numbers become their text."""
    return [_as_written(v) for v in (value if isinstance(value, list) else [value])]


def _pattern(regex: str, message: str) -> Callable[[str], str]:
    """A validator that explains, in words, what a value must look like."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} {message}")
        return value

    return check


GCP_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
EXPORT_TABLE = (GCP_PROJECT + r"\.[A-Za-z0-9_]{1,1024}\."
                r"gcp_billing_export_(resource_)?v1_[0-9A-Fa-f]{6}_[0-9A-Fa-f]{6}_[0-9A-Fa-f]{6}")

Money = _exact_number(Decimal(0), MAX_MONEY)
Percent = _exact_number(Decimal(0), MAX_PERCENT)
Quantity = _exact_number(Decimal(0), MAX_QUANTITY, low_included=False)
Rate = _exact_number(1 / MAX_EXCHANGE_RATE, MAX_EXCHANGE_RATE)
Count = Annotated[int, BeforeValidator(_no_float)]
Currency = Annotated[str, BeforeValidator(_currency)]
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Values = Annotated[list[str | None], BeforeValidator(_one_or_many), Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Model):
    """Who issues the invoices."""

    name: str
    address: list[str] = []
    email: str | None = None
    website: str | None = None
    tax_id: str | None = None
    payment_instructions: str


class InvoiceSettings(_Model):
    """How invoices are dated and what page they are printed on."""

    page_size: Literal["A4", "Letter"] = "A4"
    number_prefix: str = Field("DRAFT", pattern=r"^[A-Za-z0-9-]+$")


class Contact(_Model):
    name: str
    email: str | None = None


# --- contract terms ---------------------------------------------------------------------------

MonthText = Annotated[str, AfterValidator(_pattern(r"\d{4}-(0[1-9]|1[0-2])", "must be a month, YYYY-MM"))]


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


class Match(_Model):
    """Conditions on a cost row; all given conditions must hold.

    ``gcp_label`` and ``aws_tag`` map a key to one value or a list of values; ``null`` among them
    matches a row that does not carry the key (unlabelled, untagged). ``gcp_project: null`` (or
    ``null`` in its list) matches rows without a project: GCP's rounding-error rows.
    """

    gcp_project: Values | None = None
    gcp_label: dict[str, Values] | None = None
    aws_account: Values | None = None
    aws_tag: dict[str, Values] | None = None

    @field_validator("gcp_project", mode="before")
    @classmethod
    def _null_is_no_project(cls, value: Any) -> Any:
        """Runs only when the key is written, so an explicit ``null`` is a condition (no project),
        unlike a key left out (any project)."""
        return [None] if value is None else value

    @field_validator("aws_account", mode="before")
    @classmethod
    def _every_aws_row_has_an_account(cls, value: Any) -> Any:
        if value is None or (isinstance(value, list) and None in value):
            raise ValueError("null matches nothing: every AWS cost row has an account (the payer's when "
                             "Cost Explorer names no linked account); give the account id")
        return value

    @property
    def provider(self) -> str:
        return "gcp" if self.gcp_project or self.gcp_label else "aws"

    @model_validator(mode="after")
    def _one_provider(self) -> Match:
        gcp = self.gcp_project is not None or self.gcp_label is not None
        aws = self.aws_account is not None or self.aws_tag is not None
        if not gcp and not aws:
            raise ValueError("needs at least one of gcp_project, gcp_label, aws_account, aws_tag")
        if gcp and aws:
            raise ValueError("mixes GCP and AWS conditions; a cost row comes from one provider")
        if self.gcp_label == {} or self.aws_tag == {}:
            raise ValueError("an empty label or tag condition matches nothing; give key: value")
        return self


class Rule(_Model):
    """Rows that match go to a ``community``, a ``shared_pool``, or are ``absorbed`` (the
    organisation's own cost; the value says why). Rules are tried in order; the first match wins."""

    community: Id | None = None
    shared_pool: Id | None = None
    absorbed: str | None = None
    match: Match

    @model_validator(mode="after")
    def _one_target(self) -> Rule:
        if sum(t is not None for t in (self.community, self.shared_pool, self.absorbed)) != 1:
            raise ValueError("give exactly one of community, shared_pool or absorbed")
        return self


class SharedPool(_Model):
    """Costs that rules send to this pool are split among ``communities``:

    - ``proportional``: to each community's direct cost in the pool's scope (by default, the
      projects and accounts the pool's own costs come from; or the rows ``scope`` matches);
    - ``even``: equal parts;
    - ``fixed``: ``percentages`` per community, adding up to 100;
    - ``metric``: to each community's value of ``metric`` in the month's metrics file.
    """

    id: Id
    description: str
    split: Literal["proportional", "even", "fixed", "metric"]
    communities: list[Id] = Field(min_length=1)
    percentages: dict[str, Percent] | None = None
    metric: str | None = None
    scope: Match | None = None

    @model_validator(mode="after")
    def _split_needs(self) -> SharedPool:
        if (self.split == "fixed") != (self.percentages is not None):
            raise ValueError("percentages go with split: fixed, and split: fixed needs them")
        if (self.split == "metric") != (self.metric is not None):
            raise ValueError("metric goes with split: metric, and split: metric needs it")
        if self.scope is not None and self.split != "proportional":
            raise ValueError("scope goes with split: proportional")
        if len(set(self.communities)) != len(self.communities):
            raise ValueError("a community is listed twice")
        return self


class ExchangeRate(_Model):
    """One unit of ``from`` is worth ``rate`` units of ``to`` in ``month``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    month: MonthText
    from_currency: Currency = Field(alias="from")
    to_currency: Currency = Field(alias="to")
    rate: Rate


class GcpExportFiles(_Model):
    """Local copies of the GCP billing export (``bq extract``), NDJSON (optionally gzip'd) or Parquet.

    Rows that cannot be billed (no invoice month, no cost, a credit without an amount) stop the
    run; ``unbillable_rows: report`` leaves them out (or counts a missing amount as zero) and
    warns instead, naming the file, the first such line and the count.
    """

    type: Literal["gcp-export-files"]
    id: Id
    path: Path
    unbillable_rows: Literal["refuse", "report"] = "refuse"


class GcpBigQuery(_Model):
    """The GCP billing export in BigQuery, queried in place; credentials from Application Default
    Credentials only (never in this file).

    ``table`` is the export table's full name, ``project.dataset.gcp_billing_export_v1_<ACCOUNT>``
    (standard) or ``..._resource_v1_<ACCOUNT>`` (detailed). Query jobs run in ``job_project``.
    Only the partitions from ``partition_days_before`` days before the month to
    ``partition_days_after`` days after it are scanned (late rows arrive after the month ends).
    """

    type: Literal["gcp-bigquery"]
    id: Id
    table: Annotated[str, AfterValidator(_pattern(
        EXPORT_TABLE, "must be the export table's full name, project.dataset.gcp_billing_export_v1_<ACCOUNT> "
        "or project.dataset.gcp_billing_export_resource_v1_<ACCOUNT> (the account id with _ for -)"))]
    job_project: Annotated[str, AfterValidator(_pattern(GCP_PROJECT, "must be a GCP project id, e.g. my-billing-project"))]
    location: str | None = None
    api_endpoint: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    partition_days_before: Count = Field(7, ge=0, le=62)
    partition_days_after: Count = Field(15, ge=0, le=62)
    maximum_bytes_billed: Count = Field(50 * 10**9, gt=0, le=int(MAX_QUANTITY))
    timeout_seconds: Count = Field(300, gt=0, le=24 * 3600)


class AwsCostExplorerFiles(_Model):
    """Saved Cost Explorer GetCostAndUsage responses: ``<path>/<YYYY-MM>/*.json``, one file per page."""

    type: Literal["aws-cost-explorer-files"]
    id: Id
    path: Path
    payer_account: Annotated[str, BeforeValidator(_as_written),
                             AfterValidator(_pattern(r"\d{12}", "must be a 12-digit AWS account id"))]
    metric: Literal["UnblendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost",
                    "BlendedCost"] = "UnblendedCost"
    accept_estimated: bool = False


class AwsGroupBy(_Model):
    """One Cost Explorer GroupBy: ``{type: DIMENSION, key: LINKED_ACCOUNT}`` or ``{type: TAG, key: team}``."""

    type: Literal["DIMENSION", "TAG"]
    key: str = Field(min_length=1)


class AwsCostExplorer(_Model):
    """The Cost Explorer API (GetCostAndUsage), with the standard AWS credential chain.

    Each month costs two paged requests: Usage grouped by ``group_by`` (for attribution) and every
    record type grouped by type and account (credits, refunds, tax, fees, and the total). Raw
    responses are saved under ``cache/<source id>/<YYYY-MM>/`` and reused by later runs.
    """

    type: Literal["aws-cost-explorer"]
    id: Id
    payer_account: Annotated[str, BeforeValidator(_as_written),
                             AfterValidator(_pattern(r"\d{12}", "must be a 12-digit AWS account id"))]
    profile: str | None = None
    region: str = "us-east-1"
    group_by: list[AwsGroupBy] = Field(
        default_factory=lambda: [AwsGroupBy(type="DIMENSION", key="LINKED_ACCOUNT")], min_length=1, max_length=2)
    metric: Literal["UnblendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost",
                    "BlendedCost"] = "UnblendedCost"
    filter: dict[str, Any] | None = None
    accept_estimated: bool = False
    cache: Path = Path("cache/aws")
    max_attempts: Count = Field(8, ge=1, le=20)
    max_pages: Count = Field(100, ge=1)  # per request: each page is a paid request (0.01 USD)
    endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")

    @field_validator("group_by")
    @classmethod
    def _not_by_record_type(cls, value: list[AwsGroupBy]) -> list[AwsGroupBy]:
        if any(g.type == "DIMENSION" and g.key == "RECORD_TYPE" for g in value):
            raise ValueError("leave RECORD_TYPE out: record types are always fetched by a request of their own")
        return value


Source = Annotated[Union[GcpExportFiles, GcpBigQuery, AwsCostExplorerFiles, AwsCostExplorer],
                   Field(discriminator="type")]


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


# --- loading --------------------------------------------------------------------------------

Location = tuple[Union[str, int], ...]


class _Refused(Exception):
    """Valid YAML that is unsafe to read further (aliases that never end or expand too far,
    nesting too deep): the line to name and the message."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    """Safe YAML whose fractional numbers become ``Decimal`` and whose integers remember their text.

    Composing also notes each alias (its name, place and the node it stands for) and refuses
    nesting deeper than ``MAX_YAML_DEPTH``, before anything recursive walks the tree.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases: list[tuple[str, yaml.Mark, yaml.Node]] = []
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self.aliases.append((event.anchor, event.start_mark, node))
            return node
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise _Refused(event.start_mark.line + 1, f"nested more than {MAX_YAML_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _YamlInt(int):
    """An integer from the file, with the text it was written as (``011111111111``)."""

    text: str


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    number = _YamlInt(yaml.SafeLoader.construct_yaml_int(loader, node))
    number.text = node.value
    return number


_NOT_FINITE = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    """A YAML float as the exact ``Decimal`` written; ``.inf`` and ``.nan`` too, for the fields to
    refuse with their place in the file."""
    text = loader.construct_scalar(node).replace("_", "")
    text = _NOT_FINITE.get(text.lower(), text)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a number", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def format_location(loc: Location) -> str:
    """``("communities", 3, "match")`` -> ``"communities[3].match"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse_endless_or_huge(root: yaml.Node, aliases: list[tuple[str, yaml.Mark, yaml.Node]]) -> None:
    """Refuse an alias inside the value it names (``&a [*a]``), and aliases that expand the file
    past ``MAX_YAML_VALUES`` values (a "billion laughs": each level repeats the one before).

    Aliases legitimately repeat contract terms, so the expanded size is what is bounded. It is
    counted once per node, without expanding anything, so a bomb is refused in linear time.
    """
    sizes: dict[int, int] = {}
    unfinished: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            unfinished.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif id(node) in unfinished:  # reached again from inside itself
            name, mark = next((name, mark) for name, mark, target in aliases if target is node)
            raise _Refused(mark.line + 1, f"alias *{name} is inside the value it names (&{name}), "
                                          "so it would repeat forever")
        elif id(node) not in sizes:
            unfinished.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    if sizes[id(root)] > MAX_YAML_VALUES:
        first = f" from *{aliases[0][0]} here on" if aliases else ""
        line = aliases[0][1].line + 1 if aliases else 1
        raise _Refused(line, f"the aliases{first} expand the file to more than {MAX_YAML_VALUES:,} values; "
                             "a billing config needs far fewer (are aliases nested in aliases?)")


_READ_AS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


def _lines_and_duplicates(root: yaml.Node) -> tuple[dict[Location, int], list[tuple[Location, str]],
                                                    dict[Location, str]]:
    """Line number of every key and item, every key that appears twice in a mapping, and the
    text of each value (or key) that YAML reads as a boolean or a date, for a message that says
    to quote it."""
    lines: dict[Location, int] = {}
    duplicates: list[tuple[Location, str]] = []
    written: dict[Location, str] = {}

    def walk(node: yaml.Node, loc: Location) -> None:
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode) and node.tag in _READ_AS:
            written[loc] = node.value
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    duplicates.append((loc + (key,), f"key {key!r} appears twice"))
                seen.add(key)
                lines[loc + (key,)] = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:bool":  # pydantic names it by its value
                    written[loc + (yaml.SafeLoader.bool_values[key.lower()], "[key]")] = key
                walk(value_node, loc + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, loc + (index,))

    walk(root, ())
    return lines, duplicates, written


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(loc: Location) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc``, to suggest a spelling for an unknown key."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:  # a discriminated union's tag appears in the location
            model = _TAGS.get(part)
            continue
        annotation = field.annotation
        for candidate in _model_candidates(annotation):
            model = candidate
            break
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_candidates(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_model_candidates(arg))
    return found


SOURCE_TYPES = {"gcp-export-files": GcpExportFiles, "gcp-bigquery": GcpBigQuery,
                "aws-cost-explorer-files": AwsCostExplorerFiles, "aws-cost-explorer": AwsCostExplorer}


FEE_KINDS = {"flat": FlatFee, "percent": PercentFee, "tiered": TieredFee}
_TAGS = {**SOURCE_TYPES, **FEE_KINDS}


def _untagged(tagged: Location) -> Location:
    """``tagged`` without the source's type or the fee's kind that pydantic puts in the location
    of a discriminated union (``sources[1].gcp-bigquery.table``)."""
    return tuple(part for i, part in enumerate(tagged)
                 if not (isinstance(part, str) and part in _TAGS and i >= 2
                         and tagged[i - 2] in ("sources", "fees") and isinstance(tagged[i - 1], int)))


def _quote_hint(loc: Location, message: str, item: Any, written: dict[Location, str]) -> tuple[Location, str]:
    """Say that YAML read ``no`` (``on``, ``true``, ...) as a boolean, or a match value
    ``2022-09-01`` as a date, and how to keep the text; a key is named by its text."""
    text = written.get(loc)
    if text is None and loc[-1:] == (0,) and loc[:-1] in written:  # one value where a list is read
        loc, text = loc[:-1], written[loc[:-1]]
    if text is None:
        return loc, message
    value, matching = item["input"], "match" in loc or "scope" in loc
    if message == _NOT_A_NUMBER:
        return loc, f"YAML reads {text} as {str(value).lower()}, not a number"
    if item["type"] != "string_type" or not (isinstance(value, bool) or matching):
        return loc, message
    reads = str(value).lower() if isinstance(value, bool) else "a date"
    if loc[-1] == "[key]":
        return loc[:-2] + (text,), f"YAML reads the key {text} as {reads}; quote it ('{text}') to keep the text"
    return loc, (f"YAML reads {text} as {reads}; quote the value ('{text}') to "
                 f"{'match' if matching else 'keep'} the text")


def _pydantic_problems(error: ValidationError, written: dict[Location, str]) -> list[tuple[Location, str]]:
    """Each validation error as (location in the file, message), with the tags of discriminated
    unions left out of the location."""
    problems = []
    for item in error.errors(include_url=False):
        tagged = tuple(item["loc"])
        loc = _untagged(tagged)
        if item["type"] == "extra_forbidden":
            model = _model_at(tagged)
            allowed = sorted(model.model_fields) if model else []
            message = f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), allowed)}"
            if allowed:
                message += f"; allowed here: {', '.join(allowed)}"
        elif item["type"] == "missing":
            message = "field required"
        elif item["type"] == "union_tag_invalid":
            message = (f"unknown source type {item['input'].get('type')!r}; "
                       f"known: {', '.join(SOURCE_TYPES)}")
            loc = loc + ("type",)
        else:
            message = item["msg"].removeprefix("Value error, ")
            loc, message = _quote_hint(loc, message, item, written)
        problems.append((loc, message))
    return problems


def _items(data: dict, field: str) -> list[tuple[int, dict]]:
    items = data.get(field)
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)] if isinstance(items, list) else []


def _cross_checks(data: dict) -> list[tuple[Location, str]]:
    """Problems between parts of the file: duplicate ids, rules naming unknown communities.

    Runs on the raw data, so they are reported together with the per-field problems.
    """
    problems: list[tuple[Location, str]] = []
    for field in ("communities", "sources"):
        seen: set[str] = set()
        for index, item in _items(data, field):
            if not isinstance(item.get("id"), str):
                continue  # the field check reports it
            if item["id"] in seen:
                problems.append(((field, index, "id"), f"duplicate id {item['id']!r}"))
            seen.add(item["id"])
    seen = set()
    for index, item in _items(data, "shared_pools"):
        if not isinstance(item.get("id"), str):
            continue
        if item["id"] in seen:
            problems.append((("shared_pools", index, "id"), f"duplicate id {item['id']!r}"))
        seen.add(item["id"])
    ids = [str(item.get("id")) for _, item in _items(data, "communities")]
    pools = [str(item.get("id")) for _, item in _items(data, "shared_pools")]
    for index, rule in _items(data, "attribution"):
        for field, known, what in (("community", ids, "community"), ("shared_pool", pools, "shared pool")):
            name = rule.get(field)
            if isinstance(name, str) and name not in known:
                problems.append((("attribution", index, field), f"unknown {what} {name!r}{_suggest(name, known)}"))
    for index, pool in _items(data, "shared_pools"):
        members = pool.get("communities") if isinstance(pool.get("communities"), list) else []
        for position, name in enumerate(members):
            if isinstance(name, str) and name not in ids:
                problems.append((("shared_pools", index, "communities", position),
                                 f"unknown community {name!r}{_suggest(name, ids)}"))
    return problems


def _term_checks(config: Config) -> list[tuple[Location, str]]:
    """Problems only a validated config can show: percentages that do not add up, contracts of
    one community that overlap or differ in currency, pools with percentages for communities
    they do not list, two exchange rates for one month and pair of currencies."""
    problems: list[tuple[Location, str]] = []
    for index, pool in enumerate(config.shared_pools):
        if pool.percentages is not None:
            total = sum(pool.percentages.values(), Decimal(0))
            if total != 100:
                problems.append((("shared_pools", index, "percentages"),
                                 f"percentages add up to {total}, not 100"))
            if set(pool.percentages) != set(pool.communities):
                problems.append((("shared_pools", index, "percentages"),
                                 "give a percentage for each of the pool's communities, and only for them"))
    seen_rates: dict[tuple[str, str, str], int] = {}
    for index, rate in enumerate(config.exchange_rates):
        key = (rate.month, rate.from_currency, rate.to_currency)
        if key in seen_rates:
            problems.append((("exchange_rates", index), f"a second {rate.from_currency} to {rate.to_currency} rate "
                             f"for {rate.month} (the first is exchange_rates[{seen_rates[key]}])"))
        seen_rates.setdefault(key, index)
    for index, community in enumerate(config.communities):
        currencies = {c.currency or community.currency for c in community.all_contracts}
        if len(currencies) > 1:
            problems.append((("communities", index, "contracts"),
                             f"contracts in {' and '.join(sorted(currencies))}; one community is billed in one "
                             "currency (set `currency` on the community)"))
        contracts = community.contracts or []
        for j, later in enumerate(contracts):
            for i, earlier in enumerate(contracts[:j]):
                starts = max(earlier.start or dt.date.min, later.start or dt.date.min)
                ends = min(earlier.end or dt.date.max, later.end or dt.date.max)
                if starts <= ends:
                    problems.append((("communities", index, "contracts", j),
                                     f"overlaps contracts[{i}] from {starts} to "
                                     f"{'open end' if ends == dt.date.max else ends}; one contract at a time"))
    return problems


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(path: Path) -> Path:
        return Path(os.path.normpath(base / path))

    sources = [s.model_copy(update={field: resolve(getattr(s, field))
                                    for field in ("path", "cache") if hasattr(s, field)})
               for s in config.sources]
    metrics = resolve(config.metrics) if config.metrics else None
    return config.model_copy(update={"sources": sources, "output": resolve(config.output), "metrics": metrics})


def _path_checks(config: Config, base: Path) -> list[tuple[Location, str]]:
    """Local files the config names that are not there (for ``check-config``; a run says so too)."""
    problems: list[tuple[Location, str]] = []
    for index, source in enumerate(config.sources):
        path = getattr(source, "path", None)
        if path is not None and not (base / path).exists() and not glob.glob(str(base / path)):
            problems.append((("sources", index, "path"), f"{os.path.normpath(base / path)} does not exist"))
    if config.metrics is not None and not (base / config.metrics).parent.is_dir():
        problems.append((("metrics",), f"folder {os.path.normpath((base / config.metrics).parent)} does not exist"))
    return problems


def _parse(text: str) -> tuple[Any, dict[Location, int], list[tuple[Location, str]], dict[Location, str]]:
    """The file's data (``None`` if empty), the line of each place, the keys given twice, and the
    text of values YAML reads as booleans or dates. Raises ``yaml.YAMLError`` or ``_Refused``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}, [], {}
        _refuse_endless_or_huge(root, loader.aliases)
        lines, duplicates, written = _lines_and_duplicates(root)  # before merge keys (<<) are flattened
        return loader.construct_document(root), lines, duplicates, written
    finally:
        loader.dispose()


def load_config(path: Path | str = DEFAULT_CONFIG, check_paths: bool = False) -> Config:
    """Read and validate a config file; raise ``ConfigError`` listing every problem found.

    With ``check_paths``, local source files and the metrics folder must exist too.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (give one with --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None

    try:
        data, lines, problems, written = _parse(text)
    except yaml.reader.ReaderError as exc:  # a control character; it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.reason} (U+{exc.character:04X})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except _Refused as refused:
        raise ConfigError(f"{path}:{refused.line}: {refused.message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with organisation, sources, communities, attribution")

    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, written)
    problems += _cross_checks(data)
    if config is not None:
        problems += _term_checks(config)
        if check_paths:
            problems += _path_checks(config, path.parent)
    problems.sort(key=lambda problem: _line(lines, problem[0]))
    if problems:
        raise ConfigError(
            f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}",
            tuple(_place(path, lines, loc, message) for loc, message in problems))
    return _resolve_paths(config, path.parent)


def _line(lines: dict[Location, int], loc: Location) -> int:
    """Line of ``loc``, or of its nearest enclosing part that the file has."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 0


def _place(path: Path, lines: dict[Location, int], loc: Location, message: str) -> str:
    """``config/billing.yaml:42: communities[3].contract.fees: field required``."""
    return f"{path}:{_line(lines, loc)}: {format_location(loc)}: {message}"


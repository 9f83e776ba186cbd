"""The types of the config's values: exact numbers within bounds, ids, currencies, months.

Every number is an exact ``Decimal`` (or an int) checked to be finite and within the bounds
below; YAML integers keep the digits they were written with (``011111111111`` is not octal).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ..money import check_locale, currencies


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
    if isinstance(value, str):
        try:
            Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number: write it with a decimal point and no thousands "
                             "separator or currency, e.g. 1234.50") from None
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
    if isinstance(value, str) and value not in currencies():
        raise ValueError(f"unknown currency {value!r}: not an ISO 4217 code such as USD, EUR, GBP, CAD")
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
LocaleName = Annotated[str, AfterValidator(check_locale)]
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Values = Annotated[list[str | None], BeforeValidator(_one_or_many), Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _YamlInt(int):
    """An integer from the file, with the text it was written as (``011111111111``)."""

    text: str


MonthText = Annotated[str, AfterValidator(_pattern(r"\d{4}-(0[1-9]|1[0-2])", "must be a month, YYYY-MM"))]

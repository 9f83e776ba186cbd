"""How invoices write what is not money for a community's locale (Babel): dates, quantities,
rates and percentages. Amounts are written by ``money.format_amount`` and ``money.format_money``.

Invoices use one date format throughout: the locale's long form (``September 30, 2022`` in
en_US, ``30 September 2022`` in en_GB, ``30. September 2022`` in de_DE).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import babel.dates
import babel.numbers

from .money import DEFAULT_LOCALE


def long_date(day: dt.date, locale: str = DEFAULT_LOCALE) -> str:
    """``2022-09-30`` -> ``September 30, 2022`` (en_US)."""
    return babel.dates.format_date(day, "long", locale=locale)


def number(value: Decimal | int, locale: str = DEFAULT_LOCALE) -> str:
    """A quantity, rate or percentage with every digit it has: ``1.3543`` -> ``1.3543`` (en_US),
    ``1,3543`` (de_DE); ``1234`` -> ``1,234``."""
    exact = Decimal(value).normalize() if isinstance(value, Decimal) else Decimal(value)
    return babel.numbers.format_decimal(exact, locale=locale, decimal_quantization=False)

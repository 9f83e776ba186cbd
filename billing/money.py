"""Money: one way to make an amount, one way to round it.

Amounts are ``decimal.Decimal`` from the moment they are read; floats never touch them. ``D()``
refuses floats, so a float can only enter through a deliberate conversion at a collector's
boundary (a NUMERIC cast in SQL, or ``Decimal(str(x))``).

Rounding happens only at named points (an invoice line, a CSV cell) and always with
``ROUND_HALF_UP`` to the currency's minor unit (ISO 4217's, from Babel's data: 2 for USD, 0 for
JPY, 3 for KWD); Python's default, half-even, is a classic invoicing bug (2.345 would become
2.34). Amounts are shown as a locale writes them (Babel): ``1,234.50`` in en_US, ``1.234,50`` in
de_DE.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

import babel
import babel.numbers
from babel.core import get_global

ZERO = Decimal(0)

DEFAULT_LOCALE = "en_US"


# ISO 4217's minor unit where CLDR's (Babel's) accounting digits differ from it: CLDR gives 0
# digits for currencies whose smallest coin fell out of use; ISO 4217, which invoices and banks
# follow, keeps their decimals.
ISO_MINOR_UNITS = {
    "AFN": 2, "ALL": 2, "COP": 2, "HUF": 2, "IDR": 2, "IQD": 3, "IRR": 2, "KPW": 2, "LAK": 2, "LBP": 2,
    "MGA": 2, "MMK": 2, "SOS": 2, "SYP": 2, "YER": 2,
}


@lru_cache(maxsize=None)
def currencies() -> frozenset[str]:
    """The ISO 4217 codes of the currencies in use in some country today, from Babel's data (no
    fund or metal codes such as XXX or XAU, no withdrawn ones such as DEM)."""
    return frozenset(code for entries in get_global("territory_currencies").values()
                     for code, _start, end, tender in entries if end is None and tender)


def D(value: str | int | Decimal | None = None) -> Decimal:
    """Make an amount from a string, an int or a Decimal; ``None`` and ``""`` give zero.

    Floats are refused: ``D(0.1)`` raises ``TypeError``.
    """
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):
        raise TypeError(f"refusing to make an amount from the float {value!r}; pass a string")
    if isinstance(value, bool):
        raise TypeError("refusing to make an amount from a bool")
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


@lru_cache(maxsize=None)
def minor_unit(currency: str) -> int:
    """Number of decimal places of ``currency`` (2 for USD, 0 for JPY, 3 for KWD): Babel's data,
    with ISO 4217's own where CLDR differs (``ISO_MINOR_UNITS``)."""
    if currency not in currencies():
        raise ValueError(f"unknown currency {currency!r}: not an ISO 4217 code")
    return ISO_MINOR_UNITS.get(currency, babel.numbers.get_currency_precision(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up to the minor unit of ``currency`` (2.345 USD -> 2.35)."""
    exponent = Decimal(1).scaleb(-minor_unit(currency))
    rounded = amount.quantize(exponent, rounding=ROUND_HALF_UP)
    return rounded.copy_abs() if rounded.is_zero() else rounded  # never print "-0.00"


def check_locale(name: str) -> str:
    """``name`` if Babel knows the locale (``en_US``, ``de_DE``), else a ``ValueError`` naming it."""
    _locale(name)
    return name


@lru_cache(maxsize=64)
def _locale(name: str) -> babel.Locale:
    try:
        return babel.Locale.parse(name)
    except (ValueError, babel.UnknownLocaleError):
        raise ValueError(f"unknown locale {name!r} (for example en_US, en_GB, de_DE, fr_CA)") from None


def format_amount(amount: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """The number as ``locale`` writes it, with the minor unit of ``currency``: ``1234.5`` USD ->
    ``"1,234.50"`` (en_US), ``"1.234,50"`` (de_DE). Rounds half-up first, so Babel never rounds."""
    where = _locale(locale)
    return where.decimal_formats[None].apply(quantize(amount, currency), where, currency=currency,
                                             currency_digits=True)


def format_money(amount: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """The amount with its currency as ``locale`` writes it: ``1234.56`` EUR -> ``"1.234,56 €"``
    (de_DE), USD -> ``"$1,234.56"`` (en_US). Rounds half-up first."""
    return babel.numbers.format_currency(quantize(amount, currency), currency, locale=_locale(locale))


def plain_amount(amount: Decimal, currency: str) -> str:
    """``1234.5`` USD -> ``"1234.50"``: the form written to CSV files for import."""
    places = minor_unit(currency)
    return f"{quantize(amount, currency):.{places}f}"


def round_to_total(amounts: list[Decimal], currency: str, total: Decimal) -> list[Decimal]:
    """Round each amount half-up, then move single minor units onto the amounts that rounding
    moved furthest, until the rounded amounts add up to ``total`` (already rounded).

    For tables whose columns must add up as printed, such as the reconciliation.
    """
    unit = Decimal(1).scaleb(-minor_unit(currency))
    rounded = [quantize(a, currency) for a in amounts]
    steps = int((total - sum(rounded, ZERO)) / unit)
    for _ in range(abs(steps)):
        direction = 1 if steps > 0 else -1
        index = max(range(len(amounts)), key=lambda i: (direction * (amounts[i] - rounded[i]), -i))
        rounded[index] += direction * unit
    return rounded

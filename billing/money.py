"""Money: one way to make an amount, one way to round it.

Amounts are ``decimal.Decimal`` from the moment they are read; floats never touch them. ``D()``
refuses floats, so a float can only enter through a deliberate conversion at a collector's
boundary (a NUMERIC cast in SQL, or ``Decimal(str(x))``).

Rounding happens only at named points (an invoice line, a CSV cell) and always with
``ROUND_HALF_UP`` to the currency's minor unit; Python's default, half-even, is a classic
invoicing bug (2.345 would become 2.34).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)

# ISO 4217 minor units for the currencies a contract may be written in.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "ISK": 0, "JPY": 0, "KES": 2, "KRW": 0, "MXN": 2, "MYR": 2, "NGN": 2,
    "NOK": 2, "NZD": 2, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2,
    "SGD": 2, "THB": 2, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}


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


def minor_unit(currency: str) -> int:
    """Number of decimal places of ``currency`` (2 for USD, 0 for JPY)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up to the minor unit of ``currency`` (2.345 USD -> 2.35)."""
    exponent = Decimal(1).scaleb(-minor_unit(currency))
    rounded = amount.quantize(exponent, rounding=ROUND_HALF_UP)
    return rounded.copy_abs() if rounded.is_zero() else rounded  # never print "-0.00"


def format_amount(amount: Decimal, currency: str) -> str:
    """``1234.5`` USD -> ``"1,234.50"``; rounds half-up first, so the text never rounds again."""
    places = minor_unit(currency)
    return f"{quantize(amount, currency):,.{places}f}"


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

from decimal import ROUND_HALF_UP, Decimal

import pytest

from billing.money import D, ZERO, format_amount, format_money, minor_unit, plain_amount, quantize


def test_D_makes_exact_amounts_from_text_and_ints():
    assert D("0.1") + D("0.2") == Decimal("0.3")
    assert D(3) == Decimal(3)
    assert D(None) == ZERO and D("") == ZERO


def test_D_refuses_floats_and_bools():
    with pytest.raises(TypeError, match="float"):
        D(0.1)
    with pytest.raises(TypeError):
        D(True)


def test_D_names_text_that_is_not_an_amount():
    with pytest.raises(ValueError, match="'12,50'"):
        D("12,50")


@pytest.mark.parametrize("amount, currency, expected", [
    ("2.345", "USD", "2.35"),     # half-even would give 2.34
    ("2.355", "USD", "2.36"),
    ("-2.345", "USD", "-2.35"),   # half-up rounds away from zero
    ("2.3449999", "USD", "2.34"),
    ("1234.5", "JPY", "1235"),
    ("-0.004", "USD", "0.00"),    # never a negative zero
])
def test_quantize_rounds_half_up_to_the_minor_unit(amount, currency, expected):
    assert str(quantize(Decimal(amount), currency)) == expected


@pytest.mark.parametrize("code", ["ABC", "XXX", "XAU", "DEM", "usd"])
def test_a_code_that_is_no_currency_in_use_is_refused(code):
    with pytest.raises(ValueError, match=f"'{code}': not an ISO 4217 code"):
        quantize(Decimal(1), code)


@pytest.mark.parametrize("currency, places", [("USD", 2), ("RUB", 2), ("CHF", 2), ("JPY", 0), ("KWD", 3),
                                              ("BHD", 3), ("CLP", 0), ("UGX", 0),
                                              ("HUF", 2), ("IDR", 2), ("COP", 2), ("IQD", 3)])  # ISO, not CLDR
def test_minor_units_come_from_the_iso_4217_data(currency, places):
    assert minor_unit(currency) == places
    assert quantize(Decimal("1.23456"), currency) == Decimal("1.23456").quantize(Decimal(1).scaleb(-places),
                                                                                   rounding=ROUND_HALF_UP)


@pytest.mark.parametrize("amount, currency, locale, number, money", [
    ("1234.555", "EUR", "de_DE", "1.234,56", "1.234,56\xa0€"),   # half-up before Babel formats
    ("1234.5", "USD", "en_US", "1,234.50", "$1,234.50"),
    ("-1234.5", "GBP", "en_GB", "-1,234.50", "-£1,234.50"),
    ("1234.5", "JPY", "ja_JP", "1,235", "￥1,235"),
    ("1234.5675", "KWD", "en_US", "1,234.568", "KWD1,234.568"),
    ("1234567.5", "INR", "hi_IN", "12,34,567.50", "₹12,34,567.50"),
    ("2.345", "CAD", "fr_CA", "2,35", "2,35\xa0$"),
])
def test_amounts_are_written_as_the_locale_writes_them(amount, currency, locale, number, money):
    assert format_amount(Decimal(amount), currency, locale) == number
    assert format_money(Decimal(amount), currency, locale) == money


def test_an_unknown_locale_is_named():
    with pytest.raises(ValueError, match="unknown locale 'xx_YY'"):
        format_amount(Decimal(1), "USD", "xx_YY")


def test_formatting_groups_thousands_and_rounds_half_up_first():
    assert format_amount(Decimal("1234567.125"), "USD") == "1,234,567.13"
    assert plain_amount(Decimal("1234567.125"), "USD") == "1234567.13"
    assert plain_amount(Decimal("-0.001"), "USD") == "0.00"

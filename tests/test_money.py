from decimal import Decimal

import pytest

from billing.money import D, ZERO, format_amount, plain_amount, quantize


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


def test_unknown_currency_is_refused():
    with pytest.raises(ValueError, match="XXX"):
        quantize(Decimal(1), "XXX")


def test_formatting_groups_thousands_and_rounds_half_up_first():
    assert format_amount(Decimal("1234567.125"), "USD") == "1,234,567.13"
    assert plain_amount(Decimal("1234567.125"), "USD") == "1234567.13"
    assert plain_amount(Decimal("-0.001"), "USD") == "0.00"

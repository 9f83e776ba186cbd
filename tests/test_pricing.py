"""The contract terms engine: one example per term and per combination that interacts.

Every expected amount is computed by hand in the comment beside it.
"""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from billing.allocation import Share
from billing.config import Config
from billing.errors import ConfigError, DataError
from billing.metrics import Metrics
from billing.money import quantize
from billing.pricing import line_taxes, price_invoice
from billing.records import Attributed, Bucket, Month

from builders import cost_row

SEPTEMBER, OCTOBER = Month(2022, 9), Month(2022, 10)


def config(contract=None, contracts=None, currency="USD", rates=(), pools=()):
    community = {"id": "hub", "name": "Hub", "currency": currency}
    if contracts is not None:
        community["contracts"] = contracts
    else:
        community["contract"] = contract or {}
    return Config.model_validate({
        "organisation": {"name": "Org", "payment_instructions": "Pay"},
        "sources": [{"type": "gcp-export-files", "id": "gcp", "path": "."}],
        "communities": [community],
        "shared_pools": list(pools),
        "exchange_rates": list(rates),
    })


def price(cfg, *rows, month=SEPTEMBER, shares=(), metrics=None):
    direct = [Attributed(r, Bucket("community", "hub"), 0) for r in rows]
    return price_invoice(cfg, cfg.communities[0], month, direct, list(shares), list(shares),
                         metrics or Metrics(None, month))


def lines(invoice):
    return [(l.section, l.description, l.amount) for l in invoice.lines]


def D(text):
    return Decimal(text)


# --- cloud costs ------------------------------------------------------------------------------

def test_pass_through_at_cost_rounds_each_line_half_up_and_shows_credits_so_it_adds_up():
    invoice = price(config(), cost_row(cost="100.004", credits=[("SUSTAINED_USAGE_DISCOUNT", "-10.0015")]),
                    cost_row(service="Cloud Storage", cost="2.345"))
    [storage, compute] = invoice.lines  # services in alphabetical order
    # 100.004 - 10.0015 = 90.0025 -> 90.00; cost 100.004 -> 100.00; credits shown 90.00 - 100.00
    assert (compute.cost, compute.credits, compute.amount) == (D("100.00"), D("-10.00"), D("90.00"))
    assert storage.amount == D("2.35")  # half-up, where half-even would give 2.34
    assert invoice.total == D("92.35")


def test_markup_is_its_own_line_on_the_cloud_lines():
    invoice = price(config({"cloud": {"markup_percent": 5}}), cost_row(cost="33.33"))
    assert lines(invoice) == [("cloud", "Google Cloud: Compute Engine", D("33.33")),
                              ("cloud", "Cloud management markup (5% of 33.33)", D("1.67"))]  # 1.6665


def test_withheld_credit_types_do_not_reduce_the_bill():
    invoice = price(config({"cloud": {"withhold_credits": ["PROMOTION"]}}),
                    cost_row(cost="100", credits=[("PROMOTION", "-30"), ("SUSTAINED_USAGE_DISCOUNT", "-5")]))
    assert invoice.lines[0].amount == D("95.00")  # 100 - 5; the -30 promotion stays with the organisation
    assert invoice.notes == ("Credits of these types stay with Org and do not reduce this invoice: Promotional credit.",)


def test_a_cloud_limit_is_flagged_and_still_charged_without_a_cap():
    invoice = price(config({"cloud": {"limit": 1000}}), cost_row(cost="1200"))
    assert invoice.cloud_costs == D("1200.00")
    assert invoice.flags == ("cloud costs 1,200.00 exceed the monthly limit of 1,000.00",)


def test_cap_with_markup_caps_the_marked_up_amount():
    invoice = price(config({"cloud": {"markup_percent": 10, "limit": 1050, "cap_at_limit": True}}),
                    cost_row(cost="1000"))
    # 1000 + 100 markup = 1100; 50 above the limit is not charged
    assert lines(invoice)[1:] == [
        ("cloud", "Cloud management markup (10% of 1,000.00)", D("100.00")),
        ("cloud", "Cloud costs above the monthly limit of 1,050.00 (not charged)", D("-50.00"))]
    assert invoice.cloud_costs == D("1050.00")


def test_shared_pool_shares_are_cloud_lines():
    pool = {"id": "gke", "description": "GKE overhead", "split": "even", "communities": ["hub"]}
    share = Share("gke", "hub", "USD", D("12.34"), D(1), D("12.3449"))
    invoice = price(config(pools=[pool]), shares=[share])
    assert lines(invoice) == [("cloud", "Shared: GKE overhead (100.0% of 12.34 USD, equal parts)", D("12.34"))]


def test_shared_tax_is_its_own_line_after_the_pools_other_costs():
    pool = {"id": "gke", "description": "GKE overhead", "split": "proportional", "communities": ["hub"]}
    mine = [Share("gke", "hub", "USD", D("2.50"), D(1), D("10.00")),
            Share("gke", "hub", "USD", D("0.25"), D(1), D("1.001"), "tax")]
    theirs = [Share("gke", "other", "USD", D("7.50"), D(3), D("10.00")),
              Share("gke", "other", "USD", D("0.75"), D(3), D("1.001"), "tax")]
    cfg = config(pools=[pool])
    invoice = price_invoice(cfg, cfg.communities[0], SEPTEMBER, [], mine, mine + theirs, Metrics(None, SEPTEMBER))
    # weights 1 and 3 in each part: 25% of each, not 1 of the 8 the two parts weigh together
    assert [(l.description, l.service, l.amount) for l in invoice.lines] == [
        ("Shared: GKE overhead (25.0% of 10.00 USD, in proportion to direct cost)", "", D("2.50")),
        ("Shared tax: GKE overhead (25.0% of 1.00 USD, in proportion to direct cost)", "Tax", D("0.25"))]


# --- cloud costs are rounded once ----------------------------------------------------------------

def test_cloud_lines_add_up_to_the_exact_cloud_cost_rounded_once():
    invoice = price(config(), cost_row(service="Cloud Storage", cost="1.004"),
                    cost_row(service="Compute Engine", cost="2.0045"), cost_row(service="Networking", cost="3.003"))
    # exact 6.0115 -> 6.01; alone each would round down (6.00): the cent goes to the largest
    # remainder, Compute Engine's .0045
    assert [l.amount for l in invoice.lines] == [D("1.00"), D("2.01"), D("3.00")]
    assert invoice.cloud_costs == D("6.01")


def test_many_small_lines_do_not_drift_from_the_exact_total():
    """The issue's case: each line rounded on its own, 21 service lines lost cents."""
    invoice = price(config(), *(cost_row(service=f"Service {n:02d}", cost="0.534") for n in range(1, 22)))
    # 21 x 0.534 = 11.214 -> 11.21, where 21 x 0.53 would be 11.13; the remainders are equal, so
    # the 8 cents go to the first 8 lines
    assert [l.amount for l in invoice.lines] == [D("0.54")] * 8 + [D("0.53")] * 13
    assert invoice.cloud_costs == D("11.21")


def test_costs_add_up_too_and_a_line_without_credits_never_shows_one():
    invoice = price(config(), cost_row(service="Cloud Storage", cost="2.004"),
                    cost_row(service="Compute Engine", cost="10.003", credits=[("SUSTAINED_USAGE_DISCOUNT", "-1.0075")]))
    storage, compute = invoice.lines
    # amounts 2.004 + 8.9955 = 10.9995 -> 11.00 = 2.00 + 9.00; costs 2.004 + 10.003 = 12.007 -> 12.01.
    # Storage has no credits, so its cost stays its amount, 2.00, and Compute Engine's cost takes
    # the rest: 10.01, credits 9.00 - 10.01 = -1.01
    assert (storage.cost, storage.credits, storage.amount) == (D("2.00"), D("0.00"), D("2.00"))
    assert (compute.cost, compute.credits, compute.amount) == (D("10.01"), D("-1.01"), D("9.00"))


CONTRACT_CURRENCIES = {"USD": None, "CAD": D("1.3543"), "JPY": D("144.71")}
line_amounts = st.decimals(min_value=-1000, max_value=10000, places=6, allow_nan=False, allow_infinity=False)
credit_amounts = st.one_of(st.just(D(0)), st.decimals(min_value=-1000, max_value=0, places=6, allow_nan=False,
                                                       allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(line_amounts, credit_amounts, st.booleans()), min_size=1, max_size=25),
       st.lists(st.decimals(min_value=-100, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
                max_size=3),
       st.sampled_from(sorted(CONTRACT_CURRENCIES)))
def test_cloud_lines_always_add_up_to_the_exact_total_rounded_once(groups, share_amounts, currency):
    rate = CONTRACT_CURRENCIES[currency]
    pools = [{"id": f"p{n}", "description": f"Pool {n}", "split": "even", "communities": ["hub"]}
             for n in range(len(share_amounts))]
    cfg = config({"currency": currency}, pools=pools,
                 rates=[{"month": "2022-09", "from": "USD", "to": currency, "rate": rate}] if rate else [])
    rows = [cost_row(service=f"Service {n:02d}", cost=str(cost),
                     credits=[("SUSTAINED_USAGE_DISCOUNT", str(credit))] if credit else [],
                     charge_type="tax" if tax and n == 0 else "usage")
            for n, (cost, credit, tax) in enumerate(groups)]
    shares = [Share(f"p{n}", "hub", "USD", amount, D(1), amount) for n, amount in enumerate(share_amounts)]
    invoice = price(cfg, *rows, shares=shares)
    exact = {f"{row.provider}{row.service}{row.charge_type}": (row.cost * (rate or 1), row.net * (rate or 1))
             for row in rows}
    exact = [exact[key] for key in sorted(exact)]  # not in the invoice's order: only sums below
    exact_shares = [(s.amount * (rate or 1),) * 2 for s in shares]
    unit = D(1) if currency == "JPY" else D("0.01")
    assert invoice.cloud_costs == quantize(sum(a for _, a in exact + exact_shares), currency)
    assert sum(l.cost for l in invoice.lines) == quantize(sum(c for c, _ in exact + exact_shares), currency)
    passed = {l.description: l for l in invoice.lines}
    for row in rows:
        line = passed["Google Cloud: " + ("Tax" if row.charge_type == "tax" else row.service)]
        assert abs(line.amount - quantize(row.net * (rate or 1), currency)) <= unit
        assert line.cost + line.credits == line.amount
        if not row.credits:
            assert line.credits == 0
    for share, line in zip(shares, invoice.lines[len(rows):]):
        assert abs(line.amount - quantize(share.amount * (rate or 1), currency)) <= unit
        assert line.cost == line.amount


# --- fees ---------------------------------------------------------------------------------------

def test_flat_fees_and_percentage_of_fees():
    invoice = price(config({"fees": [{"id": "service", "description": "Service", "amount": D("1000")},
                                     {"description": "Surcharge", "percent": 50, "of": ["service"]}]}))
    assert lines(invoice) == [("fees", "Service", D("1000.00")), ("fees", "Surcharge (50% of 1,000.00)", D("500.00"))]


def test_proration_with_percentage_of_fees():
    """A contract from 15 September: 16 of 30 days."""
    invoice = price(config({"start": dt.date(2022, 9, 15),
                            "fees": [{"id": "service", "description": "Service", "amount": D("1000")},
                                     {"description": "Surcharge", "percent": 50, "of": ["service"]}]}))
    assert lines(invoice) == [
        ("fees", "Service (prorated: 16 of 30 days)", D("533.33")),      # 1000 x 16/30 = 533.333...
        ("fees", "Surcharge (50% of 533.33)", D("266.67"))]              # 266.665, half-up
    assert invoice.notes == ("A contract is in force from September 15, 2022 to September 30, 2022 (16 of 30 days): its monthly fees "
                             "are prorated.",)


def test_two_contracts_in_one_month_each_prorate_their_fees_and_the_later_governs():
    invoice = price(config(contracts=[
        {"start": dt.date(2022, 1, 1), "end": dt.date(2022, 9, 14), "fees": [{"description": "Old fee", "amount": 300}]},
        {"start": dt.date(2022, 9, 15), "cloud": {"markup_percent": 10}, "fees": [{"description": "New fee", "amount": 600}]},
    ]), cost_row(cost="50"))
    assert lines(invoice) == [
        ("cloud", "Google Cloud: Compute Engine", D("50.00")),
        ("cloud", "Cloud management markup (10% of 50.00)", D("5.00")),   # the September 15 contract's terms
        ("fees", "Old fee (prorated: 14 of 30 days)", D("140.00")),       # 300 x 14/30
        ("fees", "New fee (prorated: 16 of 30 days)", D("320.00"))]       # 600 x 16/30


TIERS = [{"up_to": 10, "unit_price": 10}, {"up_to": 100, "unit_price": 5}, {"up_to": 1000, "unit_price": D("2.50")},
         {"up_to": 10000, "unit_price": D("1.25")}, {"unit_price": 0}]


@pytest.mark.parametrize("users, cap, expected", [
    ("250", None, "925.00"),      # 10 x 10 + 90 x 5 + 150 x 2.50
    ("100", None, "550.00"),      # exactly on a bound: 100 + 450
    ("7", None, "70.00"),
    ("20000", None, "14050.00"),  # 100 + 450 + 900 x 2.50 + 9000 x 1.25, then free above 10000
    ("250", "800", "800.00"),     # capped
    ("0", None, "0.00"),
])
def test_graduated_tiered_fee_on_a_metric(tmp_path, users, cap, expected):
    (tmp_path / "2022-09.csv").write_text(f"community,metric,value\nhub,active-users,{users}\n")
    fee = {"description": "Users", "metric": "active-users", "tiers": TIERS, **({"cap": D(cap)} if cap else {})}
    invoice = price(config({"fees": [fee]}), metrics=Metrics(tmp_path / "{month}.csv", SEPTEMBER))
    assert invoice.fees == D(expected)


def test_a_tiered_fee_without_its_metric_stops_the_run(tmp_path):
    (tmp_path / "2022-09.csv").write_text("community,metric,value\nother,active-users,5\n")
    fee = {"description": "Users", "metric": "active-users", "tiers": TIERS}
    with pytest.raises(DataError, match="has a fee on 'active-users', but .* has no active-users for it"):
        price(config({"fees": [fee]}), metrics=Metrics(tmp_path / "{month}.csv", SEPTEMBER))


def test_a_minimum_adds_a_true_up_line():
    invoice = price(config({"minimum": 500, "fees": [{"description": "Fee", "amount": 200}]}), cost_row(cost="100"))
    assert lines(invoice)[-1] == ("fees", "Monthly minimum true-up (minimum 500.00)", D("200.00"))
    assert invoice.total == D("500.00")


def test_minimum_with_discount_the_discount_applies_after_the_minimum():
    invoice = price(config({"minimum": 500, "fees": [{"description": "Fee", "amount": 200}],
                            "discounts": [{"description": "Partner", "percent": 20}]}), cost_row(cost="100"))
    # 100 + 200 + 200 true-up = 500; 20% off = -100
    assert lines(invoice)[-1] == ("discounts", "Partner (20% of 500.00)", D("-100.00"))
    assert invoice.total == D("400.00")


def test_a_minimum_above_the_charges_is_not_needed():
    invoice = price(config({"minimum": 100, "fees": [{"description": "Fee", "amount": 200}]}))
    assert [l[1] for l in lines(invoice)] == ["Fee"]


# --- discounts and tax --------------------------------------------------------------------------

def test_one_month_and_recurring_discounts_apply_only_in_their_months():
    terms = {"fees": [{"description": "Fee", "amount": 1000}],
             "discounts": [{"description": "Overrun credit", "amount": 150, "month": "2022-09"},
                           {"description": "Loyalty", "percent": 10, "start": "2022-10", "end": "2022-12"}]}
    september, october = price(config(terms)), price(config(terms), month=OCTOBER)
    assert [l for l in lines(september) if l[0] == "discounts"] == [("discounts", "Overrun credit", D("-150.00"))]
    assert [l for l in lines(october) if l[0] == "discounts"] == [("discounts", "Loyalty (10% of 1,000.00)",
                                                                   D("-100.00"))]


def test_a_discount_is_never_more_than_the_subtotal():
    invoice = price(config({"fees": [{"description": "Fee", "amount": 100}],
                            "discounts": [{"description": "Waiver", "amount": 250}]}))
    assert lines(invoice)[-1] == ("discounts", "Waiver (limited to the subtotal of 100.00)", D("-100.00"))
    assert invoice.total == D("0.00")


def test_tax_is_a_rate_on_the_subtotal_after_discounts():
    invoice = price(config({"fees": [{"description": "Fee", "amount": 1000}], "tax": {"description": "Sales tax",
                                                                                     "rate_percent": D("8.25")},
                            "discounts": [{"description": "Promo", "amount": D("65.44")}]}), cost_row(cost="300"))
    # 300 + 1000 - 65.44 = 1234.56; x 8.25% = 101.8512
    assert lines(invoice)[-1] == ("tax", "Sales tax (8.25% of 1,234.56)", D("101.85"))
    assert invoice.total == D("1336.41")


def test_the_providers_own_tax_is_neither_taxed_again_nor_discounted():
    invoice = price(config({"fees": [{"description": "Fee", "amount": 200}],
                            "discounts": [{"description": "Promo", "percent": 10}],
                            "tax": {"description": "GST", "rate_percent": 5}}),
                    cost_row(cost="100"), cost_row(cost="13", charge_type="tax"))
    # discount: 10% of 100 + 200 (not of the provider's 13 of tax) = 30, which the line says, since
    # the invoice shows the 13 among the cloud costs
    assert lines(invoice)[-2:] == [
        ("discounts", "Promo (10% of 300.00, cloud costs and fees without the provider's tax)", D("-30.00")),
        ("tax", "GST (5% of 270.00, cloud costs and fees without the provider's tax, after discounts)",
         D("13.50"))]  # 5% of 100 + 200 - 30
    assert invoice.total == D("100") + D("13") + D("200") - D("30") + D("13.50")


@pytest.mark.parametrize("base, taxed, said", [
    (["fees"], D("200") - D("30") * 200 / 300, ""),   # the fees, less their two thirds of the discount
    (["cloud"], D("100") - D("30") * 100 / 300, ", cloud costs without the provider's tax, after discounts"),
    (["cloud", "fees"], D("270"), ", cloud costs and fees without the provider's tax, after discounts"),
])
def test_the_tax_base_is_a_contract_choice_and_discounts_count_by_their_share(base, taxed, said):
    invoice = price(config({"fees": [{"description": "Fee", "amount": 200}],
                            "discounts": [{"description": "Promo", "percent": 10}],
                            "tax": {"description": "VAT", "rate_percent": 20, "base": base}}),
                    cost_row(cost="100"), cost_row(cost="13", charge_type="tax"))
    assert invoice.lines[-1] == invoice.lines[-1]._replace(
        description=f"VAT (20% of {quantize(taxed, 'USD'):,.2f}{said})",
        amount=quantize(quantize(taxed, "USD") / 5, "USD"))


def test_a_percentage_says_its_base_leaves_out_the_providers_tax_only_when_the_invoice_shows_some():
    terms = config({"cloud": {"markup_percent": 10}, "fees": [{"description": "Fee", "amount": 200}],
                    "discounts": [{"description": "Promo", "percent": 10}],
                    "tax": {"description": "VAT", "rate_percent": 20}})
    none = price(terms, cost_row(cost="100"), cost_row(cost="0", charge_type="tax"))  # a provider tax line of zero
    assert [d for _, d, _ in lines(none) if "%" in d] == [
        "Cloud management markup (10% of 100.00)", "Promo (10% of 310.00)", "VAT (20% of 279.00)"]
    some = price(terms, cost_row(cost="100"), cost_row(cost="8", charge_type="tax"))
    assert [d for _, d, _ in lines(some) if "%" in d] == [
        "Cloud management markup (10% of 100.00, cloud costs without the provider's tax)",
        "Promo (10% of 310.00, cloud costs and fees without the provider's tax)",
        "VAT (20% of 279.00, cloud costs and fees without the provider's tax, after discounts)"]


def test_each_line_keeps_its_part_of_the_tax_base_and_of_the_tax_to_the_cent():
    cfg = config({"fees": [{"description": "Fee", "amount": D("33.33")}, {"description": "Other", "amount": 1}],
                  "discounts": [{"description": "Promo", "percent": 10}],
                  "tax": {"description": "VAT", "rate_percent": 20, "base": ["fees"]}})
    invoice = price(cfg, cost_row(cost="66.67"), cost_row(cost="7", charge_type="tax"))
    by_line = {l.description: (l.taxable, l.tax) for l in invoice.lines}
    assert by_line["Google Cloud: Compute Engine"] == by_line["Google Cloud: Tax"] == (0, 0)  # not in the base
    assert by_line[invoice.lines[-1].description] == (0, 0)  # the tax line itself
    # the fees whole; the discount by the fees' share of its subtotal: -10.10 x 34.33 / 101 = -3.433
    assert by_line["Fee"] == (D("33.33"), D("6.67")) and by_line["Other"] == (D("1.00"), D("0.20"))
    assert by_line[invoice.lines[-2].description] == (D("-3.43"), D("-0.69"))  # -0.6866
    assert invoice.lines[-1].description == "VAT (20% of 30.90)"  # 34.33 - 3.433 = 30.897
    assert sum(l.taxable for l in invoice.lines) == D("30.90") and sum(l.tax for l in invoice.lines) == invoice.tax
    # an invoice priced before lines kept their parts: the same split from the config's terms
    priced = [(l.section, l.service, l.amount) for l in invoice.lines]
    assert line_taxes(cfg, "hub", SEPTEMBER, priced, invoice.tax) == tuple((l.taxable, l.tax) for l in invoice.lines)


def test_without_tax_every_line_has_none():
    invoice = price(config({"fees": [{"description": "Fee", "amount": 100}]}), cost_row(cost="5"))
    assert {(l.taxable, l.tax) for l in invoice.lines} == {(0, 0)}


def test_a_tax_base_naming_a_section_twice_or_an_unknown_one_is_refused():
    for base in (["fees", "fees"], ["tax"], []):
        with pytest.raises(ValueError):
            config({"tax": {"rate_percent": 5, "base": base}})


# --- currency -----------------------------------------------------------------------------------

RATE = [{"month": "2022-09", "from": "USD", "to": "CAD", "rate": D("1.3543")}]


def test_another_currency_converts_cloud_costs_at_the_months_rate_and_says_so():
    pool = {"id": "p", "description": "Pool", "split": "even", "communities": ["hub"]}
    invoice = price(config({"currency": "CAD", "fees": [{"description": "Fee", "amount": 200}]}, rates=RATE, pools=[pool]),
                    cost_row(cost="100", credits=[("SUSTAINED_USAGE_DISCOUNT", "-10")]),
                    shares=[Share("p", "hub", "USD", D("10.01"), D(1), D("10.01"))])
    assert invoice.currency == "CAD"
    assert lines(invoice) == [
        ("cloud", "Google Cloud: Compute Engine", D("121.89")),   # 90 x 1.3543 = 121.887
        # 10.01 x 1.3543 = 13.556543; the two add up to 135.443543, rounded once 135.44, so the
        # line rounding moved furthest (13.556543 up to 13.56, by .003457) gives back the cent
        ("cloud", "Shared: Pool (100.0% of 10.01 USD, equal parts)", D("13.55")),
        ("fees", "Fee", D("200.00"))]                              # already in CAD
    # costs 135.43 + 13.556543 = 148.986543 -> 148.99; the share has no credits, so its cost stays
    # its amount, 13.55, and Compute Engine's cost is the rest: 135.44, credits 121.89 - 135.44
    assert (invoice.lines[0].cost, invoice.lines[0].credits) == (D("135.44"), D("-13.55"))
    assert invoice.notes == ("Cloud costs in USD are converted at 1 USD = 1.3543 CAD, the rate for September 2022.",)


def test_a_missing_exchange_rate_is_a_config_error():
    with pytest.raises(ConfigError, match="add the 2022-09 rate from USD to CAD to exchange_rates"):
        price(config({"currency": "CAD"}), cost_row(cost="1"))


# --- contracts in force -------------------------------------------------------------------------

def test_no_contract_in_force_gives_no_invoice_unless_there_are_costs():
    ended = config(contracts=[{"end": dt.date(2022, 8, 31), "fees": [{"description": "Fee", "amount": 1}]}])
    assert price(ended) is None
    with pytest.raises(DataError, match="community 'hub' has costs in 2022-09 but no contract in force"):
        price(ended, cost_row(cost="5"))


def test_dates_number_and_payment_terms():
    invoice = price(config({"payment_terms_days": 45}))
    assert invoice.number == "DRAFT-202209-hub" and invoice.status == "draft"
    assert (invoice.issue_date, invoice.due_date) == (dt.date(2022, 10, 1), dt.date(2022, 11, 15))


# --- edge cases -----------------------------------------------------------------------------------

def test_a_percentage_discount_on_a_negative_subtotal_gives_nothing():
    """A month of refunds: the discount must not turn into a charge."""
    invoice = price(config({"discounts": [{"description": "Partner", "percent": 10}]}),
                    cost_row(cost="0", credits=[("Refund", "-200")], charge_type="refund"))
    assert [l for l in lines(invoice) if l[0] == "discounts"] == [("discounts", "Partner (10% of -200.00)", D("0.00"))]
    assert invoice.total == D("-200.00")


def test_each_contracts_minimum_is_prorated_by_its_days_and_they_add_up():
    invoice = price(config(contracts=[
        {"start": dt.date(2022, 1, 1), "end": dt.date(2022, 9, 15), "minimum": 1000},
        {"start": dt.date(2022, 9, 16), "fees": [{"description": "Fee", "amount": 10}]},
    ]), cost_row(cost="1"))
    # 1000 x 15/30 = 500 is the month's minimum; charged 1.00 + 5.00 (10 x 15/30)
    assert lines(invoice)[-1] == ("fees", "Monthly minimum true-up (minimum 500.00, prorated: 15 of 30 days)",
                                  D("494.00"))


def test_a_credit_type_withheld_never_reduces_and_other_types_always_do():
    invoice = price(config({"cloud": {"withhold_credits": ["Credit"]}}),
                    cost_row(provider="aws", account="222222222222", service="All AWS services", cost="100"),
                    cost_row(provider="aws", account="222222222222", service="All AWS services", cost="0",
                             credits=[("Credit", "-40")], charge_type="credit"),
                    cost_row(provider="aws", account="222222222222", service="All AWS services", cost="0",
                             credits=[("Refund", "-15")], charge_type="refund"))
    assert invoice.cloud_costs == D("85.00")  # the AWS Credit stays with the organisation; the refund passes

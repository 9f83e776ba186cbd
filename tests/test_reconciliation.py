from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from billing.allocation import allocate
from billing.attribution import attribute
from billing.config import Config
from billing.errors import ReconciliationError
from billing.metrics import Metrics
from billing.pricing import price_invoice
from billing.reconciliation import add_invoiced, check, reconcile
from billing.records import Month, SourceTotal
from billing.render.csv_files import read_csv, write_reconciliation

from builders import cost_row, rule

NS = "k8s-namespace"
RULES = [rule("a", gcp_project="shared", gcp_label={NS: "a"}), rule("b", gcp_project="dedicated")]


def test_buckets_add_up_to_the_source_total():
    rows = [cost_row(account="shared", labels=[(NS, "a")], cost="10.005", credits=[("PROMOTION", "-0.005")]),
            cost_row(account="dedicated", cost="20"),
            cost_row(account="shared", cost="3.3333")]
    totals = [SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("33.3333"))]
    [row] = reconcile(totals, attribute(rows, RULES))
    assert (row.source_total, row.attributed, row.unattributed, row.difference) == (
        Decimal("33.3333"), Decimal("30.000"), Decimal("3.3333"), Decimal("0"))
    check([row])


def test_a_lost_row_fails_naming_the_account():
    rows = [cost_row(account="dedicated", cost="20"), cost_row(account="dedicated", cost="0.42")]
    totals = [SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("20.42"))]
    balance = reconcile(totals, attribute(rows[:1], RULES))
    assert balance[0].difference == Decimal("0.42")
    with pytest.raises(ReconciliationError, match=r"gcp billing account BA-1 2022-09: .*difference 0.42"):
        check(balance)


def test_rows_of_an_account_the_source_did_not_total_show_up_as_a_difference():
    balance = reconcile([], attribute([cost_row(billing_account="BA-2", cost="5")], RULES))
    assert [(r.billing_account, r.source_total, r.unattributed, r.difference) for r in balance] == [
        ("BA-2", Decimal(0), Decimal("5"), Decimal("-5"))]
    with pytest.raises(ReconciliationError, match="BA-2"):
        check(balance)


def test_balance_holds_to_the_cent_not_beyond():
    """A gap that rounds to 0.00 is tolerated; half a cent, which shows as 0.01, is not."""
    rows = [cost_row(account="dedicated", cost="1")]
    check(reconcile([SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("1.004"))], attribute(rows, RULES)))
    with pytest.raises(ReconciliationError):
        check(reconcile([SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("1.005"))], attribute(rows, RULES)))


amounts = st.decimals(min_value=-1000, max_value=10000, places=6, allow_nan=False, allow_infinity=False)
rows_strategy = st.lists(st.builds(
    lambda provider, account, ns, cost, credit, billing: cost_row(
        provider=provider, account=account, labels=[(NS, ns)] if ns else [], cost=str(cost),
        credits=[("PROMOTION", str(-abs(credit)))] if credit else [], billing_account=billing),
    st.sampled_from(["gcp", "aws"]), st.sampled_from(["shared", "dedicated", "other"]),
    st.sampled_from(["a", "b", None]), amounts, amounts, st.sampled_from(["BA-1", "BA-2"])), max_size=40)
rules_strategy = st.lists(st.builds(
    lambda project, ns: rule("c", gcp_project=project, **({"gcp_label": {NS: ns}} if ns else {})),
    st.sampled_from(["shared", "dedicated", "other"]), st.sampled_from(["a", "b", None])), max_size=5)


@settings(max_examples=150, deadline=None)
@given(rows_strategy, rules_strategy)
def test_reconciliation_holds_for_any_rows_and_rules(rows, rules):
    totals: dict[tuple, Decimal] = {}
    for r in rows:
        key = (r.provider, r.billing_account, r.invoice_month, r.currency)
        totals[key] = totals.get(key, Decimal(0)) + r.net
    attributed = attribute(rows, rules)
    assert len(attributed) == len(rows)
    balance = reconcile([SourceTotal(*k, total=v) for k, v in totals.items()], attributed)
    check(balance)
    assert all(r.difference == 0 for r in balance)


# --- the provider's rounding --------------------------------------------------------------------

def test_the_providers_rounding_rows_are_their_own_column_not_unattributed():
    rows = [cost_row(account="dedicated", cost="20"),
            cost_row(account="", service="Invoice", charge_type="rounding", cost="-0.00349")]
    [row] = reconcile([SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("19.99651"))], attribute(rows, RULES))
    assert (row.attributed, row.unattributed, row.provider_rounding, row.difference) == (
        Decimal("20"), Decimal("0"), Decimal("-0.00349"), Decimal("0"))


# --- what the invoices pass through -------------------------------------------------------------

SEPTEMBER = Month(2022, 9)


def invoicing_config(rules):
    return Config.model_validate({
        "organisation": {"name": "Org", "payment_instructions": "Pay"},
        "sources": [{"type": "gcp-export-files", "id": "gcp", "path": "."}],
        "communities": [{"id": "a", "name": "A", "contract": {"cloud": {"withhold_credits": ["PROMOTION"]}}},
                        {"id": "b", "name": "B"}],
        "shared_pools": [{"id": "p", "description": "Pool", "split": "even", "communities": ["a", "b"]}],
        "attribution": rules,
    })


def invoice_month(cfg, rows, totals):
    """The pipeline of a run, without its sources: the invoices and the reconciliation."""
    attributed = attribute(rows, cfg.attribution)
    shares, _ = allocate(cfg, attributed, SEPTEMBER, Metrics(None, SEPTEMBER))
    invoices = [price_invoice(cfg, c, SEPTEMBER, [i for i in attributed if i.bucket == ("community", c.id)],
                              [s for s in shares if s.community == c.id], shares, Metrics(None, SEPTEMBER))
                for c in cfg.communities]
    return invoices, add_invoiced(reconcile(totals, attributed), attributed, shares, cfg, SEPTEMBER)


THREE_RULES = [{"community": "a", "match": {"gcp_project": "pa"}}, {"community": "b", "match": {"gcp_project": "pb"}},
               {"shared_pool": "p", "match": {"gcp_project": "shared"}}]


def test_invoiced_shows_what_the_invoices_pass_through_and_the_rounding_they_add(tmp_path):
    rows = [cost_row(account="pa", cost="1.005"), cost_row(account="pb", cost="1.005"),
            cost_row(account="shared", cost="3.333"),
            cost_row(account="pa", cost="2.004", credits=[("PROMOTION", "-0.50")], billing_account="BA-2"),
            cost_row(account="shared", cost="6.668", billing_account="BA-2")]
    totals = [SourceTotal("gcp", "BA-1", "2022-09", "USD", Decimal("5.343")),
              SourceTotal("gcp", "BA-2", "2022-09", "USD", Decimal("8.172"))]
    invoices, balance = invoice_month(invoicing_config(THREE_RULES), rows, totals)
    # a's direct cost, its PROMOTION withheld: 1.005 + 2.004 = 3.009 -> 3.01, back to the accounts
    # as 1.01 and 2.00; b's 1.005 -> 1.01; the pool, 10.001 -> 10.00, back as 3.33 and 6.67
    # (a 5.00 and b 5.00 on the invoices). BA-1: 1.01 + 1.01 + 3.33 = 5.35 against 2.01 + 3.333;
    # BA-2: 2.00 + 6.67 = 8.67 against 1.504 + 6.668 and the 0.50 of credits a's contract withholds
    assert [(r.invoiced, r.credits_withheld, r.invoice_rounding) for r in balance] == [
        (Decimal("5.35"), Decimal("0"), Decimal("0.007")), (Decimal("8.67"), Decimal("0.50"), Decimal("-0.002"))]
    assert [i.cloud_costs for i in invoices] == [Decimal("8.01"), Decimal("6.01")]  # 3.009 + 5.00; 1.005 + 5.00
    assert sum(i.cloud_costs for i in invoices) == sum(r.invoiced for r in balance)

    write_reconciliation(tmp_path / "reconciliation.csv", balance)
    table = [{k: v for k, v in r.items() if k not in ("provider", "invoice_month", "currency")}
             for r in read_csv(tmp_path / "reconciliation.csv")]
    assert table == [  # as printed, invoiced = attributed + shared + credits_withheld + invoice_rounding
        {"billing_account": "BA-1", "source_total": "5.34", "attributed": "2.01", "shared": "3.33", "absorbed": "0.00",
         "unattributed": "0.00", "provider_rounding": "0.00", "difference": "0.00", "invoiced": "5.35",
         "credits_withheld": "0.00", "invoice_rounding": "0.01"},
        {"billing_account": "BA-2", "source_total": "8.17", "attributed": "1.50", "shared": "6.67", "absorbed": "0.00",
         "unattributed": "0.00", "provider_rounding": "0.00", "difference": "0.00", "invoiced": "8.67",
         "credits_withheld": "0.50", "invoice_rounding": "0.00"}]


invoicing_rows = st.lists(st.builds(
    lambda account, billing, cost, credit, tax: cost_row(
        account=account, billing_account=billing, cost=str(cost), charge_type="tax" if tax else "usage",
        credits=[(credit[0], str(-abs(credit[1])))] if credit[1] else []),
    st.sampled_from(["pa", "pb", "shared", "other"]), st.sampled_from(["BA-1", "BA-2"]),
    st.decimals(min_value=-100, max_value=10000, places=6),
    st.tuples(st.sampled_from(["PROMOTION", "SUSTAINED_USAGE_DISCOUNT"]), st.decimals(min_value=0, max_value=100,
                                                                                       places=6)),
    st.booleans()), max_size=30)


@settings(max_examples=150, deadline=None)
@given(invoicing_rows)
def test_the_invoices_pass_through_exactly_what_the_invoiced_column_says(rows):
    totals: dict[tuple, Decimal] = {}
    for r in rows:
        key = (r.provider, r.billing_account, r.invoice_month, r.currency)
        totals[key] = totals.get(key, Decimal(0)) + r.net
    cfg = invoicing_config(THREE_RULES + [{"absorbed": "ours", "match": {"gcp_project": "other"}}])
    invoices, balance = invoice_month(cfg, rows, [SourceTotal(*k, total=v) for k, v in totals.items()])
    assert sum(i.cloud_costs for i in invoices) == sum(r.invoiced for r in balance)
    for r in balance:  # a, b, the pool's costs and its tax each move an account's amount under a cent
        assert abs(r.invoice_rounding) < Decimal("0.04")

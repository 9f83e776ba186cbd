from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from billing.attribution import attribute
from billing.errors import ReconciliationError
from billing.reconciliation import check, reconcile
from billing.records import SourceTotal

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

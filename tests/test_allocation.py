"""Shared pools: split exactly, by each kind of weight, whatever the order of the input."""

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from billing.allocation import allocate, largest_remainder
from billing.attribution import attribute
from billing.config import Config
from billing.errors import DataError
from billing.metrics import Metrics
from billing.money import quantize
from billing.reconciliation import check, reconcile
from billing.records import Month, SourceTotal
from billing.render.csv_files import read_csv, write_shared_allocation

from builders import cost_row

SEPTEMBER = Month(2022, 9)
NS = "k8s-namespace"
HUBS = ["a", "b", "c"]


def test_largest_remainder_gives_the_leftover_cents_to_the_largest_remainders():
    # 100.00 in thirds: 33.333... each; one cent left goes to the first id in order
    assert largest_remainder(Decimal("100"), {"b": Decimal(1), "a": Decimal(1), "c": Decimal(1)}, "USD") == {
        "b": Decimal("33.33"), "a": Decimal("33.34"), "c": Decimal("33.33")}
    # 10.00 as 1:2 -> 3.333 and 6.666: the larger remainder (.666) gets the cent
    assert largest_remainder(Decimal("10"), {"x": Decimal(1), "y": Decimal(2)}, "USD") == {
        "x": Decimal("3.33"), "y": Decimal("6.67")}
    # a negative pool (credits larger than costs) splits the same way, negated
    assert largest_remainder(Decimal("-0.05"), {"x": Decimal(1), "y": Decimal(1)}, "USD") == {
        "x": Decimal("-0.03"), "y": Decimal("-0.02")}


def test_largest_remainder_refuses_weights_it_cannot_use():
    with pytest.raises(ValueError):
        largest_remainder(Decimal(1), {"x": Decimal(0)}, "USD")
    with pytest.raises(ValueError):
        largest_remainder(Decimal(1), {"x": Decimal(-1), "y": Decimal(2)}, "USD")


amounts = st.decimals(min_value=-10**6, max_value=10**7, places=6, allow_nan=False, allow_infinity=False)
weights = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3),
                          st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
                          min_size=1, max_size=12).filter(lambda w: sum(w.values()) > 0)


@settings(max_examples=300, deadline=None)
@given(amounts, weights, st.sampled_from(["USD", "JPY"]), st.randoms())
def test_parts_add_up_exactly_and_do_not_depend_on_order(total, weight_map, currency, rng):
    parts = largest_remainder(total, weight_map, currency)
    assert sum(parts.values()) == quantize(total, currency)
    shuffled = list(weight_map.items())
    rng.shuffle(shuffled)
    assert largest_remainder(total, dict(shuffled), currency) == parts
    if total >= 0:
        assert all(p >= 0 for p in parts.values())
    exact_total = sum(weight_map.values())
    unit = Decimal(1) if currency == "JPY" else Decimal("0.01")
    for key, weight in weight_map.items():  # each part is within one unit of its exact share
        assert abs(parts[key] - quantize(total, currency) * weight / exact_total) < unit


def config_with(pools, rules, metrics=None):
    return Config.model_validate({
        "organisation": {"name": "Org", "payment_instructions": "Pay"},
        "sources": [{"type": "gcp-export-files", "id": "gcp", "path": "."}],
        "communities": [{"id": h, "name": h.upper()} for h in HUBS],
        "shared_pools": pools,
        "attribution": rules,
        **({"metrics": metrics} if metrics else {}),
    })


HUB_RULES = [{"community": h, "match": {"gcp_project": "shared", "gcp_label": {NS: h}}} for h in HUBS]
OVERHEAD = {"shared_pool": "overhead", "match": {"gcp_project": "shared", "gcp_label": {NS: ["kube:system-overhead", None]}}}


def rows():
    return [cost_row(account="shared", labels=[(NS, "a")], cost="30"),
            cost_row(account="shared", labels=[(NS, "b")], cost="60"),
            cost_row(account="shared", labels=[(NS, "b")], cost="10", credits=[("PROMOTION", "-10")]),
            cost_row(account="other", labels=[(NS, "c")], cost="500"),  # c's cost elsewhere: not in scope
            cost_row(account="shared", labels=[(NS, "kube:system-overhead")], cost="70"),
            cost_row(account="shared", cost="30.01")]  # no namespace label: matched by null


def shares_of(pool, metrics=None, tmp_path=None):
    cfg = config_with([{"id": "overhead", "description": "Overhead", "communities": HUBS, **pool}],
                      HUB_RULES + [{"community": "c", "match": {"gcp_project": "other"}}, OVERHEAD],
                      metrics)
    attributed = attribute(rows(), cfg.attribution)
    shares, warnings = allocate(cfg, attributed, SEPTEMBER, Metrics(cfg.metrics, SEPTEMBER))
    return {s.community: s.amount for s in shares}, warnings


def test_proportional_to_direct_cost_in_the_pools_own_projects():
    # pool 100.01; direct cost on "shared": a 30, b 60 (net of credits), c 0
    parts, warnings = shares_of({"split": "proportional"})
    assert parts == {"a": Decimal("33.34"), "b": Decimal("66.67"), "c": Decimal("0.00")}
    assert warnings == ("c gets no share of shared pool 'overhead' in 2022-09: it has no direct cost in the "
                        "pool's scope",)


def test_proportional_with_an_explicit_scope():
    parts, _ = shares_of({"split": "proportional", "scope": {"gcp_project": ["shared", "other"]}})
    # 10001 cents x 30, 60, 500 of 590: 508.52, 1017.05, 8475.42: floors add to 10000, and the
    # cent left goes to the largest remainder, a's .52
    assert parts == {"a": Decimal("5.09"), "b": Decimal("10.17"), "c": Decimal("84.75")}


def test_even_and_fixed():
    assert shares_of({"split": "even"})[0] == {"a": Decimal("33.34"), "b": Decimal("33.34"), "c": Decimal("33.33")}
    fixed = {"split": "fixed", "percentages": {"a": 50, "b": Decimal("33.5"), "c": Decimal("16.5")}}
    assert shares_of(fixed)[0] == {"a": Decimal("50.01"), "b": Decimal("33.50"), "c": Decimal("16.50")}


def test_by_a_metric_and_a_community_without_usage_gets_nothing(tmp_path):
    (tmp_path / "2022-09.csv").write_text("community,metric,value\na,mem,1000\nb,mem,3000\n")
    parts, warnings = shares_of({"split": "metric", "metric": "mem"}, metrics=str(tmp_path / "{month}.csv"))
    assert parts == {"a": Decimal("25.00"), "b": Decimal("75.01"), "c": Decimal("0.00")}
    assert warnings == (f"c gets no share of shared pool 'overhead' in 2022-09: it has no mem in "
                        f"{tmp_path / '2022-09.csv'}",)


def test_a_pool_with_cost_but_no_weight_stops_the_run(tmp_path):
    (tmp_path / "2022-09.csv").write_text("community,metric,value\n")
    with pytest.raises(DataError, match="shared pool 'overhead' has 100.01 USD of cost in 2022-09 but nothing to "
                                        "split it by"):
        shares_of({"split": "metric", "metric": "mem"}, metrics=str(tmp_path / "{month}.csv"))


def test_a_missing_metrics_file_is_named(tmp_path):
    with pytest.raises(DataError, match=f"metrics file {tmp_path / '2022-09.csv'} not found"):
        shares_of({"split": "metric", "metric": "mem"}, metrics=str(tmp_path / "{month}.csv"))


def test_a_pools_tax_is_split_on_its_own_with_the_same_weights(tmp_path):
    cfg = config_with([{"id": "overhead", "description": "Overhead", "communities": HUBS, "split": "proportional"}],
                      HUB_RULES + [OVERHEAD])
    tax = cost_row(account="shared", service="Kubernetes Engine", charge_type="tax", cost="1.005")
    attributed = attribute(rows()[:3] + rows()[4:] + [tax], cfg.attribution)
    shares, _ = allocate(cfg, attributed, SEPTEMBER, Metrics(None, SEPTEMBER))
    # weights a 30, b 60, c 0 in both parts. The pool's other costs, 70 + 30.01 = 100.01: 33.34, 66.67,
    # 0.00 (as above). Its tax, 1.005 -> 1.01, is 101 cents: 33.67 and 67.33, floors 33 and 67, and
    # the cent left goes to a's larger remainder
    assert [(s.part, s.community, s.amount, s.pool_total) for s in shares] == [
        ("costs", "a", Decimal("33.34"), Decimal("100.01")), ("costs", "b", Decimal("66.67"), Decimal("100.01")),
        ("costs", "c", Decimal("0.00"), Decimal("100.01")),
        ("tax", "a", Decimal("0.34"), Decimal("1.005")), ("tax", "b", Decimal("0.67"), Decimal("1.005")),
        ("tax", "c", Decimal("0.00"), Decimal("1.005"))]

    write_shared_allocation(tmp_path / "shared-allocation.csv", shares, cfg)
    table = [(r["part"], r["pool_total"], r["community_id"], r["share_percent"], r["amount"])
             for r in read_csv(tmp_path / "shared-allocation.csv")]
    assert table == [("costs", "100.01", "a", "33.3333", "33.34"), ("costs", "100.01", "b", "66.6667", "66.67"),
                     ("costs", "100.01", "c", "0.0000", "0.00"),
                     ("tax", "1.005", "a", "33.3333", "0.34"), ("tax", "1.005", "b", "66.6667", "0.67"),
                     ("tax", "1.005", "c", "0.0000", "0.00")]


def test_a_pool_of_tax_alone_has_no_costs_part():
    cfg = config_with([{"id": "overhead", "description": "Overhead", "communities": HUBS, "split": "even"}],
                      HUB_RULES + [OVERHEAD])
    attributed = attribute([cost_row(account="shared", charge_type="tax", cost="0.03")], cfg.attribution)
    shares, _ = allocate(cfg, attributed, SEPTEMBER, Metrics(None, SEPTEMBER))
    assert [(s.part, s.amount) for s in shares] == [("tax", Decimal("0.01"))] * 3


# --- reconciliation holds for random configurations ---------------------------------------------

targets = st.sampled_from([{"community": "a"}, {"community": "b"}, {"shared_pool": "p"}, {"absorbed": "ours"}])
conditions = st.sampled_from([{"gcp_project": "shared"}, {"gcp_project": "other"},
                              {"gcp_project": "shared", "gcp_label": {NS: "a"}},
                              {"gcp_project": "shared", "gcp_label": {NS: [None, "b"]}}])
random_rows = st.lists(st.builds(
    lambda account, ns, cost, credit: cost_row(account=account, labels=[(NS, ns)] if ns else [], cost=str(cost),
                                               credits=[("PROMOTION", str(-abs(credit)))] if credit else []),
    st.sampled_from(["shared", "other"]), st.sampled_from(["a", "b", None]),
    st.decimals(min_value=0, max_value=10**5, places=6), st.decimals(min_value=0, max_value=100, places=6)),
    max_size=30)


@settings(max_examples=150, deadline=None)
@given(random_rows, st.lists(st.builds(lambda t, m: {**t, "match": m}, targets, conditions), max_size=6),
       st.sampled_from(["even", "proportional"]))
def test_reconciliation_holds_and_pools_split_exactly_for_random_configurations(cost_rows, rules, split):
    cfg = config_with([{"id": "p", "description": "P", "split": split, "communities": ["a", "b"]}], rules)
    attributed = attribute(cost_rows, cfg.attribution)
    total = sum((r.net for r in cost_rows), Decimal(0))
    check(reconcile([SourceTotal("gcp", "BA-1", "2022-09", "USD", total)] if cost_rows else [], attributed))
    pool_total = sum((a.row.net for a in attributed if a.bucket.kind == "shared"), Decimal(0))
    try:
        shares, _ = allocate(cfg, attributed, SEPTEMBER, Metrics(None, SEPTEMBER))
    except DataError:
        assert split == "proportional" and quantize(pool_total, "USD")  # cost, but nothing to weigh it by
        return
    assert sum((s.amount for s in shares), Decimal(0)) == (quantize(pool_total, "USD") if shares else 0)
    if pool_total >= 0:
        assert all(s.amount >= 0 for s in shares)

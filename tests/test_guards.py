"""Guards against silent loss: each finding, its threshold, --allow, and the typo case end to end."""

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from billing import attribution, guards, ledger
from billing.cli import main
from billing.config import Config
from billing.errors import UsageError
from billing.records import Month, ReconciliationRow

from builders import cost_row
from conftest import said

SEPTEMBER = Month(2022, 9)


def config(rules, guard=None, sources=("gcp",)) -> Config:
    return Config.model_validate({
        "organisation": {"name": "Org", "payment_instructions": "Pay"},
        "sources": [{"id": f"{p}-src", "type": "gcp-export-files" if p == "gcp" else "aws-cost-explorer-files",
                     "path": "x", **({"payer_account": "111111111111"} if p == "aws" else {})} for p in sources],
        "communities": [{"id": c, "name": c.title(), "contract": {}} for c in ("alpha", "beta", "gamma")],
        "attribution": rules,
        "guards": guard or {},
    })


RULES = [
    {"community": "alpha", "match": {"gcp_project": "alpha-hub"}},
    {"community": "beta", "match": {"gcp_project": "shared", "gcp_label": {"ns": "beta"}}},
    {"community": "gamma", "match": {"gcp_project": "gamma-hub"}},
    {"absorbed": "staging", "match": {"gcp_project": "staging"}},
]


def month_of(cfg, rows):
    """The figures and attributed rows of ``rows`` (``(project, cost[, labels])``) under ``cfg``."""
    built = [cost_row(account=r[0], cost=r[1], labels=r[2] if len(r) > 2 else ()) for r in rows]
    attributed = attribution.attribute(built, cfg.attribution)
    total = sum((r.net for r in built), Decimal(0))
    totals = [ReconciliationRow("gcp", "BA-1", "2022-09", "USD", total, *([Decimal(0)] * 5))]
    return guards.figures(cfg, attributed, (), totals), attributed


def findings(cfg, now_rows, last_rows=None, contracted=("alpha", "beta", "gamma"), last_cfg=None):
    """Findings of this month's rows under ``cfg``, last month's under ``last_cfg`` (default: the same)."""
    now, attributed = month_of(cfg, now_rows)
    last = month_of(last_cfg or cfg, last_rows)[0] if last_rows is not None else None
    return guards.check(cfg, SEPTEMBER, now, last, attributed, contracted)


USUAL = [("alpha-hub", "100"), ("shared", "200", [("ns", "beta")]), ("gamma-hub", "300"), ("staging", "5")]


def test_a_month_like_the_last_has_no_finding():
    cfg = config(RULES)
    assert findings(cfg, USUAL, USUAL) == ()
    assert findings(cfg, USUAL, None) == ()


def test_a_typo_in_a_project_is_found_three_ways_with_the_right_spelling():
    cfg = config([RULES[0] | {"match": {"gcp_project": "alpah-hub"}}] + RULES[1:])
    found = findings(cfg, USUAL, USUAL, last_cfg=config(RULES))
    assert [f.key for f in found] == ["unattributed:USD", "rule-unmatched:alpha", "cost-zero:alpha"]
    unattributed, rule, zero = (f.message for f in found)
    assert unattributed == ("unattributed cost 100.00 USD (16.53% of the sources' 605.00 USD) is above "
                            "guards.max_unattributed (at most 100.00 USD and 1%); most of it: Google Cloud project "
                            "alpha-hub 100.00 USD")
    assert rule == ("attribution[0] (community alpha: Google Cloud project alpah-hub) matched no cost in 2022-09; in "
                    "2022-08 it matched 100.00 USD; last month's rule was attribution[0] (community alpha: Google "
                    "Cloud project alpha-hub); did you mean 'alpha-hub', whose cost is unattributed?")
    assert zero == ("community alpha is under contract but its cloud cost fell to zero in 2022-09 (it was 100.00 USD "
                    "in 2022-08); check its attribution rules")


def test_a_rule_that_stopped_matching_with_its_conditions_unchanged_shows_no_earlier_spelling():
    cfg = config(RULES)
    found = findings(cfg, USUAL[1:], USUAL, contracted=())
    assert [f.key for f in found] == ["rule-unmatched:alpha"]
    message = found[-1].message
    assert message == "attribution[0] (community alpha: Google Cloud project alpha-hub) matched no cost in 2022-09; " \
                      "in 2022-08 it matched 100.00 USD"


def test_without_a_record_of_last_month_only_community_rules_under_contract_are_findings():
    cfg = config(RULES)
    quiet = [("alpha-hub", "100")]  # beta, gamma and the staging rule matched nothing
    assert [f.key for f in findings(cfg, quiet, None)] == ["rule-unmatched:beta", "rule-unmatched:gamma"]
    assert [f.key for f in findings(cfg, quiet, None, contracted=("alpha", "beta"))] == ["rule-unmatched:beta"]
    assert "the ledger has no record of 2022-08 to compare with" in findings(cfg, quiet, None)[0].message


def test_a_rule_that_matched_nothing_last_month_either_is_no_finding():
    cfg = config(RULES)
    quiet = [("alpha-hub", "100"), ("shared", "200", [("ns", "beta")]), ("gamma-hub", "300")]
    assert findings(cfg, quiet, quiet) == ()
    assert [f.key for f in findings(cfg, quiet, USUAL)] == ["rule-unmatched:absorbed"]


@pytest.mark.parametrize("loose, limits, found", [
    ("99.99", {}, True),                                    # under 100 USD, but 14% of the total: the percent finds it
    ("5", {"max_unattributed": {"percent": 1, "amount": None}}, False),     # 0.8%
    ("7", {"max_unattributed": {"percent": 1, "amount": None}}, True),      # 1.1%
    ("5", {"max_unattributed": {"percent": None, "amount": 100}}, False),
    ("150", {"max_unattributed": {"percent": None, "amount": 100}}, True),
    ("150", {"max_unattributed": {"percent": 50, "amount": 1000}}, False),
    ("150", {"max_unattributed": {"percent": None, "amount": None}}, False),
    ("-150", {"max_unattributed": {"percent": None, "amount": 100}}, True),   # an unattributed credit is lost too
])
def test_unattributed_cost_is_checked_against_the_amount_and_the_percent(loose, limits, found):
    cfg = config(RULES, limits)
    keys = [f.key for f in findings(cfg, USUAL + [("stray", loose)], USUAL)]
    assert keys == (["unattributed:USD"] if found else [])


@pytest.mark.parametrize("now, limit, found", [
    ("150", None, False), ("150", 50, False), ("150.01", 50, True), ("49.99", 50, True), ("50", 50, False),
    ("1000", 500, True), ("0.01", 99.98, True),
])
def test_a_change_above_max_change_percent_either_way_is_a_finding(now, limit, found):
    cfg = config(RULES, {"max_change_percent": Decimal(str(limit)) if limit is not None else None,
                         "min_change_amount": None, "max_unattributed": {"amount": None, "percent": None}})
    rows = [("alpha-hub", now)] + USUAL[1:]
    keys = [f.key for f in findings(cfg, rows, USUAL)]
    assert keys == (["cost-change:alpha"] if found else [])
    if found:
        message = findings(cfg, rows, USUAL)[0].message
        assert message.startswith("community alpha's cloud cost changed by ")
        assert "100.00 USD in 2022-08" in message


def test_a_change_smaller_than_min_change_amount_is_no_finding():
    cfg = config(RULES, {"max_unattributed": {"amount": None, "percent": None}})  # default: 50%, 100.00
    assert findings(cfg, [("alpha-hub", "199.99")] + USUAL[1:], USUAL) == ()
    assert [f.key for f in findings(cfg, [("alpha-hub", "200.01")] + USUAL[1:], USUAL)] == ["cost-change:alpha"]
    assert "(guards.max_change_percent is 50, min_change_amount 100)" in findings(
        cfg, [("alpha-hub", "200.01")] + USUAL[1:], USUAL)[0].message


def test_unattributed_cost_is_measured_by_size_so_opposite_amounts_do_not_hide_a_loss():
    cfg = config(RULES)
    rows = USUAL + [("alpah-hub", "1600"), ("stray-adjustment", "-1550")]
    found = findings(cfg, rows, USUAL)
    assert [f.key for f in found] == ["unattributed:USD"]
    assert found[0].message.startswith("unattributed cost 3,150.00 USD, 50.00 USD after credits (")
    assert "most of it: Google Cloud project alpah-hub 1,600.00 USD, Google Cloud project stray-adjustment " \
           "1,550.00 USD" in found[0].message


def test_unattributed_cost_covered_by_credits_still_counts_its_cost():
    cfg = config(RULES)
    built = [cost_row(account=r[0], cost=r[1], labels=r[2] if len(r) > 2 else ()) for r in USUAL]
    built.append(cost_row(account="alpah-hub", cost="500", credits=[("PROMOTION", "-500")]))
    attributed = attribution.attribute(built, cfg.attribution)
    totals = [ReconciliationRow("gcp", "BA-1", "2022-09", "USD", Decimal(605), *([Decimal(0)] * 5))]
    found = guards.check(cfg, SEPTEMBER, guards.figures(cfg, attributed, (), totals), None, attributed, ["alpha"])
    assert [f.key for f in found] == ["unattributed:USD"]
    assert found[0].message.startswith("unattributed cost 500.00 USD, 0.00 USD after credits (82.64% of")


@pytest.mark.parametrize("rule, hint", [
    ({"community": "beta", "match": {"gcp_project": "shared", "gcp_label": {"ns": "bta"}}}, "ns 'beta'"),
    ({"community": "beta", "match": {"gcp_project": "sharde", "gcp_label": {"ns": "beta"}}}, "'shared'"),
    ({"community": "beta", "match": {"gcp_project": "shared", "gcp_label": {"ns": "zzzzzz"}}}, None),
])
def test_the_spelling_hint_names_the_condition_no_unattributed_row_meets(rule, hint):
    cfg = config([RULES[0], rule, RULES[2], RULES[3]])
    found = findings(cfg, USUAL, USUAL, last_cfg=config(RULES))
    unmatched = next(f for f in found if f.kind == "rule-unmatched")
    if hint:
        assert unmatched.message.endswith(f"; did you mean {hint}, whose cost is unattributed?")
    else:
        assert "did you mean" not in unmatched.message


def test_a_community_not_under_contract_is_not_compared():
    cfg = config(RULES)
    rows = [("alpha-hub", "500")] + USUAL[1:]
    assert findings(cfg, rows, USUAL, contracted=("beta", "gamma")) == ()


def test_allow_takes_kinds_or_kind_and_subject_and_names_what_it_did_not_use():
    found = (guards.Finding("cost-zero", "alpha", "a"), guards.Finding("cost-change", "beta", "b"),
             guards.Finding("unattributed", "USD", "c"))
    stopping, accepted, unused = guards.allowed(found, ["cost-zero:alpha", "unattributed", "cost-change:gamma"])
    assert [f.key for f in stopping] == ["cost-change:beta"]
    assert [f.key for f in accepted] == ["cost-zero:alpha", "unattributed:USD"]
    assert unused == ("cost-change:gamma",)
    with pytest.raises(UsageError, match="--allow 'cost-chnage': not a kind of finding"):
        guards.allowed(found, ["cost-chnage"])


def test_rules_that_can_never_match_are_named():
    cfg = config([
        {"community": "alpha", "match": {"gcp_project": ["alpha-hub", "shared"]}},
        {"community": "beta", "match": {"gcp_project": "shared", "gcp_label": {"ns": "beta"}}},   # taken by [0]
        {"community": "gamma", "match": {"gcp_label": {"ns": "gamma"}}},                          # not covered
        {"community": "gamma", "match": {"gcp_project": "gamma-hub", "gcp_label": {"ns": ["gamma", None]}}},
        {"absorbed": "x", "match": {"gcp_project": "gamma-hub", "gcp_label": {"ns": "gamma"}}},   # taken by [2]
        {"community": "beta", "match": {"aws_account": "222222222222"}},                          # no AWS source
    ])
    assert guards.never_match(cfg) == (
        "attribution[1] (community beta: Google Cloud project shared where ns is beta) can never match: every cost "
        "it matches is taken first by attribution[0]",
        "attribution[4] (absorbed x: Google Cloud project gamma-hub where ns is gamma) can never match: every cost "
        "it matches is taken first by attribution[2]",
        "attribution[5] (community beta: AWS account 222222222222) can never match: no source reads Amazon Web "
        "Services costs",
    )
    assert guards.never_match(config(RULES)) == ()


def test_a_rules_subject_survives_rules_added_for_other_targets():
    before = guards.rule_subjects(config(RULES).attribution)
    after = guards.rule_subjects(config([RULES[3], RULES[2], {"community": "gamma", "match": {"gcp_project": "g2"}},
                                         RULES[0], RULES[1]]).attribution)
    assert before == ["rule:community:alpha#1", "rule:community:beta#1", "rule:community:gamma#1", "rule:absorbed:staging#1"]
    assert after == ["rule:absorbed:staging#1", "rule:community:gamma#1", "rule:community:gamma#2",
                     "rule:community:alpha#1", "rule:community:beta#1"]


# End to end on the demo: a typo in one project id.

def billing(*args):
    return CliRunner().invoke(main, list(args))


def typo(own_demo):
    path = own_demo / "billing.yaml"
    text = path.read_text()
    assert text.count("gcp_project: callysto-hub}") == 1
    path.write_text(text.replace("gcp_project: callysto-hub}", "gcp_project: calysto-hub}"))
    return str(path)


def snapshot(folder):
    """Every path under ``folder`` and its bytes, but the lock files (a run takes its month's lock)."""
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else b"")
                  for p in folder.rglob("*") if ".locks" not in p.parts) if folder.exists() else []


def test_a_typo_in_the_demo_stops_the_run_naming_the_rule_and_the_community(own_demo):
    config_path = str(own_demo / "billing.yaml")
    assert billing("run", "--month", "2022-08", "--config", config_path).exit_code == 0
    before = snapshot(own_demo / "out")
    engine = ledger.open_ledger(ledger.ledger_url(""), "test")
    recorded = ledger.status(engine, None)
    typo(own_demo)
    result = billing("run", "--month", "2022-09", "--config", config_path, "-q")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: 3 finding(s) stop the run of 2022-09: nothing was written or recorded.")
    assert lines[1].startswith("  unattributed:USD: unattributed cost 1,792.49 USD, 1,605.23 USD after credits")
    assert lines[2] == ("  rule-unmatched:callysto: attribution[4] (community callysto: Google Cloud project "
                        "calysto-hub) matched no cost in 2022-09; in 2022-08 it matched 1,624.91 USD; last month's "
                        "rule was attribution[4] (community callysto: Google Cloud project callysto-hub); did you "
                        "mean 'callysto-hub', whose cost is unattributed?")
    assert lines[3].startswith("  cost-zero:callysto: community callysto is under contract but its cloud cost fell")
    assert lines[4].startswith("summary: error: billing run 2022-09: failed with exit code 1")
    assert snapshot(own_demo / "out") == before
    assert ledger.status(engine, None) == recorded and ledger.figures_of(engine, SEPTEMBER) is None

    checked = billing("check-config", "--month", "2022-09", "--config", config_path, "-q")
    assert checked.exit_code == 1
    said = checked.stderr.splitlines()
    at = said.index(f"Error: {config_path} on 2022-09's data: 3 guard finding(s), 0 rule(s) that can never match "
                    "(nothing was written)")
    assert said[at + 1:] == lines[1:4]
    assert snapshot(own_demo / "out") == before and ledger.status(engine, None) == recorded

    allowed = billing("run", "--month", "2022-09", "--config", config_path, "--allow", "unattributed",
                      "--allow", "rule-unmatched:callysto", "--allow", "cost-zero:callysto")
    assert allowed.exit_code == 0, allowed.output
    assert [(e.change, e.detail.split(":")[0]) for e in ledger.events_of(engine, SEPTEMBER)] == [
        ("allowed", "unattributed"), ("allowed", "rule-unmatched"), ("allowed", "cost-zero")]
    engine.dispose()


def test_check_config_on_a_fresh_setup_creates_no_ledger_and_finds_the_typo(own_demo, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "ledger.sqlite"
    monkeypatch.setenv("BILLING_LEDGER_URL", f"sqlite:///{missing}")
    config_path = typo(own_demo)
    result = billing("check-config", "--month", "2022-09", "--config", config_path, "--log-format", "json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stderr.splitlines()]
    error = next(r for r in records if r["level"] == "error")
    assert error["message"].endswith("the ledger has no record of 2022-08, so changes since then were not checked")
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in error["problems"]] == [
        "unattributed:USD", "rule-unmatched:callysto"]
    assert not missing.exists() and not missing.parent.exists()
    assert not (own_demo / "out").exists()


def test_check_config_on_a_month_not_begun_is_a_usage_error_and_reads_nothing(own_demo):
    result = billing("check-config", "--month", "2022-12", "--today", "2022-11-20", "--config",
                     str(own_demo / "billing.yaml"))
    assert result.exit_code == 2
    assert said(result) == ("Error: 2022-12 has not begun (today is 2022-11-20, UTC); give a month that has, or "
                            "--month last\n")


def test_check_config_reports_rules_that_can_never_match(own_demo):
    path = own_demo / "billing.yaml"
    path.write_text(path.read_text().replace(
        "  - community: callysto\n", "  - community: temple\n    match: {gcp_project: [callysto-hub, x-project]}\n"
        "  - community: callysto\n"))
    result = billing("check-config", "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: 1 attribution rule(s) can never match",
        "  attribution[5] (community callysto: Google Cloud project callysto-hub) can never match: every cost it "
        "matches is taken first by attribution[4]"]

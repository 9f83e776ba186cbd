from billing.attribution import attribute, describe, scope
from billing.records import UNATTRIBUTED, Bucket

from builders import cost_row, rule

NS = "k8s-namespace"
TAG = "2i2c:hub-name"

RULES = [
    rule("paleohack", gcp_project="shared", gcp_label={NS: "paleohack"}),
    rule("temple", gcp_project=["temple-hub", "temple-dev"]),
    rule("everyone-on-shared", gcp_project="shared", gcp_label={NS: ["a", "b"]}),
    rule("ciroh", aws_account="222222222222"),
    rule("lis", aws_account="333333333333", aws_tag={TAG: "lis"}),
]


def buckets(rows):
    return [(a.bucket, a.rule) for a in attribute(rows, RULES)]


def test_label_within_project():
    rows = [cost_row(account="shared", labels=[(NS, "paleohack")]),
            cost_row(account="other", labels=[(NS, "paleohack")]),
            cost_row(account="shared", labels=[(NS, "b")])]
    assert buckets(rows) == [(Bucket("community", "paleohack"), 0), (UNATTRIBUTED, None),
                             (Bucket("community", "everyone-on-shared"), 2)]


def test_project_lists_and_providers_do_not_mix():
    rows = [cost_row(account="temple-dev"),
            cost_row(provider="aws", account="temple-hub"),
            cost_row(provider="gcp", account="222222222222")]
    assert buckets(rows) == [(Bucket("community", "temple"), 1), (UNATTRIBUTED, None), (UNATTRIBUTED, None)]


def test_aws_account_and_tag():
    rows = [cost_row(provider="aws", account="222222222222", labels=[(TAG, "lis")]),
            cost_row(provider="aws", account="333333333333", labels=[(TAG, "lis")]),
            cost_row(provider="aws", account="333333333333")]  # untagged
    assert buckets(rows) == [(Bucket("community", "ciroh"), 3), (Bucket("community", "lis"), 4),
                             (UNATTRIBUTED, None)]


def test_first_matching_rule_wins():
    rules = [rule("first", gcp_project="p"), rule("second", gcp_project="p", gcp_label={NS: "x"})]
    [item] = attribute([cost_row(account="p", labels=[(NS, "x")])], rules)
    assert item.bucket == Bucket("community", "first") and item.rule == 0


def test_every_row_lands_in_exactly_one_bucket_in_order():
    rows = [cost_row(account=f"p{i}", cost=str(i)) for i in range(20)] + [
        cost_row(account="shared", labels=[(NS, "paleohack")])]
    attributed = attribute(rows, RULES)
    assert [a.row for a in attributed] == rows


def test_describe_says_what_a_rule_covers():
    assert describe(RULES[0].match) == "Google Cloud project shared where k8s-namespace is paleohack"
    assert describe(RULES[1].match) == "Google Cloud project one of temple-hub, temple-dev"
    assert describe(RULES[4].match) == "AWS account 333333333333 where 2i2c:hub-name is lis"


def test_scope_names_each_rule_that_matched_once_in_rule_order():
    rows = [cost_row(provider="aws", account="333333333333", labels=[(TAG, "lis")]),
            cost_row(account="shared", labels=[(NS, "paleohack")]),
            cost_row(account="shared", labels=[(NS, "paleohack")])]
    assert scope(attribute(rows, RULES), RULES) == (
        "Google Cloud project shared where k8s-namespace is paleohack",
        "AWS account 333333333333 where 2i2c:hub-name is lis")


def test_gcp_project_null_matches_the_rows_without_a_project():
    rules = [rule("ours", gcp_project=None), rule("mixed", gcp_project=[None, "p"])]
    rounding = cost_row(account="", charge_type="rounding", cost="0.01")
    in_p, elsewhere = cost_row(account="p"), cost_row(account="q")
    assert [(a.bucket, a.rule) for a in attribute([rounding, in_p, elsewhere], rules)] == [
        (Bucket("community", "ours"), 0), (Bucket("community", "mixed"), 1), (UNATTRIBUTED, None)]
    assert [a.rule for a in attribute([rounding, cost_row(provider="aws", account="")], rules[1:])] == [0, None]


def test_describe_names_costs_without_a_project_as_provider_rounding():
    assert describe(rule("x", gcp_project=None).match) == "Google Cloud costs without a project (provider rounding)"
    assert describe(rule("x", gcp_project=[None, "p"]).match) == (
        "Google Cloud project p and costs without a project (provider rounding)")


def test_provider_rounding_rows_no_rule_matches_are_their_own_bucket_not_unattributed():
    rounding = cost_row(account="", service="Invoice", charge_type="rounding", cost="-0.00349")
    untagged = cost_row(account="")
    assert buckets([rounding, untagged]) == [(Bucket("rounding"), None), (UNATTRIBUTED, None)]


def test_a_rule_that_matches_a_rounding_row_still_wins():
    rounding = cost_row(account="", service="Invoice", charge_type="rounding", cost="-0.00349")
    [item] = attribute([rounding], [rule("hub", gcp_label={NS: None})])  # rows without a namespace
    assert (item.bucket, item.rule) == (Bucket("community", "hub"), 0)


def test_general_conditions_match_rows_of_any_source_by_provider_sub_account_and_tag():
    rules = [rule("azure-hub", provider="azure", sub_account="/subscriptions/a", tag={"hub": "x"}),
             rule("any-hub-y", tag={"hub": "y"}),
             rule("gcp-or-aws", provider=["gcp", "aws"], sub_account="shared"),
             rule("oci", provider="oci", sub_account=None)]
    rows = [cost_row(provider="azure", account="/subscriptions/a", labels=[("hub", "x")]),
            cost_row(provider="azure", account="/subscriptions/b", labels=[("hub", "x")]),
            cost_row(provider="gcp", account="p", labels=[("hub", "y")]),
            cost_row(provider="aws", account="shared"),
            cost_row(provider="azure", account="shared"),
            cost_row(provider="oci", account=""),
            cost_row(provider="oci", account="tenancy")]
    assert [(a.bucket.name, a.rule) for a in attribute(rows, rules)] == [
        ("azure-hub", 0), ("", None), ("any-hub-y", 1), ("gcp-or-aws", 2), ("", None), ("oci", 3), ("", None)]


def test_gcp_project_is_provider_gcp_with_sub_account():
    row = cost_row(account="p", labels=[(NS, "a")])
    for match in ({"gcp_project": "p", "gcp_label": {NS: "a"}}, {"provider": "gcp", "sub_account": "p", "tag": {NS: "a"}}):
        gcp, aws = attribute([row, cost_row(provider="aws", account="p", labels=[(NS, "a")])], [rule("c", **match)])
        assert (gcp.bucket, aws.bucket) == (Bucket("community", "c"), UNATTRIBUTED)
    assert describe(rule("c", provider="gcp", sub_account="p").match) == "Google Cloud project p"
    assert describe(rule("c", provider="azure", tag={"hub": "x"}).match) == "Microsoft Azure costs where hub is x"
    assert describe(rule("c", tag={"hub": ["x", None]}).match) == "Cloud costs where hub is one of x, (none)"
    assert describe(rule("c", provider="oci", sub_account=None).match) == "Oracle Cloud Infrastructure costs without a sub account"

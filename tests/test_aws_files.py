"""Saved AWS Cost Explorer responses become cost rows, or a DataError that names the problem."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from billing.collectors import aws_files
from billing.collectors.aws_files import ALL_SERVICES
from billing.config import AwsCostExplorerFiles
from billing.errors import DataError, SourceError
from billing.records import CostRow, Month, SourceTotal

MONTH = Month(2022, 9)
PAYER = "111111111111"
SHARED = "333333333333"
WHOLE_MONTH = {"Start": "2022-09-01", "End": "2022-10-01"}
BY_ACCOUNT_AND_HUB = [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                      {"Type": "TAG", "Key": "2i2c:hub-name"}]
BY_RECORD_TYPE_AND_ACCOUNT = [{"Type": "DIMENSION", "Key": "RECORD_TYPE"},
                              {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]


def group(keys, amount, unit="USD", metric="UnblendedCost"):
    return {"Keys": list(keys), "Metrics": {metric: {"Amount": amount, "Unit": unit}}}


def page(*groups, definitions=BY_ACCOUNT_AND_HUB, token=None, period=WHOLE_MONTH, estimated=False):
    """One GetCostAndUsage response page, shaped like demo/data/aws/2022-09/page-1.json."""
    body = {"GroupDefinitions": definitions,
            "ResultsByTime": [{"TimePeriod": period, "Total": {}, "Groups": list(groups),
                               "Estimated": estimated}]}
    if token:
        body["NextPageToken"] = token
    return body


def save(root, *pages, request=""):
    """Write the pages as <root>/2022-09/[request/]page-1.json, page-2.json, ..."""
    folder = root / "2022-09" / request
    folder.mkdir(parents=True, exist_ok=True)
    for number, body in enumerate(pages, start=1):
        with open(folder / f"page-{number}.json", "w", encoding="utf-8") as file:
            json.dump(body, file)


def source(tmp_path, **options):
    return AwsCostExplorerFiles(type="aws-cost-explorer-files", id="aws", path=tmp_path,
                                payer_account=PAYER, **options)


def collect(src):
    return aws_files.collect(src, MONTH, label_keys=())


def data_error(src) -> str:
    with pytest.raises(DataError) as info:
        collect(src)
    assert "\n" not in info.value.message
    return info.value.message


# --- grouped by linked account and hub tag -----------------------------------------------------

def test_a_tagged_group_is_a_labelled_row_and_an_untagged_group_has_no_label(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$lis"], "1834.2231849812"),
                        group([SHARED, "2i2c:hub-name$"], "134.1739163819")))

    result = collect(source(tmp_path))

    assert result.rows == (
        CostRow("aws", PAYER, "2022-09", SHARED, ALL_SERVICES, "usage", (), "USD",
                Decimal("134.1739163819"), (), "aws"),
        CostRow("aws", PAYER, "2022-09", SHARED, ALL_SERVICES, "usage", (("2i2c:hub-name", "lis"),),
                "USD", Decimal("1834.2231849812"), (), "aws"),
    )
    assert result.label_keys == frozenset({"2i2c:hub-name"})
    assert result.totals == (SourceTotal("aws", PAYER, "2022-09", "USD", Decimal("1968.3971013631")),)
    assert result.warnings == ()


def test_every_group_of_every_page_in_the_chain_is_read_and_totalled(tmp_path):
    save(tmp_path,
         page(group([PAYER, "2i2c:hub-name$"], "51.8233384570"),
              group(["222222222222", "2i2c:hub-name$ciroh"], "227.9681174809"), token="a"),
         page(group([SHARED, "2i2c:hub-name$lis"], "1834.2231849812"), token="b"),
         page(group([SHARED, "2i2c:hub-name$oceanhackweek"], "0.0000000001"),
              group([SHARED, "2i2c:hub-name$"], "134.1739163819")))

    result = collect(source(tmp_path))

    assert sorted((r.project_or_account, r.labels, r.cost) for r in result.rows) == [
        (PAYER, (), Decimal("51.8233384570")),
        ("222222222222", (("2i2c:hub-name", "ciroh"),), Decimal("227.9681174809")),
        (SHARED, (), Decimal("134.1739163819")),
        (SHARED, (("2i2c:hub-name", "lis"),), Decimal("1834.2231849812")),
        (SHARED, (("2i2c:hub-name", "oceanhackweek"),), Decimal("0.0000000001")),
    ]
    # 51.8233384570 + 227.9681174809 + 1834.2231849812 + 0.0000000001 + 134.1739163819
    assert result.totals == (SourceTotal("aws", PAYER, "2022-09", "USD", Decimal("2248.1885573011")),)


def test_pages_are_read_in_natural_order_so_page_10_comes_after_page_2(tmp_path):
    # Nine pages pointing on, and a tenth that ends the chain: in plain text order page-10.json
    # would be second, and the chain check would fail on it.
    pages = [page(group([SHARED, f"2i2c:hub-name$hub{n}"], f"{n}.01"), token=f"token-{n}") for n in range(1, 10)]
    save(tmp_path, *pages, page(group([SHARED, "2i2c:hub-name$hub10"], "10.01")))
    src = source(tmp_path)

    chain = aws_files.read_chain(tmp_path / str(MONTH), MONTH)
    assert [Path(page.name).name for page in chain.pages] == [f"page-{n}.json" for n in range(1, 11)]
    result = collect(src)
    assert len(result.rows) == 10
    assert result.totals[0].total == Decimal("55.10")  # 1 + 2 + ... + 10 = 55, plus 10 x 0.01


# --- pages that are not one response chain for the whole month -----------------------------------

def test_a_last_page_with_a_next_page_token_means_a_page_is_missing(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$"], "1.00"), token="a"),
         page(group([SHARED, "2i2c:hub-name$lis"], "2.00"), token="b"))
    message = data_error(source(tmp_path))
    assert "page-2.json: the last saved page has a NextPageToken" in message
    assert "page of 2022-09 is missing" in message


def test_a_middle_page_without_a_next_page_token_breaks_the_chain(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$"], "1.00"), token="a"),
         page(group([SHARED, "2i2c:hub-name$lis"], "2.00")),
         page(group([SHARED, "2i2c:hub-name$ciroh"], "3.00")))
    message = data_error(source(tmp_path))
    assert "page-2.json: page 2 of 3 has no NextPageToken" in message
    assert "not one response chain" in message


def test_two_pages_with_the_same_next_page_token_are_a_page_saved_twice(tmp_path):
    first = page(group([SHARED, "2i2c:hub-name$"], "1.00"), token="a")
    save(tmp_path, first, first, page(group([SHARED, "2i2c:hub-name$lis"], "2.00")))
    message = data_error(source(tmp_path))
    assert "page-2.json: NextPageToken repeats an earlier page's" in message
    assert "saved twice" in message


def test_pages_grouped_differently_come_from_different_requests(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$"], "1.00"), token="a"),
         page(group(["Usage", SHARED], "2.00"), definitions=BY_RECORD_TYPE_AND_ACCOUNT))
    message = data_error(source(tmp_path))
    assert "page-2.json: GroupDefinitions differ from page-1.json" in message


@pytest.mark.parametrize("start, end", [("2022-09-01", "2022-09-30"), ("2022-08-01", "2022-09-01")])
def test_a_period_other_than_the_whole_month_is_refused(tmp_path, start, end):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$"], "1.00"), period={"Start": start, "End": end}))
    message = data_error(source(tmp_path))
    assert f"page-1.json: covers {start} to {end}, not 2022-09 (2022-09-01 to 2022-10-01, End exclusive)" in message


# --- estimated months ---------------------------------------------------------------------------

def test_an_estimated_month_is_refused_unless_accepted(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$lis"], "12.34"), estimated=True))
    message = data_error(source(tmp_path))
    assert "marks 2022-09 as Estimated" in message
    assert "accept_estimated: true" in message


def test_an_accepted_estimated_month_gives_its_rows_and_one_provisional_warning(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$lis"], "12.34"), estimated=True))

    result = collect(source(tmp_path, accept_estimated=True))

    assert [(r.labels, r.cost) for r in result.rows] == [((("2i2c:hub-name", "lis"),), Decimal("12.34"))]
    assert len(result.warnings) == 1
    assert "2022-09" in result.warnings[0] and "provisional" in result.warnings[0]


# --- grouped by record type ---------------------------------------------------------------------

def test_record_types_become_charge_types_and_credits_are_credits(tmp_path):
    save(tmp_path, page(group(["Usage", SHARED], "100.00"), group(["Credit", SHARED], "-12.50"),
                        group(["Tax", SHARED], "8.25"), group(["Refund", SHARED], "-3.00"),
                        definitions=BY_RECORD_TYPE_AND_ACCOUNT))

    rows = {row.charge_type: row for row in collect(source(tmp_path)).rows}

    assert sorted(rows) == ["credit", "refund", "tax", "usage"]
    usage, credit, tax, refund = rows["usage"], rows["credit"], rows["tax"], rows["refund"]
    assert (usage.cost, usage.credits, usage.project_or_account) == (Decimal("100.00"), (), SHARED)
    assert (credit.cost, credit.credits) == (Decimal("0"), (("Credit", Decimal("-12.50")),))
    assert credit.net == Decimal("-12.50")
    assert (tax.cost, tax.credits) == (Decimal("8.25"), ())
    assert (refund.cost, refund.credits, refund.net) == (Decimal("0"), (("Refund", Decimal("-3.00")),),
                                                         Decimal("-3.00"))
    # 100.00 - 12.50 + 8.25 - 3.00
    assert collect(source(tmp_path)).totals[0].total == Decimal("92.75")


# --- ungrouped responses and metrics ------------------------------------------------------------

def test_an_ungrouped_response_is_one_row_on_the_payer_account(tmp_path):
    body = {"ResultsByTime": [{"TimePeriod": WHOLE_MONTH, "Groups": [], "Estimated": False,
                               "Total": {"UnblendedCost": {"Amount": "4321.0987654321", "Unit": "USD"}}}]}
    save(tmp_path, body)

    result = collect(source(tmp_path))

    assert result.rows == (CostRow("aws", PAYER, "2022-09", PAYER, ALL_SERVICES, "usage", (), "USD",
                                   Decimal("4321.0987654321"), (), "aws"),)
    assert result.label_keys == frozenset()


def test_the_configured_metric_is_the_one_read(tmp_path):
    both = group([SHARED, "2i2c:hub-name$lis"], "20.00")
    both["Metrics"]["NetUnblendedCost"] = {"Amount": "17.75", "Unit": "USD"}
    save(tmp_path, page(both))

    rows = collect(source(tmp_path, metric="NetUnblendedCost")).rows

    assert [row.cost for row in rows] == [Decimal("17.75")]


def test_a_page_without_the_configured_metric_is_refused_naming_the_metric(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$lis"], "20.00")))
    message = data_error(source(tmp_path, metric="NetUnblendedCost"))
    assert "page-1.json: no NetUnblendedCost amount" in message
    assert "metrics present: UnblendedCost" in message


# --- missing and unreadable files ---------------------------------------------------------------

def test_a_missing_month_folder_names_the_month(tmp_path):
    (tmp_path / "2022-08").mkdir()
    message = data_error(source(tmp_path))
    assert "no saved Cost Explorer responses for 2022-09" in message


def test_a_missing_source_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError) as info:
        collect(source(tmp_path / "nowhere"))
    assert info.value.message == f"source 'aws': folder {tmp_path / 'nowhere'} not found"


def test_a_file_that_is_not_json_is_named(tmp_path):
    (tmp_path / "2022-09").mkdir()
    (tmp_path / "2022-09" / "page-1.json").write_text("<html>Rate exceeded</html>", encoding="utf-8")
    message = data_error(source(tmp_path))
    assert f"{tmp_path / '2022-09' / 'page-1.json'}: not a readable JSON response" in message


# --- the two requests the aws-cost-explorer source makes: usage by tag, and every record type ---

CIROH = "222222222222"


def save_two_requests(root, usage_amounts=("100.10", "20.20"), ciroh_usage="120.30"):
    save(root, page(group([CIROH, "2i2c:hub-name$"], usage_amounts[0]),
                    group([CIROH, "2i2c:hub-name$ciroh"], usage_amounts[1])), request="usage")
    save(root, page(group(["Credit", CIROH], "-50.00"), group(["Tax", CIROH], "7.25"),
                    definitions=BY_RECORD_TYPE_AND_ACCOUNT, token="t"),
         page(group(["Support fee", PAYER], "29.00"), group(["Usage", CIROH], ciroh_usage),
              definitions=BY_RECORD_TYPE_AND_ACCOUNT), request="record-types")


def test_usage_comes_by_tag_and_everything_else_by_record_type(tmp_path):
    save_two_requests(tmp_path)
    result = collect(source(tmp_path))
    assert [(r.project_or_account, r.service, r.charge_type, r.labels, r.cost, r.credits) for r in result.rows] == [
        (PAYER, "Support fee", "other", (), Decimal("29.00"), ()),
        (CIROH, ALL_SERVICES, "credit", (), Decimal(0), (("Credit", Decimal("-50.00")),)),
        (CIROH, ALL_SERVICES, "tax", (), Decimal("7.25"), ()),
        (CIROH, ALL_SERVICES, "usage", (), Decimal("100.10"), ()),
        (CIROH, ALL_SERVICES, "usage", (("2i2c:hub-name", "ciroh"),), Decimal("20.20"), ()),
    ]
    # the record-type request's sum: 120.30 - 50.00 + 7.25 + 29.00
    assert result.totals == (SourceTotal("aws", PAYER, "2022-09", "USD", Decimal("106.55")),)
    assert sum(r.net for r in result.rows) == result.totals[0].total
    assert result.label_keys == frozenset({"2i2c:hub-name"})


def test_requests_that_disagree_on_an_accounts_usage_are_refused(tmp_path):
    save_two_requests(tmp_path, ciroh_usage="120.31")
    assert data_error(source(tmp_path)).endswith(
        f"account {CIROH} has 120.31 of Usage by record type but 120.30 in the usage request; the two "
        "requests disagree (were they made at different times? fetch the month again)")


def test_the_record_type_request_must_group_by_record_type(tmp_path):
    save(tmp_path, page(group([CIROH, "2i2c:hub-name$ciroh"], "1.00")), request="usage")
    save(tmp_path, page(group([CIROH, "2i2c:hub-name$ciroh"], "1.00")), request="record-types")
    assert "the record-types request must group by RECORD_TYPE" in data_error(source(tmp_path))


def test_a_tag_no_cost_carries_points_at_cost_allocation_tag_activation(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$"], "5.00"), group([CIROH, "2i2c:hub-name$"], "1.00")))
    assert data_error(source(tmp_path)).endswith(
        "no cost in 2022-09 carries the tag '2i2c:hub-name' (every group is '2i2c:hub-name$'); is it "
        "activated as a cost allocation tag? Check with `billing aws check-tags`")


def test_one_payer_in_two_currencies_is_refused(tmp_path):
    save(tmp_path, page(group([SHARED, "2i2c:hub-name$lis"], "5.00"),
                        group([CIROH, "2i2c:hub-name$ciroh"], "1.00", unit="EUR")))
    assert data_error(source(tmp_path)) == (
        f"source 'aws': payer {PAYER} has 2022-09 costs in EUR and USD; one payer must bill in one currency")


# --- amounts: finite decimals of a believable size, or one line naming page, group and value -----

LIS = [SHARED, "2i2c:hub-name$lis"]


def save_with_amount(root, amount_json: str):
    """One page whose only group's Amount is written as this JSON text (a string, or a bare value)."""
    text = json.dumps(page(group(LIS, "@AMOUNT@"))).replace('"@AMOUNT@"', amount_json)
    (root / "2022-09").mkdir(parents=True, exist_ok=True)
    (root / "2022-09" / "page-1.json").write_text(text, encoding="utf-8")
    return root / "2022-09" / "page-1.json"


@pytest.mark.parametrize("amount_json, shown, problem", [
    ('"Infinity"', "'Infinity'", "is not a finite number"),
    ('"-Infinity"', "'-Infinity'", "is not a finite number"),
    ('"NaN"', "'NaN'", "is not a finite number"),
    ('"sNaN"', "'sNaN'", "is not a finite number"),
    ('"1e400"', "'1e400'", "is not a believable cost (10^13 or more in size)"),
    ('"-10000000000000"', "'-10000000000000'", "is not a believable cost (10^13 or more in size)"),
    # bare JSON values: Python's json module accepts NaN and Infinity, and would make floats of them
    ("NaN", "NaN", "is not a finite number"),
    ("Infinity", "Infinity", "is not a finite number"),
    ("-Infinity", "-Infinity", "is not a finite number"),
    ("1e400", "1E+400", "is not a believable cost (10^13 or more in size)"),
    ("1" + "0" * 5000, "1" + "0" * 36 + "...", "is not a believable cost (10^13 or more in size)"),
    # text Decimal() would take but no bill writes
    ('"1_000"', "'1_000'", "is not a number"),
    ('" 12"', "' 12'", "is not a number"),
    ('"\\u0661\\u0662"', "'\u0661\u0662'", "is not a number"),
    ('"12 USD"', "'12 USD'", "is not a number"),
    ('""', "''", "is not a number"),
    ("true", "True", "is not a number"),
    ("null", "None", "is not a number"),
])
def test_an_amount_that_is_not_a_finite_believable_number_is_named_with_its_group(tmp_path, amount_json,
                                                                                  shown, problem):
    path = save_with_amount(tmp_path, amount_json)
    assert data_error(source(tmp_path)) == (
        f"{path}: group ['{SHARED}', '2i2c:hub-name$lis']: UnblendedCost amount {shown} {problem}")


@pytest.mark.parametrize("amount_json, expected", [
    ('"9999999999999.9999999999"', Decimal("9999999999999.9999999999")),   # just under 10^13
    ('"-9999999999999.99"', Decimal("-9999999999999.99")),
    ('"1.5E-7"', Decimal("1.5E-7")),                                       # Cost Explorer writes tiny amounts so
    ("12", Decimal(12)),                                                   # bare numbers are read exactly,
    ("0.1000000000000000055511151231257827", Decimal("0.1000000000000000055511151231257827")),  # never as floats
])
def test_a_finite_amount_below_the_limit_is_read_exactly(tmp_path, amount_json, expected):
    save_with_amount(tmp_path, amount_json)
    [row] = collect(source(tmp_path)).rows
    assert row.cost == expected and str(row.cost) == str(expected)


def test_an_ungrouped_total_that_is_not_finite_is_named_as_the_total(tmp_path):
    body = {"ResultsByTime": [{"TimePeriod": WHOLE_MONTH, "Groups": [], "Estimated": False,
                               "Total": {"UnblendedCost": {"Amount": "NaN", "Unit": "USD"}}}]}
    save(tmp_path, body)
    assert data_error(source(tmp_path)) == (
        f"{tmp_path / '2022-09' / 'page-1.json'}: the Total: UnblendedCost amount 'NaN' is not a finite number")


# --- Estimated must be a JSON boolean ----------------------------------------------------------

@pytest.mark.parametrize("flag, shown", [("false", "'false'"), ("true", "'true'"), (0, "0"), (1, "1"),
                                         (None, "None")])
def test_an_estimated_flag_that_is_not_a_boolean_is_malformed_not_estimated(tmp_path, flag, shown):
    save(tmp_path, page(group(LIS, "12.34"), estimated=flag))
    assert data_error(source(tmp_path, accept_estimated=True)) == (
        f"{tmp_path / '2022-09' / 'page-1.json'}: Estimated is {shown}, not true or false, so whether 2022-09 "
        "is final cannot be told")


def test_a_result_without_an_estimated_flag_is_malformed(tmp_path):
    body = page(group(LIS, "12.34"))
    del body["ResultsByTime"][0]["Estimated"]
    save(tmp_path, body)
    assert data_error(source(tmp_path)) == (
        f"{tmp_path / '2022-09' / 'page-1.json'}: a result has no Estimated flag, so whether 2022-09 is final "
        "cannot be told")


# --- shapes that used to escape as tracebacks ---------------------------------------------------

def _reshaped(change):
    body = page(group(LIS, "1.00"))
    change(body)
    return body


@pytest.mark.parametrize("change, detail", [
    (lambda b: b.update(GroupDefinitions="LINKED_ACCOUNT"), "GroupDefinitions 'LINKED_ACCOUNT' is not a list"),
    (lambda b: b.update(GroupDefinitions=[{"Type": "TAG"}]), "is not a list of Type and Key"),
    (lambda b: b.update(ResultsByTime=["2022-09"]), "a result is '2022-09', not an object"),
    (lambda b: b["ResultsByTime"][0].update(TimePeriod=["2022-09-01"]), "TimePeriod ['2022-09-01'] is not an object"),
    (lambda b: b["ResultsByTime"][0].update(Groups={"Keys": []}), "Groups {'Keys': []} is not a list of objects"),
    (lambda b: b["ResultsByTime"][0]["Groups"][0].update(Keys=[3333, "2i2c:hub-name$"]),
     "group keys [Decimal('3333'), '2i2c:hub-name$'] are not a list of strings"),
    (lambda b: b["ResultsByTime"][0]["Groups"][0]["Metrics"]["UnblendedCost"].pop("Unit"),
     "the UnblendedCost Unit of group ['333333333333', '2i2c:hub-name$lis'] is None, not a currency code"),
    (lambda b: b.update(NextPageToken=7), "NextPageToken 7 is not a string"),
])
def test_a_malformed_page_is_one_line_naming_the_file(tmp_path, change, detail):
    save(tmp_path, _reshaped(change))
    message = data_error(source(tmp_path))
    assert message.startswith(f"{tmp_path / '2022-09' / 'page-1.json'}: not the shape of a GetCostAndUsage "
                              "response (")
    assert detail in message

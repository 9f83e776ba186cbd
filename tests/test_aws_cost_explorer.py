"""The Cost Explorer collector, through real botocore HTTP calls to moto (server mode) on 127.0.0.1."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing import atomic
from billing.cli import main
from billing.collectors import aws_cost_explorer, aws_files
from billing.config import AwsCostExplorer, AwsCostExplorerFiles
from billing.errors import Busy, DataError, SourceError, SourceUnavailable
from billing.records import Month

from aws_server import CostExplorerFront
from conftest import ROOT, said

SEPTEMBER = Month(2022, 9)
DEMO_AWS = ROOT / "demo" / "data" / "aws"
TAG = "2i2c:hub-name"


def demo_pages(month="2022-09") -> list[dict]:
    """The demo's saved responses of a month, in the order the collector requests them."""
    folder = DEMO_AWS / month
    return [json.loads(p.read_text()) for query in ("usage", "record-types")
            for p in sorted((folder / query).glob("page-*.json"))]


@pytest.fixture
def front(moto, monkeypatch):
    moto.reset()
    with CostExplorerFront(moto.url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CE", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield server


def ce_source(tmp_path, **changes) -> AwsCostExplorer:
    return AwsCostExplorer(**{
        "type": "aws-cost-explorer", "id": "aws-payer", "payer_account": "111111111111",
        "group_by": [{"type": "DIMENSION", "key": "LINKED_ACCOUNT"}, {"type": "TAG", "key": TAG}],
        "cache": tmp_path / "cache", "max_attempts": 3, **changes})


def saved_files_collection(month="2022-09"):
    source = AwsCostExplorerFiles(type="aws-cost-explorer-files", id="aws-payer", path=DEMO_AWS,
                                  payer_account="111111111111")
    return aws_files.collect(source, Month.parse(month), ())


def test_pages_of_both_requests_are_fetched_and_read_like_saved_responses(moto, front, tmp_path):
    moto.queue_results(*demo_pages())
    collection = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    expected = saved_files_collection()
    assert collection.rows == expected.rows and collection.totals == expected.totals
    assert any(r.charge_type == "credit" for r in collection.rows)           # record types kept apart
    assert any(r.labels == () and r.charge_type == "usage" for r in collection.rows)  # untagged key$
    folder = tmp_path / "cache" / "aws-payer" / "2022-09"
    assert collection.notes == (f"Cost Explorer: 4 paid requests (0.04 USD); responses saved in {folder}",)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json")) == [
        "record-types/page-1.json", "record-types/page-2.json", "record-types/request.json",
        "usage/page-1.json", "usage/page-2.json", "usage/request.json"]


def test_each_page_repeats_the_request_with_the_previous_pages_token(moto, front, tmp_path):
    moto.queue_results(*demo_pages())
    aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    usage, usage_2, record_types, record_types_2 = front.targets()
    assert usage["TimePeriod"] == {"Start": "2022-09-01", "End": "2022-10-01"}  # End exclusive
    assert usage["Granularity"] == "MONTHLY" and usage["Metrics"] == ["UnblendedCost"]
    assert usage["GroupBy"] == [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": TAG}]
    assert usage["Filter"]["Dimensions"]["Key"] == "RECORD_TYPE"
    assert "Usage" in usage["Filter"]["Dimensions"]["Values"]
    assert usage_2 == {**usage, "NextPageToken": demo_pages()[0]["NextPageToken"]}
    assert record_types["GroupBy"] == [{"Type": "DIMENSION", "Key": "RECORD_TYPE"},
                                       {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    assert "Filter" not in record_types and "NextPageToken" in record_types_2


def test_a_rerun_reuses_the_saved_responses_unless_refreshed(moto, front, tmp_path):
    moto.queue_results(*demo_pages())
    first = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    again = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert len(front.targets()) == 4
    assert again.rows == first.rows
    assert again.notes[0].startswith("Cost Explorer: reused the responses saved in")
    refreshed = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,), refresh=True)
    assert len(front.targets()) == 8 and refreshed.notes[0].startswith("Cost Explorer: 4 paid requests")


def estimated(pages):
    for page in pages:
        for result in page["ResultsByTime"]:
            result["Estimated"] = True
    return pages


def test_an_estimated_month_is_refused_not_saved_and_fetched_again_next_time(moto, front, tmp_path):
    moto.queue_results(*estimated(demo_pages()))
    with pytest.raises(DataError) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert error.value.message == (
        "source 'aws-payer': Cost Explorer marks 2022-09 as Estimated (not final); run again once the month has "
        "closed, or set accept_estimated: true for a provisional invoice")
    assert error.value.notes == ("aws-payer: Cost Explorer: 4 paid requests (0.04 USD) before the failure; "
                                 "nothing was saved",)
    assert not (tmp_path / "cache" / "aws-payer" / "2022-09").exists()
    provisional = aws_cost_explorer.collect(ce_source(tmp_path, accept_estimated=True), SEPTEMBER, (TAG,))
    assert provisional.warnings == ("2022-09 AWS costs are Estimated by Cost Explorer: invoices are provisional",)
    assert len(front.targets()) == 8
    aws_cost_explorer.collect(ce_source(tmp_path, accept_estimated=True), SEPTEMBER, (TAG,))
    assert len(front.targets()) == 12  # the saved month was provisional, so it was fetched again


def test_throttling_is_retried_with_backoff(moto, front, tmp_path):
    moto.queue_results(*demo_pages())
    front.fail("LimitExceededException", "Rate exceeded", times=2)
    collection = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert len(front.targets()) == 6 and collection.notes[0].startswith("Cost Explorer: 4 paid requests")


def test_throttling_that_persists_is_one_line_to_try_later(front, tmp_path):
    front.fail("LimitExceededException", "Rate exceeded", times=3)
    with pytest.raises(SourceUnavailable) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert error.value.message == ("source 'aws-payer': Cost Explorer kept throttling the requests "
                                   "(LimitExceededException) after 3 attempts; try again later")
    assert not (tmp_path / "cache" / "aws-payer" / "2022-09").exists()


@pytest.mark.parametrize("code, message, error_type, expected", [
    ("DataUnavailableException", "Data is not available.", DataError,
     "source 'aws-payer': Cost Explorer has no data for 2022-09 yet (DataUnavailableException); it becomes "
     "available within a day of usage"),
    ("AccessDeniedException", "User: arn:aws:iam::111111111111:user/ci is not authorized to perform: "
     "ce:GetCostAndUsage", SourceError,
     "source 'aws-payer': access denied by AWS (User: arn:aws:iam::111111111111:user/ci is not authorized to "
     "perform: ce:GetCostAndUsage); the credentials need the IAM action ce:GetCostAndUsage (and "
     "ce:ListCostAllocationTags for `billing aws check-tags`) in the payer account 111111111111"),
    ("ExpiredTokenException", "The security token included in the request is expired", SourceError,
     "source 'aws-payer': AWS credentials are expired or invalid (ExpiredTokenException: The security token "
     "included in the request is expired); refresh them, e.g. `aws sso login`, or new access keys"),
])
def test_errors_moto_cannot_produce_are_one_clear_line(front, tmp_path, code, message, error_type, expected):
    front.fail(code, message)
    with pytest.raises(error_type) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert error.value.message == expected


def test_no_credentials_says_where_to_get_them(front, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no AWS credentials found; set `profile:` in the source"):
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert front.requests == []


def test_an_unknown_tag_key_groups_everything_as_untagged_and_is_refused(moto, front, tmp_path):
    pages = demo_pages()
    for page in pages[:2]:
        for group in page["ResultsByTime"][0]["Groups"]:
            group["Keys"][1] = "2i2c:hub-nmae$"
        page["GroupDefinitions"][1]["Key"] = "2i2c:hub-nmae"
    moto.queue_results(*pages)
    source = ce_source(tmp_path, group_by=[{"type": "DIMENSION", "key": "LINKED_ACCOUNT"},
                                           {"type": "TAG", "key": "2i2c:hub-nmae"}])
    with pytest.raises(DataError, match=r"no cost in 2022-09 carries the tag '2i2c:hub-nmae'.*billing aws check-tags"):
        aws_cost_explorer.collect(source, SEPTEMBER, (TAG,))


def test_grouping_by_record_type_is_left_to_the_collector():
    with pytest.raises(ValueError, match="leave RECORD_TYPE out"):
        AwsCostExplorer(type="aws-cost-explorer", id="a", payer_account="111111111111",
                        group_by=[{"type": "DIMENSION", "key": "RECORD_TYPE"}])


# --- the command line ---------------------------------------------------------------------------

def ce_config(tmp_path) -> Path:
    """The demo config with its AWS source on Cost Explorer."""
    text = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/data/", str(ROOT / "demo" / "data") + "/")
    text = text.replace(
        f"    type: aws-cost-explorer-files\n    path: {DEMO_AWS}\n",
        "    type: aws-cost-explorer\n    group_by:\n      - {type: DIMENSION, key: LINKED_ACCOUNT}\n"
        f"      - {{type: TAG, key: \"{TAG}\"}}\n    cache: {tmp_path / 'cache'}\n")
    assert "aws-cost-explorer\n" in text
    (tmp_path / "ce.yaml").write_text(text)
    return tmp_path / "ce.yaml"


def test_check_tags_says_which_tags_are_active(front, tmp_path):
    config = ce_config(tmp_path)
    front.tags = {TAG: "Active"}
    result = CliRunner().invoke(main, ["aws", "check-tags", "--config", str(config)])
    assert (result.exit_code, result.output) == (0, f"aws-payer: {TAG}: active\n")

    front.tags = {TAG: "Inactive"}
    result = CliRunner().invoke(main, ["aws", "check-tags", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith(f"aws-payer: {TAG}: inactive; activate it in the Billing console")
    assert f"--cost-allocation-tags-status TagKey={TAG},Status=Active" in result.output

    front.tags = {}
    result = CliRunner().invoke(main, ["aws", "check-tags", "--config", str(config)])
    assert result.exit_code == 1 and f"{TAG}: not found; no resource in payer 111111111111" in result.output
    assert front.targets("ListCostAllocationTags")[-1] == {"TagKeys": [TAG]}


def serve_demo_month(moto, monkeypatch) -> None:
    """moto answers the demo month's pages (queued), and the client is pointed at it."""
    moto.reset()
    moto.queue_results(*demo_pages())
    monkeypatch.setenv("AWS_ENDPOINT_URL_CE", moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_a_run_on_cost_explorer_bills_the_queued_groups_and_reruns_for_free(moto, tmp_path, monkeypatch):
    """Done when: AWS_ENDPOINT_URL_CE points at moto holding queued multi-page results."""
    serve_demo_month(moto, monkeypatch)
    config = ce_config(tmp_path)
    runner = CliRunner()

    result = runner.invoke(main, ["run", "--month", "2022-09", "--config", str(config), "--output", str(tmp_path / "ce")])
    assert result.exit_code == 0, result.output
    assert "aws-payer: Cost Explorer: 4 paid requests (0.04 USD)" in result.output
    queued = sum(Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                 for page in demo_pages()[2:] for g in page["ResultsByTime"][0]["Groups"])
    reconciliation = (tmp_path / "ce" / "2022-09" / "reconciliation.csv").read_text().splitlines()
    aws_row = next(line.split(",") for line in reconciliation if line.startswith("aws,"))
    assert Decimal(aws_row[4]) == queued.quantize(Decimal("0.01")) and aws_row[-1] == "0.00"

    local = runner.invoke(main, ["run", "--month", "2022-09", "--config", str(ROOT / "config" / "billing.yaml"),
                                 "--output", str(tmp_path / "files")])
    assert local.exit_code == 0
    for path in (tmp_path / "files" / "2022-09").iterdir():
        assert (tmp_path / "ce" / "2022-09" / path.name).read_bytes() == path.read_bytes(), path.name

    moto.reset()  # nothing queued any more: a request now would get no data at all
    again = runner.invoke(main, ["run", "--month", "2022-09", "--config", str(config), "--output", str(tmp_path / "ce")])
    assert again.exit_code == 0 and "(no paid requests; --refresh fetches again)" in again.output
    refreshed = runner.invoke(main, ["run", "--month", "2022-09", "--config", str(config), "--output",
                                     str(tmp_path / "ce"), "--refresh"])
    assert refreshed.exit_code == 1  # --refresh asked moto again, which now has nothing queued
    assert said(refreshed) == ("Error: source 'aws-payer': Cost Explorer's response to the usage request: no "
                                "result for 2022-09 (empty ResultsByTime)\n")
    assert "aws-payer: Cost Explorer: 2 paid requests (0.02 USD) before the failure; the responses saved before in" \
        in refreshed.stdout
    kept = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))  # what the config's source reads
    assert kept.notes[0].startswith("Cost Explorer: reused the responses saved in")


# --- paging that would not end ------------------------------------------------------------------

def usage_page(token=None) -> dict:
    page = demo_pages()[0]
    page.pop("NextPageToken")
    return {**page, **({"NextPageToken": token} if token else {})}


def test_a_next_page_token_given_again_stops_the_paging_at_once(front, tmp_path):
    token = demo_pages()[0]["NextPageToken"]  # 64 characters
    front.answer_always(lambda request: usage_page(token))
    with pytest.raises(DataError) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert error.value.message == (
        f"source 'aws-payer': Cost Explorer's response to the usage request, page 2: NextPageToken "
        f"'{token[:12]}...{token[-8:]}' was already given by page 1; stopped asking, as following it would never end")
    assert len(front.targets()) == 2
    assert error.value.notes == ("aws-payer: Cost Explorer: 2 paid requests (0.02 USD) before the failure; "
                                 "nothing was saved",)
    assert not (tmp_path / "cache" / "aws-payer" / "2022-09").exists()


def test_a_token_cycle_is_caught_when_it_comes_round(front, tmp_path):
    front.answer_always(lambda request: usage_page("B" if request.get("NextPageToken") == "A" else "A"))
    with pytest.raises(DataError, match=r"usage request, page 3: NextPageToken 'A' was already given by page 1;"):
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert [r.get("NextPageToken") for r in front.targets()] == [None, "A", "B"]


def test_pages_are_capped_by_max_pages_per_request(front, tmp_path):
    front.answer_always(lambda request: usage_page(f"token-{len(front.targets())}"))
    with pytest.raises(DataError) as error:
        aws_cost_explorer.collect(ce_source(tmp_path, max_pages=5), SEPTEMBER, (TAG,))
    assert error.value.message == (
        "source 'aws-payer': Cost Explorer's response to the usage request: still more pages after 5 (the source's "
        "max_pages); stopped asking, as every page is a paid request; raise max_pages if the month needs more")
    assert len(front.targets()) == 5
    assert error.value.notes[0].startswith("aws-payer: Cost Explorer: 5 paid requests (0.05 USD) before the failure")


def test_max_pages_defaults_to_100_and_is_bounded(tmp_path):
    assert ce_source(tmp_path).max_pages == 100
    for absurd in (0, 10_001, 10**24):  # a huge cap would turn the cap off
        with pytest.raises(ValueError, match="max_pages"):
            ce_source(tmp_path, max_pages=absurd)


def test_a_token_loop_through_the_command_line_prints_what_was_paid(front, tmp_path):
    front.answer_always(lambda request: usage_page("again"))
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(ce_config(tmp_path)),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert said(result) == ("Error: source 'aws-payer': Cost Explorer's response to the usage request, page 2: "
                             "NextPageToken 'again' was already given by page 1; stopped asking, as following it "
                             "would never end\n")
    assert result.stdout == ("aws-payer: Cost Explorer: 2 paid requests (0.02 USD) before the failure; "
                             "nothing was saved\n")
    assert not (tmp_path / "out" / "2022-09").exists()


# --- a refresh replaces the saved month only with an answer that passes every check --------------

def stray_pages(tmp_path) -> list[Path]:
    """Saved pages under the source's cache that its month folder does not show: staging left behind."""
    parent = tmp_path / "cache" / "aws-payer"
    shown = (parent / "2022-09").resolve()
    return sorted(p for p in {p.resolve() for p in parent.rglob("*.json")} if shown not in p.parents)


def cache_state(tmp_path) -> tuple[Path, list[Path], dict[str, bytes]]:
    """The version the month folder shows, stray pages, and the bytes of every file it shows."""
    folder = tmp_path / "cache" / "aws-payer" / "2022-09"
    return (folder.resolve(), stray_pages(tmp_path),
            {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})


def fill_cache(moto, tmp_path):
    moto.queue_results(*demo_pages())
    aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    return cache_state(tmp_path)


def with_amount(pages, index, amount_json):
    """The pages as raw JSON text, with the first group's Amount of page ``index`` written as given."""
    pages[index]["ResultsByTime"][0]["Groups"][0]["Metrics"]["UnblendedCost"]["Amount"] = "@AMOUNT@"
    return [json.dumps(p).replace('"@AMOUNT@"', amount_json) for p in pages]


def regrouped_second_page(pages):
    pages[1]["GroupDefinitions"] = [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    return pages


def other_period(pages):
    pages[3]["ResultsByTime"][0]["TimePeriod"] = {"Start": "2022-09-01", "End": "2022-09-30"}
    return pages


def estimated_as_text(pages):
    pages[0]["ResultsByTime"][0]["Estimated"] = "false"
    return pages


USAGE_1 = "source 'aws-payer': Cost Explorer's response to the usage request, page 1"
REFUSED_REFRESHES = {
    "estimated": (lambda: estimated(demo_pages()), 4,
                  "source 'aws-payer': Cost Explorer marks 2022-09 as Estimated (not final); run again once the month "
                  "has closed, or set accept_estimated: true for a provisional invoice"),
    "estimated as text": (lambda: estimated_as_text(demo_pages()), 4,
                          f"{USAGE_1}: Estimated is 'false', not true or false, so whether 2022-09 is final cannot "
                          "be told"),
    "not finite": (lambda: with_amount(demo_pages(), 2, '"NaN"'), 4,
                   "source 'aws-payer': Cost Explorer's response to the record-types request, page 1: group "
                   "['Credit', '222222222222']: UnblendedCost amount 'NaN' is not a finite number"),
    "not a response": (lambda: ["{}", *demo_pages()[2:]], 3,
                       f"{USAGE_1}: not a GetCostAndUsage response (no ResultsByTime list)"),
    "broken chain": (lambda: regrouped_second_page(demo_pages()), 4,
                     "source 'aws-payer': Cost Explorer's response to the usage request, page 2: GroupDefinitions "
                     "differ from page 1's"),
    "other period": (lambda: other_period(demo_pages()), 4,
                     "source 'aws-payer': Cost Explorer's response to the record-types request, page 2: covers "
                     "2022-09-01 to 2022-09-30, not 2022-09 (2022-09-01 to 2022-10-01, End exclusive), the period "
                     "asked for"),
}


@pytest.mark.parametrize("answers, paid, expected", REFUSED_REFRESHES.values(), ids=REFUSED_REFRESHES.keys())
def test_a_refused_refresh_leaves_the_saved_month_byte_identical(moto, front, tmp_path, answers, paid, expected):
    before = fill_cache(moto, tmp_path)
    front.answer(*answers())
    with pytest.raises(DataError) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,), refresh=True)
    assert error.value.message == expected
    assert "saved" not in error.value.message and str(tmp_path) not in error.value.message
    folder = tmp_path / "cache" / "aws-payer" / "2022-09"
    assert error.value.notes == (f"aws-payer: Cost Explorer: {paid} paid request{'s' * (paid > 1)} "
                                 f"({Decimal('0.01') * paid} USD) before the failure; the responses saved before in "
                                 f"{folder} are kept",)
    assert cache_state(tmp_path) == before
    assert len(front.targets()) == 4 + paid


def test_a_refresh_that_runs_into_a_token_loop_keeps_the_saved_month(moto, front, tmp_path):
    before = fill_cache(moto, tmp_path)
    front.answer_always(lambda request: usage_page("again"))
    with pytest.raises(DataError, match="NextPageToken 'again' was already given by page 1"):
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,), refresh=True)
    assert cache_state(tmp_path) == before


def test_a_good_refresh_replaces_the_saved_month_whole(moto, front, tmp_path):
    fill_cache(moto, tmp_path)
    pages = demo_pages()  # one more dollar of usage on the payer's own account, in both requests
    for page in pages:
        for group in page["ResultsByTime"][0]["Groups"]:
            if group["Keys"] in (["111111111111", f"{TAG}$"], ["Usage", "111111111111"]):
                amount = group["Metrics"]["UnblendedCost"]
                amount["Amount"] = str(Decimal(amount["Amount"]) + 1)
    front.answer(*pages)
    before = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    refreshed = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,), refresh=True)
    assert refreshed.totals[0].total == before.totals[0].total + 1
    _, strays, files = cache_state(tmp_path)
    assert strays == []  # the version shown before, and any staging, are gone
    assert json.loads(files["usage/page-1.json"])["ResultsByTime"] == pages[0]["ResultsByTime"]
    reread = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert reread.rows == refreshed.rows and len(front.targets()) == 8


def test_a_refused_refresh_through_the_command_line_prints_what_was_paid(moto, front, tmp_path):
    before = fill_cache(moto, tmp_path)  # the config's source is ce_source(tmp_path)
    front.answer(*estimated(demo_pages()))
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(ce_config(tmp_path)),
                                       "--output", str(tmp_path / "out"), "--refresh"])
    assert result.exit_code == 1
    assert said(result).startswith("Error: source 'aws-payer': Cost Explorer marks 2022-09 as Estimated")
    assert said(result).count("\n") == 1
    assert result.stdout == (f"aws-payer: Cost Explorer: 4 paid requests (0.04 USD) before the failure; the responses "
                             f"saved before in {tmp_path / 'cache' / 'aws-payer' / '2022-09'} are kept\n")
    assert cache_state(tmp_path) == before and not (tmp_path / "out" / "2022-09").exists()
    again = aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert again.notes[0].startswith("Cost Explorer: reused the responses saved in")


# --- amounts and flags in a fresh answer: one line naming the request, page, group and value -----

@pytest.mark.parametrize("amount_json, shown, problem", [
    ('"Infinity"', "'Infinity'", "is not a finite number"),
    ('"-Infinity"', "'-Infinity'", "is not a finite number"),
    ('"NaN"', "'NaN'", "is not a finite number"),
    ('"sNaN"', "'sNaN'", "is not a finite number"),
    ('"1e400"', "'1e400'", "is not a believable cost (10^13 or more in size)"),
    ("NaN", "NaN", "is not a finite number"),            # bare JSON: botocore makes floats of these
    ("Infinity", "Infinity", "is not a finite number"),
    ("-Infinity", "-Infinity", "is not a finite number"),
    ("1e400", "Infinity", "is not a finite number"),      # a float too big is infinite by the time it arrives
])
def test_an_amount_in_a_fresh_answer_that_is_not_finite_and_believable_is_one_line(front, tmp_path, amount_json,
                                                                                    shown, problem):
    front.answer(*with_amount(demo_pages(), 0, amount_json))
    with pytest.raises(DataError) as error:
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert error.value.message == (f"{USAGE_1}: group ['111111111111', '2i2c:hub-name$']: UnblendedCost amount "
                                   f"{shown} {problem}")
    assert not (tmp_path / "cache" / "aws-payer" / "2022-09").exists()


# --- the month folder's lock ----------------------------------------------------------------------

@pytest.mark.parametrize("refresh", [False, True])
def test_a_second_run_while_the_month_is_being_written_stops_before_paying(moto, front, tmp_path, refresh):
    fill_cache(moto, tmp_path)
    folder = tmp_path / "cache" / "aws-payer" / "2022-09"
    with atomic.locked(folder, "the saved Cost Explorer responses of 2022-09"):
        with pytest.raises(Busy) as error:
            aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,), refresh=refresh)
    assert error.value.exit_code == 1
    assert error.value.message.startswith(f"the saved Cost Explorer responses of 2022-09 ({folder}) are being "
                                          "written by another run (pid ")
    assert len(front.targets()) == 4 and error.value.notes == ()


def test_what_an_older_killed_run_left_is_cleared_and_the_month_fetched(moto, front, tmp_path):
    parent = tmp_path / "cache" / "aws-payer"
    (parent / ".2022-09.partial-4242" / "usage").mkdir(parents=True)  # staging named by PID, half written
    (parent / ".2022-09.partial-4242" / "usage" / "page-1.json").write_text("{")
    moto.queue_results(*demo_pages())
    aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert not (parent / ".2022-09.partial-4242").exists() and stray_pages(tmp_path) == []


def test_a_cache_that_cannot_be_written_is_a_source_error_before_paying(front, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(SourceError, match=r"source 'aws-payer': cannot save the responses under .*2022-09"):
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    assert front.targets() == []


def test_a_run_that_fails_after_paying_still_says_what_it_paid(moto, tmp_path, monkeypatch):
    """Later stages fail too (here the outputs cannot be written): the paid requests are printed."""
    serve_demo_month(moto, monkeypatch)
    (tmp_path / "ce").mkdir()
    (tmp_path / "ce" / ".versions").write_text("not a folder")
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(ce_config(tmp_path)),
                                       "--output", str(tmp_path / "ce")])
    assert result.exit_code == 2
    assert said(result).startswith(f"Error: cannot write the outputs to {tmp_path / 'ce' / '2022-09'}")
    assert "aws-payer: Cost Explorer: 4 paid requests (0.04 USD); responses saved in" in result.stdout

"""The Cost Explorer collector, through real botocore HTTP calls to moto (server mode) on 127.0.0.1."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.collectors import aws_cost_explorer, aws_files
from billing.config import AwsCostExplorer, AwsCostExplorerFiles
from billing.errors import DataError, SourceError, SourceUnavailable
from billing.records import Month

from aws_server import CostExplorerFront, MotoServer
from conftest import ROOT

SEPTEMBER = Month(2022, 9)
DEMO_AWS = ROOT / "demo" / "data" / "aws"
TAG = "2i2c:hub-name"


def demo_pages(month="2022-09") -> list[dict]:
    """The demo's saved responses of a month, in the order the collector requests them."""
    folder = DEMO_AWS / month
    return [json.loads(p.read_text()) for query in ("usage", "record-types")
            for p in sorted((folder / query).glob("page-*.json"))]


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


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


def test_an_estimated_month_is_refused_saved_and_fetched_again_next_time(moto, front, tmp_path):
    moto.queue_results(*estimated(demo_pages()))
    with pytest.raises(DataError, match="marks 2022-09 as Estimated"):
        aws_cost_explorer.collect(ce_source(tmp_path), SEPTEMBER, (TAG,))
    provisional = aws_cost_explorer.collect(ce_source(tmp_path, accept_estimated=True), SEPTEMBER, (TAG,))
    assert provisional.warnings == ("2022-09 AWS costs are Estimated by Cost Explorer: invoices are provisional",)
    assert len(front.targets()) == 8  # the saved month was provisional, so it was fetched again


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


def test_a_run_on_cost_explorer_bills_the_queued_groups_and_reruns_for_free(moto, tmp_path, monkeypatch):
    """Done when: AWS_ENDPOINT_URL_CE points at moto holding queued multi-page results."""
    moto.reset()
    moto.queue_results(*demo_pages())
    monkeypatch.setenv("AWS_ENDPOINT_URL_CE", moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
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
    assert "the responses hold no result for 2022-09 (empty ResultsByTime)" in refreshed.stderr
    assert refreshed.stderr.count("\n") == 1

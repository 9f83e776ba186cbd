"""The BigQuery collector, through the real google-cloud-bigquery client and a REST server on 127.0.0.1."""

import shutil
from decimal import Decimal

import pytest
from click.testing import CliRunner

from billing.cli import main
from billing.collectors import gcp_bigquery, gcp_files
from billing.config import GcpBigQuery, GcpExportFiles
from billing.errors import DataError, SourceError, SourceUnavailable
from billing.records import Month

from bigquery_server import BigQueryServer, credentials_file
from conftest import EXPECTED, NS, ROOT, SEPTEMBER, export_row, said, september_rows, summary, write_export

TABLE = "billing-project.billing_export.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9"


@pytest.fixture
def server(tmp_path, monkeypatch):
    with BigQueryServer(page_size=2) as bq:
        bq.load_export(TABLE, [write_export(tmp_path / "rows", september_rows())])
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials_file(tmp_path, bq)))
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
        yield bq


def bq_source(server, **changes) -> GcpBigQuery:
    return GcpBigQuery(**{"type": "gcp-bigquery", "id": "gcp", "table": TABLE, "job_project": "billing-project",
                          "api_endpoint": server.url, **changes})


def inserted_jobs(server) -> list[dict]:
    """Every query sent, as a job's configuration: dry runs (jobs.insert) and queries (jobs.query)."""
    return [body if path.endswith("/jobs") else {"configuration": {"query": body}}
            for method, path, body in server.requests if method == "POST" and path.endswith(("/jobs", "/queries"))]


def test_rows_arrive_exact_and_equal_to_the_local_collectors(server, tmp_path):
    collection = gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    assert summary(collection.rows) == EXPECTED
    assert all(isinstance(r.cost, Decimal) for r in collection.rows)
    local = gcp_files.collect(GcpExportFiles(type="gcp-export-files", id="gcp", path=tmp_path / "rows"),
                              SEPTEMBER, (NS,))
    assert collection.rows == local.rows
    assert collection.totals == local.totals


def test_month_labels_and_partition_window_are_sent_as_query_parameters(server):
    gcp_bigquery.collect(bq_source(server, partition_days_before=3, partition_days_after=10), SEPTEMBER, (NS,))
    jobs = inserted_jobs(server)
    assert [j["configuration"].get("dryRun", False) for j in jobs] == [True, False, True, False]
    query = jobs[1]["configuration"]["query"]
    parameters = {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
                  for p in query["queryParameters"]}
    assert parameters == {"invoice_month": ("STRING", "202209"), "label_key_0": ("STRING", NS),
                          "partition_start": ("DATE", "2022-08-29"), "partition_end": ("DATE", "2022-10-10")}
    assert f"FROM `{TABLE}`" in query["query"] and "@invoice_month" in query["query"]
    assert "202209" not in query["query"] and query["useLegacySql"] is False
    assert query["maximumBytesBilled"] == str(50 * 10**9)


def test_every_result_page_is_read(server):
    collection = gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    page_tokens = [body.get("pageToken") for method, path, body in server.requests if "/queries/" in path]
    assert {"2", "4", "6"} <= set(page_tokens)  # 6 groups + 3 credit rows, 2 per page
    assert len(collection.rows) == 6


def test_the_dry_run_reports_bytes_and_the_guard_refuses_an_expensive_query(server):
    collection = gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    scanned = 2 * server.row_count(TABLE) * server.bytes_per_row
    assert collection.notes == (f"BigQuery scanned {gcp_bigquery.human_bytes(scanned)} for 2022-09 "
                                "(about 0.00 USD at on-demand prices of 6.25 USD per TiB)",)
    server.requests.clear()
    with pytest.raises(SourceError, match=r"the query would scan 9\.5 KiB, more than maximum_bytes_billed "
                                          r"\(1000 bytes\)"):
        gcp_bigquery.collect(bq_source(server, maximum_bytes_billed=1000), SEPTEMBER, (NS,))
    assert [j["configuration"].get("dryRun") for j in inserted_jobs(server)] == [True]


def test_permission_denied_names_the_roles_needed(server):
    server.deny.add(TABLE)
    with pytest.raises(SourceError) as error:
        gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    assert error.value.message.startswith(
        f"source 'gcp': permission denied on {TABLE}; the account needs BigQuery Job User "
        "(roles/bigquery.jobUser) on project billing-project and BigQuery Data Viewer "
        "(roles/bigquery.dataViewer) on dataset billing-project.billing_export (BigQuery said: Access Denied")
    assert error.value.exit_code == 2


def test_a_missing_table_lists_the_export_tables_that_exist(server):
    other = TABLE.replace("resource_v1_01A2B3", "v1_01A2B3")
    server.load_table(other, "SELECT 1 AS x")
    server.load_table("billing-project.billing_export.unrelated", "SELECT 1 AS x")
    wrong = TABLE.replace("01A2B3", "0FFFFF")
    with pytest.raises(SourceError) as error:
        gcp_bigquery.collect(bq_source(server, table=wrong), SEPTEMBER, (NS,))
    assert error.value.message == (
        f"source 'gcp': table {wrong} not found (Not found: Table billing-project:billing_export."
        f"{wrong.split('.')[2]} was not found in location US); billing export tables in that dataset: "
        f"{TABLE.split('.')[2]}, {other.split('.')[2]}")


def test_a_missing_dataset_is_said_too(server):
    wrong = TABLE.replace(".billing_export.", ".billing_exprot.")
    with pytest.raises(SourceError, match="dataset billing-project.billing_exprot was not found either"):
        gcp_bigquery.collect(bq_source(server, table=wrong), SEPTEMBER, (NS,))


def test_a_rejected_query_shows_bigquerys_message(server):
    not_an_export = TABLE.replace("01A2B3", "0AAAAA")
    server.load_table(not_an_export, "SELECT 'x' AS billing_account_id")
    with pytest.raises(SourceError, match=r"^source 'gcp': BigQuery rejected the query: Binder Error: .*invoice"):
        gcp_bigquery.collect(bq_source(server, table=not_an_export), SEPTEMBER, (NS,))


def test_transient_server_errors_are_retried(server):
    server.transient_failures = 2
    collection = gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    assert summary(collection.rows) == EXPECTED
    assert len(inserted_jobs(server)) == 6  # two 503s, then the four jobs


def test_errors_that_persist_give_up_after_the_timeout(server):
    server.transient_failures = 1000
    with pytest.raises(SourceUnavailable, match=r"BigQuery kept failing for 2 s \(Error encountered during "
                                                r"execution\. Retrying may solve the problem\.\); try again later"):
        gcp_bigquery.collect(bq_source(server, timeout_seconds=2), SEPTEMBER, (NS,))


def test_a_query_that_does_not_finish_in_time_is_a_timeout(server):
    server.slow = True
    with pytest.raises(SourceUnavailable) as error:
        gcp_bigquery.collect(bq_source(server, timeout_seconds=1), SEPTEMBER, (NS,))
    assert error.value.message == ("source 'gcp': BigQuery did not finish within timeout_seconds (1 s); "
                                   "try again, or raise the timeout")
    assert error.value.exit_code == 1


def test_no_credentials_says_how_to_get_them(server, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(SourceError) as error:
        gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    assert error.value.message == (
        "source 'gcp': no Google credentials found; run `gcloud auth application-default login`, or set "
        "GOOGLE_APPLICATION_CREDENTIALS to a service account key file")
    assert server.requests == []


def test_a_month_without_rows_is_a_data_error(server):
    with pytest.raises(DataError, match=r"no rows with invoice month 2022-12 in .* \(partitions 2022-11-24 to "
                                        r"2023-01-15\)"):
        gcp_bigquery.collect(bq_source(server), Month(2022, 12), (NS,))


@pytest.mark.parametrize("table", [
    "billing-project.billing_export.some_other_table",
    "billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9",
    "p.d.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9`; DROP TABLE x; --",
])
def test_only_export_table_names_are_accepted(table):
    with pytest.raises(ValueError, match="must be the export table's full name"):
        GcpBigQuery(type="gcp-bigquery", id="gcp", table=table, job_project="billing-project")


# --- the whole run --------------------------------------------------------------------------------

@pytest.fixture
def demo_on_bigquery(tmp_path, monkeypatch):
    """The demo config twice: as shipped (local files) and with its GCP source in BigQuery."""
    with BigQueryServer(page_size=25) as bq:
        bq.load_export(TABLE, sorted((ROOT / "demo" / "data" / "gcp").glob("*.json.gz")))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials_file(tmp_path, bq)))
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
        shutil.copytree(ROOT / "demo" / "data" / "aws", tmp_path / "aws")
        local = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/data/", str(ROOT / "demo" / "data") + "/")
        (tmp_path / "local.yaml").write_text(local)
        remote = local.replace(
            f"type: gcp-export-files\n    path: {ROOT / 'demo' / 'data'}/gcp",
            f"type: gcp-bigquery\n    table: {TABLE}\n    job_project: billing-project\n    api_endpoint: {bq.url}")
        assert remote != local
        (tmp_path / "bigquery.yaml").write_text(remote)
        yield bq, tmp_path


def test_a_run_on_bigquery_gives_the_same_invoices_as_on_local_files(demo_on_bigquery):
    server, folder = demo_on_bigquery
    runner = CliRunner()
    for name in ("local", "bigquery"):
        result = runner.invoke(main, ["run", "--month", "2022-09", "--config", str(folder / f"{name}.yaml"),
                                      "--output", str(folder / name)])
        assert result.exit_code == 0, result.output
    assert "gcp-export: BigQuery scanned" in result.output
    local, remote = folder / "local" / "2022-09", folder / "bigquery" / "2022-09"
    assert sorted(p.name for p in remote.iterdir()) == sorted(p.name for p in local.iterdir())
    for path in local.iterdir():
        assert (remote / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("switch, code, start", [
    ("deny", 2, "Error: source 'gcp-export': permission denied on"),
    ("slow", 1, "Error: source 'gcp-export': BigQuery did not finish within timeout_seconds"),
    ("no-credentials", 2, "Error: source 'gcp-export': no Google credentials found"),
])
def test_each_error_is_one_line_and_its_exit_code_through_the_cli(demo_on_bigquery, monkeypatch, switch, code, start):
    server, folder = demo_on_bigquery
    config = folder / "bigquery.yaml"
    if switch == "deny":
        server.deny.add(TABLE)
    elif switch == "slow":
        server.slow = True
        config.write_text(config.read_text().replace("job_project: billing-project",
                                                     "job_project: billing-project\n    timeout_seconds: 1"))
    else:
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(config),
                                       "--output", str(folder / "out")])
    assert result.exit_code == code
    assert said(result).startswith(start) and said(result).count("\n") == 1
    assert not (folder / "out" / "2022-09").exists()


def test_a_label_key_no_row_carries_asks_bigquery_which_keys_there_are(server):
    """A typo in a rule's label key must be caught: BigQuery is asked for the keys only then."""
    found = gcp_bigquery.collect(bq_source(server), SEPTEMBER, (NS,))
    assert found.label_keys == {NS} and len(inserted_jobs(server)) == 4
    typo = gcp_bigquery.collect(bq_source(server), SEPTEMBER, ("k8s-namespce",))
    assert typo.label_keys == {NS, "goog-k8s-cluster-name"}
    assert len(inserted_jobs(server)) == 4 + 6


def test_each_query_is_one_job_whose_answer_holds_only_the_grouped_rows(tmp_path, monkeypatch):
    """Issue: speed at scale. 3,000 export rows in 7 groups: each of the two queries is one
    request (jobs.query, after its dry run) whose answer holds the result, and what comes back is
    the groups, a few kilobytes, never the rows."""
    rows = [export_row(project=f"p{i % 3}", cost=f"{i % 97}.{i % 100:02d}", usage_start=f"2022-09-{1 + i % 28:02d} "
                       f"{i % 24:02d}:00:00 UTC", labels=[(NS, f"hub-{i % 3}")],
                       credits=[("PROMOTION", "-0.01")] if i % 2 else ())
            for i in range(3000)]
    with BigQueryServer() as bq:
        bq.load_export(TABLE, [write_export(tmp_path / "rows", rows)])
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials_file(tmp_path, bq)))
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
        collection = gcp_bigquery.collect(bq_source(bq), SEPTEMBER, (NS,))
        answers = [a for a in bq.answers if "/bigquery/" in a[1]]
    assert sum(r.cost for r in collection.rows) == sum(Decimal(f"{i % 97}.{i % 100:02d}") for i in range(3000))
    dry_runs = [a for a in answers if a[0] == "POST" and a[1].endswith("/jobs")]
    queries = [a for a in answers if a[0] == "POST" and a[1].endswith("/queries")]
    assert len(dry_runs) == 2 and len(queries) == 2 and len(answers) == 4  # nothing polled, no second page
    # the cost query: 3 projects x (cost, credit) = 6 rows; the totals: 1 row; nothing else comes back
    assert sorted(rows for _, _, _, rows in queries) == [1, 6]
    assert sum(size for _, _, size, _ in answers) < 20_000

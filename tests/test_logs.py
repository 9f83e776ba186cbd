"""Logging for schedulers: JSON lines, verbosity, progress, and the closing summary."""

import io
import json

import pytest
from click.testing import CliRunner

from billing import logs
from billing.cli import main


def billing(*args: str, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_logs_parse_line_by_line_and_end_with_the_summary(own_demo):
    result = billing("run", "--month", "2022-09", "--config", str(own_demo / "billing.yaml"), "--log-format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the report is in the log too, so everything the job writes parses
    found = records(result.stderr)
    assert all({"time", "severity", "level", "stage", "month", "command", "message"} <= set(r) for r in found)
    assert {r["month"] for r in found} == {"2022-09"} and {r["command"] for r in found} == {"billing run"}
    stages = [r["stage"] for r in found]
    assert {"collect", "render", "report", "summary"} <= set(stages)
    assert [r["message"] for r in found if r["stage"] == "collect"][:2] == [
        "gcp-export (1 of 3 sources)", "aws-payer (2 of 3 sources)"]
    assert any(r["message"] == "Invoices for September 2022:" for r in found if r["stage"] == "report")
    summary = found[-1]
    assert summary["stage"] == "summary" and summary["severity"] == "INFO"
    assert summary["message"] == ("billing run 2022-09: 8 invoice(s); totals 4,380.87 CAD, 1,569.59 GBP, 17,946.31 "
                                  "USD; unattributed none; paid API requests 0; bytes scanned 0 bytes")
    assert summary["invoices"] == 8 and summary["totals"] == {"CAD": "4380.87", "GBP": "1569.59", "USD": "17946.31"}
    assert summary["paid_api_requests"] == 0 and summary["bytes_scanned"] == 0


def test_a_failure_in_json_is_an_error_record_then_a_failed_summary(own_demo):
    (own_demo / "data" / "gcp" / "billing-export-2022-09.json.gz").write_bytes(b"not gzip")
    result = billing("run", "--month", "2022-09", "--config", str(own_demo / "billing.yaml"),
                     env={"BILLING_LOG_FORMAT": "json"})
    assert result.exit_code == 1
    assert result.stdout == ""
    found = records(result.stderr)
    error, summary = found[-2], found[-1]
    assert error["severity"] == "ERROR" and error["stage"] == "error" and error["exit_code"] == 1
    assert "billing-export-2022-09.json.gz" in error["message"]
    assert summary["stage"] == "summary" and summary["severity"] == "ERROR"
    assert summary["message"] == ("billing run 2022-09: failed with exit code 1, nothing written; paid API requests 0; "
                                  "bytes scanned 0 bytes")
    assert summary["error"] == error["message"]


def test_a_usage_error_in_json_is_json_too(own_demo):
    result = billing("run", "--month", "2022-13", "--config", str(own_demo / "billing.yaml"), "--log-format", "json")
    assert result.exit_code == 2
    error, summary = records(result.stderr)
    assert error["severity"] == "ERROR" and error["message"].startswith("--month '2022-13' is neither YYYY-MM")
    assert summary["message"] == ("billing run (no month): failed with exit code 2, nothing written; paid API "
                                  "requests 0; bytes scanned 0 bytes")
    both = billing("status", "-v", "-q", "--log-format", "json")
    assert both.exit_code == 2 and records(both.stderr)[0]["message"] == "give -v or -q, not both"


def test_quiet_json_still_gives_the_commands_report(own_demo):
    result = billing("check-config", "--config", str(own_demo / "billing.yaml"), "-q", "--log-format", "json")
    assert result.exit_code == 0
    (only,) = records(result.stderr)
    assert only["stage"] == "report" and only["message"].startswith("OK: ")


@pytest.mark.parametrize("args", [["run", "--log-format", "json"], ["run", "--mnth", "2022-09", "--log-format=json"],
                                  ["--log-format", "json", "run", "--month", "2022-09"], ["nosuch", "--log-format=json"],
                                  ["finalize", "--month", "2022-09", "--community", "--log-format", "json"]])
def test_clicks_own_usage_errors_are_json_when_json_is_asked_for(args):
    result = billing(*args)
    assert result.exit_code == 2
    (only,) = records(result.output)
    assert only["severity"] == "ERROR" and only["exit_code"] == 2
    assert only["message"].startswith(("Missing option '--month'", "No such option '--mnth'", "No such option "
                                       "'--log-format'", "No such command 'nosuch'", "Got unexpected extra argument"))
    if args[0] != "--log-format":  # the same mistake without JSON asked for: click's own text
        plain = billing(*[a for a in args if "json" not in a and a != "--log-format"])
        assert plain.exit_code == 2 and "Error: " in plain.output and "{" not in plain.output


def test_quiet_shows_warnings_and_the_summary_and_text_ends_with_it(own_demo):
    config = str(own_demo / "billing.yaml")
    quiet = billing("run", "--month", "2022-09", "--config", config, "-q")
    assert quiet.exit_code == 0
    lines = quiet.stderr.splitlines()
    assert all(line.startswith(("run: warning: ", "summary: ")) for line in lines), lines
    assert lines[-1].startswith("summary: billing run 2022-09: 8 invoice(s)")
    normal = billing("run", "--month", "2022-09", "--config", config)
    assert "collect: gcp-export (1 of 3 sources)" in normal.stderr.splitlines()
    assert normal.stderr.splitlines()[-1] == lines[-1]
    assert billing("run", "--month", "2022-09", "--config", config, "-q", "-v").exit_code == 2


def test_verbose_adds_debug_lines():
    stream = io.StringIO()
    logs.setup(1, "text", "billing test", stream)
    logs.get("collect").debug("a detail")
    logs.setup(0, "text", "billing test", stream)
    logs.get("collect").debug("hidden")
    logs.get("collect").info("shown")
    assert stream.getvalue() == "collect: debug: a detail\ncollect: shown\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_drawn_and_messages_still_shown():
    stream = _Terminal()
    logs.setup(0, "text", "billing test", stream)
    with logs.progress("render", 3, "files") as step:
        for name in ("a.pdf", "b.pdf", "c.csv"):
            step(name)
    logs.get("render").warning("a warning")
    logs.summary("the summary", ok=True)
    text = stream.getvalue()
    assert "a warning" in text and "the summary" in text
    assert "render: a.pdf (1 of 3 files)" not in text  # a bar, not a line per step


def test_json_is_one_object_per_record_with_its_fields():
    stream = io.StringIO()
    logs.setup(-1, "json", "billing test", stream)
    logs.set_month("2022-09")
    logs.get("guards").info("not shown when quiet")
    logs.get("guards").warning("two\nlines", extra={"fields": {"finding": "cost-zero:x"}})
    logs.summary("done", ok=True, invoices=3)
    found = records(stream.getvalue())
    assert [(r["stage"], r["level"], r["message"]) for r in found] == [
        ("guards", "warning", "two\nlines"), ("summary", "info", "done")]
    assert found[0]["finding"] == "cost-zero:x" and found[1]["invoices"] == 3
    assert found[0]["month"] == "2022-09" and found[0]["command"] == "billing test"


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logs.setup(0, "text", "")

"""The monthly job's clock: `--month last`, `--today` / BILLING_TODAY, and the settle rule."""

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from billing import dates, ledger
from billing.cli import main
from billing.errors import UsageError
from billing.records import Month
from billing.render.csv_files import read_csv

from conftest import ROOT, said


def billing(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize("today, last", [
    ("2022-10-01", "2022-09"), ("2022-10-31", "2022-09"), ("2023-01-01", "2022-12"), ("2022-03-01", "2022-02"),
    ("2024-03-01", "2024-02"), ("2022-12-31", "2022-11"),
])
def test_last_is_the_calendar_month_before_today(today, last):
    assert str(dates.month("last", dates.today(today))) == last
    assert str(dates.month(" LAST ", dates.today(today))) == last


def test_previous_and_next_walk_the_calendar_both_ways():
    month = Month(2020, 1)
    for _ in range(30):
        assert month.previous.next == month and month.next.previous == month
        assert month.previous.last_day == month.first_day - dt.timedelta(days=1)
        month = month.next


@pytest.mark.parametrize("given", ["2022-13-01", "2022-02-30", "yesterday", "2022-1-1", "20221001", "2022-10-01T00:00"])
def test_a_malformed_today_is_a_usage_error(given):
    with pytest.raises(UsageError, match="--today"):
        dates.today(given)
    result = billing("status", "--month", "last", "--today", given, "--config", str(ROOT / "config" / "billing.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: --today (or BILLING_TODAY) {given!r} is not a date")
    assert "Traceback" not in result.output


def test_today_defaults_to_the_date_in_utc():
    assert dates.today() == dt.datetime.now(dt.timezone.utc).date()
    assert dates.today("  ") == dates.today()


@pytest.mark.parametrize("month", ["last-month", "2022-9", "prev", "2022-00"])
def test_a_month_that_is_neither_yyyy_mm_nor_last_is_a_usage_error(month):
    result = billing("run", "--month", month, "--config", str(ROOT / "config" / "billing.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: --month {month!r} is neither YYYY-MM")


@pytest.mark.parametrize("day, settled", [
    ("2022-09-15", False), ("2022-10-01", False), ("2022-10-05", False), ("2022-10-06", True), ("2023-05-01", True),
])
def test_a_month_settles_settle_days_into_the_next(day, settled):
    reason = dates.unsettled(Month(2022, 9), dt.date.fromisoformat(day), 5)
    assert (reason is None) == settled
    if reason:
        assert reason == f"the cloud data for 2022-09 is still settling until 2022-10-06 (settle_days 5, today {day} UTC)"


def test_settle_days_zero_settles_on_the_first_and_a_month_not_begun_is_refused():
    assert dates.unsettled(Month(2022, 9), dt.date(2022, 10, 1), 0) is None
    assert dates.unsettled(Month(2022, 12), dt.date(2023, 1, 28), 27) is None
    with pytest.raises(UsageError, match="2022-11 has not begun"):
        dates.unsettled(Month(2022, 11), dt.date(2022, 10, 31), 5)


def register(folder) -> list[dict[str, str]]:
    return read_csv(folder / "invoice-register.csv")


def test_last_month_before_it_settles_is_provisional_and_cannot_be_finalized(own_demo):
    config = str(own_demo / "billing.yaml")
    early = billing("run", "--month", "last", "--today", "2022-10-03", "--config", config)
    assert early.exit_code == 0, early.output
    assert "Invoices for September 2022 (provisional):" in early.stdout
    assert "still settling until 2022-10-06" in early.stderr
    rows = register(own_demo / "out" / "2022-09")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"provisional"}
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(own_demo / "out" / "2022-09" /
                                                                       "invoice-2022-09-ciroh.pdf").pages).split())
    assert ("Provisional: The cloud data for 2022-09 is still settling until 2022-10-06 (settle_days 5, today "
            "2022-10-03 UTC). The cloud costs on this invoice may still change; a final invoice will follow once the "
            "data is final.") in text
    refused = billing("finalize", "--month", "last", "--today", "2022-10-03", "--config", config)
    assert refused.exit_code == 1
    assert said(refused).splitlines()[0] == (
        "Error: billing finalize: 2022-09 is provisional (the cloud data for 2022-09 is still settling until "
        "2022-10-06 (settle_days 5, today 2022-10-03 UTC)); finalize refuses it: run the month again once its data is "
        "final")

    settled = billing("run", "--month", "last", "--config", config, env={"BILLING_TODAY": "2022-10-06"})
    assert settled.exit_code == 0, settled.output
    assert "Invoices for September 2022:" in settled.stdout and "settling" not in settled.output
    assert {r["status"] for r in register(own_demo / "out" / "2022-09")} == {"draft"}
    final = billing("finalize", "--month", "2022-09", "--config", config)
    assert final.exit_code == 0, final.output
    assert "Finalized 8 invoice(s) of September 2022." in final.stdout


def test_force_never_bills_a_month_that_has_not_ended(own_demo):
    result = billing("run", "--month", "2022-10", "--today", "2022-10-31", "--force", "--config",
                     str(own_demo / "billing.yaml"))
    assert result.exit_code == 2
    assert said(result) == ("Error: --force cannot bill 2022-10 as final before it has ended (today is 2022-10-31, "
                            "UTC); it only skips the settle days after the month\n")
    assert not (own_demo / "out").exists()


@pytest.mark.parametrize("given, why", [("2022-02-30", "is not a date of the calendar"),
                                        ("0001-01-05", "is not between 2000 and 2999")])
def test_a_today_out_of_the_calendar_or_of_range_is_a_usage_error(given, why):
    result = billing("run", "--month", "last", "--today", given)
    assert result.exit_code == 2 and said(result) == f"Error: --today (or BILLING_TODAY) {given!r} {why}\n"
    assert billing("run", "--month", "9999-12", "--today", "2022-10-01").exit_code == 2


def test_a_today_other_than_the_real_date_is_warned_about(own_demo):
    result = billing("status", "--today", "2022-10-06", "--month", "last", "--config", str(own_demo / "billing.yaml"))
    assert result.exit_code == 0
    assert result.stderr.startswith("dates: warning: taking 2022-10-06 as today (--today or BILLING_TODAY), not the "
                                    "real date ")


def test_force_bills_an_unsettled_month_as_final_and_the_ledger_records_it(own_demo):
    config = str(own_demo / "billing.yaml")
    forced = billing("run", "--month", "2022-09", "--today", "2022-10-02", "--force", "--config", config)
    assert forced.exit_code == 0, forced.output
    assert f"warning: forced: billed as final on 2022-10-02 with --force by {ledger.who()}: the cloud data for " \
           "2022-09 is still settling until 2022-10-06" in forced.stderr
    assert {r["status"] for r in register(own_demo / "out" / "2022-09")} == {"draft"}
    engine = ledger.open_ledger(ledger.ledger_url(""), "test")
    try:
        events = ledger.events_of(engine, Month(2022, 9))
    finally:
        engine.dispose()
    assert [(e.command, e.change) for e in events] == [("billing run", "forced")]
    assert "2022-10-02" in events[0].detail and f" by {ledger.who()}: " in events[0].detail
    assert billing("finalize", "--month", "2022-09", "--config", config).exit_code == 0


def test_a_month_that_has_not_begun_is_refused_before_anything_is_written(own_demo):
    result = billing("run", "--month", "2022-11", "--today", "2022-10-20", "--config", str(own_demo / "billing.yaml"))
    assert result.exit_code == 2
    assert said(result).splitlines()[0] == ("Error: 2022-11 has not begun (today is 2022-10-20, UTC); give a month "
                                              "that has, or --month last")
    assert not (own_demo / "out").exists()


def test_the_current_month_is_provisional(own_demo):
    result = billing("run", "--month", "2022-10", "--today", "2022-10-31", "--config", str(own_demo / "billing.yaml"),
                     "--log-format", "json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any("still settling until 2022-11-06" in r["message"] for r in records if r["level"] == "warning")
    assert {r["status"] for r in register(own_demo / "out" / "2022-10")} == {"provisional"}


def test_last_on_the_first_of_january_at_midnight_bills_december(own_demo, own_ledger):
    config = str(own_demo / "billing.yaml")
    result = billing("status", "--month", "last", "--today", "2023-01-01", "--config", config)
    assert result.exit_code == 0
    assert result.stdout == (f"There is no ledger at sqlite:///{own_ledger} yet (billing run --month YYYY-MM "
                             "creates it and records a month's drafts).\n")
    assert not own_ledger.exists()  # reading the ledger never creates one
    assert billing("run", "--month", "2022-09", "--config", config).exit_code == 0
    result = billing("status", "--month", "last", "--today", "2023-01-01", "--config", config)
    assert result.stdout == ("The ledger holds no invoice for 2022-12 yet (billing run --month YYYY-MM records a "
                             "month's drafts).\n")

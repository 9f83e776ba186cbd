"""The review pages: ``<output>/<YYYY-MM>/index.html`` and ``<output>/index.html``.

The browser test runs the demo's months 2022-08 to 2022-10 into a temporary output folder once
(and finalizes one August invoice), then opens the pages in headless Chromium (Debian's
``chromium``, driven by Playwright) from ``file://``. It writes full-page screenshots for a person
to look at: ``review-2022-09.png`` and ``review-index.png`` in the ``screenshots`` folder of the
session's pytest temporary folder (``/tmp/pytest-of-<user>/pytest-current/screenshots/`` on Linux),
or in the folder ``BILLING_TEST_SCREENSHOTS`` names. The other tests build small month folders by
hand.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from billing import atomic, ledger
from billing.config import load_config
from billing.config.job import Guards, MaxUnattributed
from billing.delivery.manifest import content_type
from billing.finalize import finalize_month
from billing.guards import Finding
from billing.records import Month
from billing.render import csv_files
from billing.review import pages, publish_index, write_index, write_month_page
from billing.run import run_month

from conftest import ROOT
from test_api import (detail_row, reconciliation_row, register_row, share_row, two_months, unattributed_row,
                      write_month)

DEMO_CONFIG = ROOT / "config" / "billing.yaml"
MONTHS = (Month(2022, 8), Month(2022, 9), Month(2022, 10))


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, config) -> Path:
    """The demo's three months run into one output folder, with its own ledger; then PaleoHack's
    August invoice finalized (August becomes partly finalized)."""
    output = tmp_path_factory.mktemp("review-output")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BILLING_LEDGER_URL", f"sqlite:///{tmp_path_factory.mktemp('review-ledger')}/ledger.sqlite")
        for month in MONTHS:
            run_month(config, month, output, today=dt.date(2023, 1, 15))
        finalize_month(config, MONTHS[0], ["paleohack"], output)
    return output


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, launched once for the module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        pytest.skip("no chromium binary: install Debian's chromium package (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def open_page(browser, path: Path, problems: list[str], requests: list[str]):
    """``path`` opened from file://, every console error and page error noted in ``problems``,
    every request that is not for a local file refused and noted in ``requests``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def route(request_route):
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            requests.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(path.as_uri(), wait_until="load")
    return page


def assert_every_link_resolves(page, path: Path) -> int:
    """Every link is relative (so it works from a bucket too) and leads, as the browser resolves
    it, to a file that exists, or to an element of the page."""
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => [a.getAttribute('href'), a.href])")
    assert links
    for written, resolved in links:
        assert not urlparse(written).scheme and not written.startswith("/"), written
        url = urlparse(resolved)
        assert url.scheme == "file" and Path(unquote(url.path)).is_file(), written
        if url.fragment:
            assert Path(unquote(url.path)) == path and page.locator(f"[id='{url.fragment}']").count() == 1, written
    return len(links)


def test_the_month_page_and_the_index_in_a_browser(demo, browser, config, tmp_path_factory):
    screenshots = Path(os.environ.get("BILLING_TEST_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    problems, requests = [], []
    month_page = demo / "2022-09" / "index.html"
    page = open_page(browser, month_page, problems, requests)

    links = assert_every_link_resolves(page, month_page)
    files = sorted(p.name for p in (demo / "2022-09").iterdir() if p.name != "index.html")
    linked = page.eval_on_selector_all("#files a", "links => links.map(a => a.getAttribute('href'))")
    assert sorted(linked) == files and links > len(files)
    assert "findings.csv" in linked and "../index.html" in page.eval_on_selector_all(
        "header a", "links => links.map(a => a.getAttribute('href'))")

    community_chart = page.locator("svg[aria-labelledby='chart1-community-title']")
    series = community_chart.locator("g.series")
    assert series.count() == len(config.communities)  # one series per community
    assert sorted(series.evaluate_all("groups => groups.map(g => g.dataset.community)")) == sorted(
        c.id for c in config.communities)
    bars = series.locator("path")
    assert bars.count() == 2 * len(config.communities)  # August and September
    assert "PaleoHack, Sep 2022: 1,248.01 USD" in bars.evaluate_all("paths => paths.map(p => p.textContent)")
    providers = page.locator("svg[aria-labelledby='chart1-provider-title'] g.series")
    assert sorted(providers.evaluate_all("groups => groups.map(g => g.dataset.provider)")) == ["aws", "azure", "gcp"]
    assert page.locator("svg[id], svg [id]").evaluate_all("els => new Set(els.map(e => e.id)).size == els.length")

    invoices = page.locator("#invoices tbody tr")
    assert invoices.count() == 8
    first = invoices.first.inner_text().replace("\xa0", " ")
    assert "PaleoHack" in first and "1,748.01 USD" in first and "-22.56 USD" in first  # against 1,770.57 in August
    assert page.locator("h1").inner_text().startswith("September 2022")
    page.screenshot(path=str(screenshots / "review-2022-09.png"), full_page=True)

    index = demo / "index.html"
    page = open_page(browser, index, problems, requests)
    assert_every_link_resolves(page, index)
    rows = page.locator("tbody tr")
    assert [rows.nth(n).locator("th a").inner_text() for n in range(3)] == [
        "October 2022", "September 2022", "August 2022"]
    assert "partly finalized" in rows.nth(2).inner_text().lower()
    page.screenshot(path=str(screenshots / "review-index.png"), full_page=True)

    assert problems == [] and requests == []
    assert (screenshots / "review-2022-09.png").stat().st_size > 50_000


def test_the_month_page_is_made_again_byte_for_byte_from_the_folder(demo, config):
    for month in MONTHS[1:]:
        folder = demo / str(month)
        assert pages.month_page(folder, config, month).encode() == (folder / "index.html").read_bytes()


def test_finalize_refreshes_the_month_page_and_the_index(demo):
    august = (demo / "2022-08" / "index.html").read_text()
    assert re.search(r"<h1>August 2022 <span class=\"status status-partly-finalized\">partly finalized", august)
    assert re.search(r'<a href="invoice-2022-08-paleohack.pdf">INV-2022-\d+</a>', august)
    index = (demo / "index.html").read_text()
    assert index.count('<span class="status status-partly-finalized">partly finalized') == 1
    assert index.count('<span class="status status-draft">draft') == 2
    assert "the ledger says" not in index  # the folders and the ledger agree


def config_with(config, amount=None, percent=None):
    limits = MaxUnattributed(amount=amount, percent=percent)
    return config.model_copy(update={"guards": Guards(max_unattributed=limits)})


def month_with_unattributed(folder: Path, *rows: dict) -> Path:
    return write_month(folder, register=[register_row("paleohack", "10.00")],
                       detail=[detail_row("community", "paleohack", "10.00")],
                       reconciliation=[reconciliation_row("gcp", "200.00", unattributed="12.00")],
                       unattributed=list(rows))


def test_unattributed_cost_above_the_guard_limit_is_highlighted(tmp_path, config):
    folder = month_with_unattributed(tmp_path / "2022-09", unattributed_row("15.00"), unattributed_row("-3.00"))
    # measured as the guard measures it: 15 + 3 = 18.00 (9% of 200.00); 12.00 net
    month = Month(2022, 9)
    over = pages.month_page(folder, config_with(config, amount=Decimal("17.99")), month)
    assert '<div class="card alert">' in over
    assert "above the limit</strong> of 17.99 USD" in over
    assert "<strong>18.00&nbsp;<span class=\"ccy\">USD</span></strong> unattributed (9.00% of the" in over
    assert "12.00&nbsp;<span class=\"ccy\">USD</span> after" in over
    by_percent = pages.month_page(folder, config_with(config, percent=Decimal("8.5")), month)
    assert "above the limit</strong> of 8.5% of the providers&#39; total" in by_percent
    within = pages.month_page(folder, config_with(config, amount=Decimal("18.00"), percent=Decimal(9)), month)
    assert "card alert" not in within and "within the limit" in within
    assert within.count("lost-project") == 2  # each row listed


def test_the_index_lists_every_month_newest_first_and_highlights_what_is_over(tmp_path, config):
    two_months(tmp_path)
    month_with_unattributed(tmp_path / "2022-10", unattributed_row("150.00", month="2022-10"))
    documents = [ledger.Document("2022-08", "a", "invoice", "draft", None, "USD", Decimal("100.00"), False)]
    write_index(config, tmp_path, documents)
    text = (tmp_path / "index.html").read_text()
    months = re.findall(r'<th scope="row">(?:<a href="[^"]*">)?(\w+ \d{4})', text)
    assert months == ["October 2022", "September 2022", "August 2022"]
    assert '<td class="num alert">150.00&nbsp;<span class="ccy">USD</span>\n        (75.00%), above the limit' in text
    assert "the ledger says draft" in text  # August's register says finalized
    assert '130.50&nbsp;<span class="ccy">USD</span>' in text and '90.00&nbsp;<span class="ccy">CAD</span>' in text
    assert "href=" not in text.split("<tbody>")[1]  # no month page in these folders: nothing to link to


def test_text_from_the_files_is_escaped(tmp_path, config):
    folder = write_month(tmp_path / "2022-09", register=[register_row("x", "1.00", name="<script>alert(1)</script>")],
                         findings=[{"kind": "", "subject": "", "status": "warning", "message": "<b>bold</b>"}])
    text = pages.month_page(folder, config, Month(2022, 9))
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text


@pytest.mark.parametrize("name", ["Paleo $x_$ Hack", "R$ 5 and US$ 7", "A $\\frac$ B", "50% off $x_$"])
def test_dollar_signs_in_a_name_are_text_not_mathematics(name):
    from billing.review.charts import Series, stacked_bars
    svg = stacked_bars("c", "community", ["2022-09"], [Series("x", name, "#000000")],
                       {("x", "2022-09"): Decimal("1.00")}, "USD", "Per community")
    assert html.escape(name, quote=False) in svg  # the legend says the name as written


def test_a_month_folder_that_cannot_be_read_does_not_stop_the_others(tmp_path, config):
    two_months(tmp_path)
    register = tmp_path / "2022-08" / "invoice-register.csv"
    register.write_text(register.read_text(encoding="utf-8-sig").replace("amount_due", "due"), encoding="utf-8-sig")
    write_month_page(tmp_path / "2022-09", config, Month(2022, 9))
    page = (tmp_path / "2022-09" / "index.html").read_text()
    assert "Some other months could not be read" in page and "2022-08: " in page and "no column amount_due" in page
    assert "The folder of the month before could not be read" in page
    write_index(config, tmp_path)
    index = (tmp_path / "index.html").read_text()
    assert "Some month folders could not be read" in index and "September 2022" in index


def test_the_shared_pools_say_how_they_were_split(tmp_path, config):
    folder = write_month(
        tmp_path / "2022-09", register=[register_row("paleohack", "10.00")],
        shares=[share_row("gke-overhead", "paleohack", "3.34", "10.01", weight="733.664854", percent="33.3667",
                          split="proportional"),
                share_row("gke-overhead", "ciroh", "6.67", "10.01", weight="1465.1", percent="66.6333",
                          split="proportional")])
    text = pages.month_page(folder, config, Month(2022, 9))
    assert "split in proportion to direct cost" in text
    assert re.search(r"<td>PaleoHack</td>\s*<td class=\"num\">733.66&nbsp;<span class=\"ccy\">USD</span></td>\s*"
                     r"<td class=\"num\">33.37%</td>\s*<td class=\"num\">3.34&nbsp;", text)
    assert re.search(r"Split</th>\s*<td class=\"num\">10.01&nbsp;", text)


def test_findings_csv_lists_accepted_findings_then_warnings(tmp_path):
    finding = Finding("cost-change", "ciroh", "community ciroh's cloud cost changed by +60.0% since last month")
    warnings = ("allowed: cost-change:ciroh by someone@somewhere: community ciroh's cloud cost changed by +60.0%",
                "CIROH: cloud costs 3,226.89 exceed the monthly limit of 3,000.00",
                "-leading dash")
    csv_files.write_findings(tmp_path / "findings.csv", (finding,), warnings)
    assert csv_files.read_csv(tmp_path / "findings.csv") == [
        {"kind": "cost-change", "subject": "ciroh", "status": "allowed", "message": finding.message},
        {"kind": "", "subject": "", "status": "warning", "message": warnings[1]},
        {"kind": "", "subject": "", "status": "warning", "message": "-leading dash"}]
    assert "someone@somewhere" not in (tmp_path / "findings.csv").read_text(encoding="utf-8-sig")


def test_two_months_publishing_at_once_both_reach_the_index(tmp_path, config):
    """One run holds the index's lock while another month is published: the second waits for it,
    then reads every folder, so neither month is lost."""
    write_month(tmp_path / "2022-08", register=[register_row("a", "1.00", month="2022-08")])
    done = threading.Event()
    with atomic.locked(tmp_path / "index.html", "the index of months"):
        write_index(config, tmp_path)  # the holder's write: only August is published yet
        assert "September 2022" not in (tmp_path / "index.html").read_text()
        waiting = threading.Thread(target=lambda: (publish_index(config, tmp_path, None), done.set()))
        waiting.start()
        write_month(tmp_path / "2022-09", register=[register_row("b", "2.00")])  # the other run publishes
        time.sleep(0.3)
        assert not done.is_set()  # it waits for the lock
    waiting.join(timeout=20)
    assert done.is_set()
    text = (tmp_path / "index.html").read_text()
    assert "September 2022" in text and "August 2022" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".index")] == []  # no temporary file left


def test_delivery_stores_the_pages_and_the_workbook_with_their_content_types():
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("billing-2022-09.xlsx") == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert content_type("xero-invoices.csv") == "text/csv; charset=utf-8"


def test_the_page_uses_no_script_and_nothing_from_elsewhere(demo):
    for path in (demo / "2022-09" / "index.html", demo / "index.html"):
        text = path.read_text()
        assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/", "")
        assert "https://" not in text and str(demo) not in text and os.sep + "tmp" + os.sep not in text

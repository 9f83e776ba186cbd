"""Rendering invoices in worker processes (billing.render.pool): the same bytes as in one process,
progress in the invoices' order, a failure as one line naming the invoice with nothing published,
no worker outliving a killed run, and finalize's PDFs rendered ahead only where they fit."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing import atomic
from billing.cli import main
from billing.config import load_config
from billing.errors import DataError, OutputError, UsageError
from billing.finalize import FinalPdfs
from billing.pricing import final_number
from billing.render import pdf
from billing.render.pdf import pdf_name, sha256_of, write_invoice_pdf, write_pdfs
from billing.render.pool import Renderer, worker_count
from billing.run import compute_month

from conftest import ROOT, SEPTEMBER

CONFIG = ROOT / "config" / "billing.yaml"


@pytest.fixture(scope="module")
def demo():
    """The demo's September invoices (drafts) and its config."""
    config = load_config(CONFIG)
    return compute_month(config, SEPTEMBER).invoices, config


@pytest.fixture(scope="module")
def serial(demo, tmp_path_factory) -> dict[str, bytes]:
    """The demo's PDFs rendered one after the other in this process."""
    invoices, config = demo
    folder = tmp_path_factory.mktemp("serial")
    write_pdfs(folder, None, invoices, {}, config, jobs=1)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def renders_here() -> int:
    """How many PDFs this process has rendered so far."""
    info = pdf.prepared.cache_info()
    return info.hits + info.misses


def test_two_workers_give_the_bytes_of_one_process_and_progress_in_the_invoices_order(demo, serial, tmp_path):
    invoices, config = demo
    told: list[str] = []
    before = renders_here()
    write_pdfs(tmp_path, None, invoices, {}, config, step=told.append, jobs=2)
    assert renders_here() == before  # every one was rendered by a worker
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == serial
    assert told == [pdf_name(invoice) for invoice in invoices] and len(told) == 8


def test_workers_are_billing_jobs_or_one_per_usable_cpu_and_at_most_one_per_pdf(monkeypatch):
    monkeypatch.delenv("BILLING_JOBS", raising=False)
    assert worker_count(2, 8) == 2 and worker_count(4, 3) == 3 and worker_count(1, 8) == 1
    assert worker_count(None, 1000) == len(os.sched_getaffinity(0)) and worker_count(None, 0) == 0
    with pytest.raises(ValueError):
        worker_count(0, 8)
    monkeypatch.setenv("BILLING_JOBS", "3")
    assert worker_count(None, 1000) == 3 and worker_count(None, 2) == 2 and worker_count(1, 1000) == 1
    monkeypatch.setenv("BILLING_JOBS", "-1")
    with pytest.raises(UsageError, match=r"^BILLING_JOBS in the environment must be a positive whole number of "
                                         r"worker processes, e.g. 2 \(it is '-1'\)$"):
        worker_count(None, 8)


def test_a_failure_in_a_worker_is_one_line_naming_the_invoice_and_nothing_is_published(demo, tmp_path):
    invoices, config = demo
    broken = [*invoices[:5], invoices[5]._replace(issue_date=None), *invoices[6:]]
    final = tmp_path / "out" / "2022-09"
    with pytest.raises(OutputError) as caught:
        with atomic.replacing(final, "the outputs of 2022-09") as version:
            write_pdfs(version, None, broken, {}, config, jobs=2)
    message = caught.value.message
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"cannot write {pdf_name(invoices[5])} (the invoice {invoices[5].number} of "
                              f"{invoices[5].community_id} for 2022-09): UndefinedError: ")  # the template's
    assert not final.exists() and list((final.parent / ".versions").iterdir()) == []


def test_a_pdf_that_cannot_be_written_names_the_file_and_why(demo, tmp_path):
    invoices, config = demo
    with Renderer(config, 2, 2) as renderer:
        pending = renderer.start(tmp_path / "no-such-folder" / "x.pdf", invoices[0],
                                 config.community(invoices[0].community_id))
        with pytest.raises(OutputError, match=r"^cannot write x\.pdf \(the invoice .*\): No such file or directory"):
            pending.wait()


def test_a_killed_worker_is_one_clear_line(demo, tmp_path):
    invoices, config = demo
    with Renderer(config, 2, len(invoices)) as renderer:
        pending = [renderer.start(tmp_path / pdf_name(invoice), invoice, config.community(invoice.community_id))
                   for invoice in invoices]
        pending[0].wait()
        for pid in renderer.pids():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(OutputError) as caught:
            for rendering in pending:
                rendering.wait()
    assert "its worker process stopped abruptly (killed, e.g. out of memory)" in caught.value.message
    assert "\n" not in caught.value.message


KILLED = """
import pickle, sys, time
from pathlib import Path
from billing.config import load_config
from billing.render.pool import Renderer

if __name__ == "__main__":
    config = load_config(Path(sys.argv[1]))
    invoices = pickle.loads(Path(sys.argv[2], "invoices.pickle").read_bytes())
    with Renderer(config, 2, len(invoices)) as renderer:
        pending = [renderer.start(Path(sys.argv[2]) / f"{n}.pdf", invoice, config.community(invoice.community_id))
                   for n, invoice in enumerate(invoices)]
        pending[0].wait()
        print(*renderer.pids(), flush=True)
        time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_no_worker_outlives_a_run_killed_with_sigkill(demo, tmp_path):
    script = tmp_path / "renders.py"
    script.write_text(KILLED)
    (tmp_path / "invoices.pickle").write_bytes(pickle.dumps(demo[0] * 20))
    process = subprocess.Popen([sys.executable, str(script), str(CONFIG), str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in process.stdout.readline().split()]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert len(pids) == 2 and all(pid != process.pid for pid in pids)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "a worker outlived the run that started it"
    written = len(list(tmp_path.glob("*.pdf")))
    time.sleep(0.5)
    assert len(list(tmp_path.glob("*.pdf"))) == written  # and nothing writes any more


def ledger_finalizes(pdfs: FinalPdfs, drafts, last: int) -> dict[str, str]:
    """What ``ledger.finalize`` does with its callbacks: number each draft in turn, then ask for
    its final PDF; the sha256 of each by its number."""
    shas = {}
    for offset, draft in enumerate(drafts, start=1):
        final = draft._replace(number=pdfs.number(last + offset, draft), status="finalized")
        shas[final.number] = pdfs.render(final)
    return shas


def test_finalize_renders_ahead_in_workers_the_pdfs_the_ledger_asks_for(demo, tmp_path):
    invoices, config = demo
    folder = tmp_path / "version"
    folder.mkdir()
    before = renders_here()
    with FinalPdfs(folder, config, invoices, jobs=2) as pdfs:
        shas = ledger_finalizes(pdfs, invoices, last=41)
    assert renders_here() == before  # all rendered ahead, by the workers
    assert sorted(path.name for path in folder.iterdir()) == sorted(pdf_name(i) for i in invoices)  # no .ahead left
    assert sorted(shas) == [final_number(config, 41 + n, invoices[0]) for n in range(1, 9)]
    for offset in (1, 5, 8):  # the same bytes as rendered here
        draft = invoices[offset - 1]
        final = draft._replace(number=final_number(config, 41 + offset, draft), status="finalized")
        write_invoice_pdf(tmp_path / "here.pdf", final, config.community(final.community_id), config)
        assert sha256_of(folder / pdf_name(final)) == sha256_of(tmp_path / "here.pdf") == shas[final.number]


def test_finalize_renders_again_what_was_rendered_ahead_with_another_number(demo, tmp_path):
    """Another finalizer took numbers meanwhile, or finalized two of the drafts: the numbers the
    ledger gives differ from those rendered ahead, and no PDF is used for an invoice it was not
    rendered from."""
    invoices, config = demo
    folder = tmp_path / "version"
    folder.mkdir()
    expected = list(invoices)
    asked = [invoices[0], *invoices[3:]]  # two were finalized by another process
    before = renders_here()
    with FinalPdfs(folder, config, expected, jobs=2) as pdfs:
        shas = ledger_finalizes(pdfs, asked, last=7)
    assert renders_here() - before == len(asked) - 1  # only the first one's number was foreseen
    for offset in (1, 2):  # rendered ahead, and rendered when asked for
        draft = asked[offset - 1]
        final = draft._replace(number=final_number(config, 7 + offset, draft), status="finalized")
        write_invoice_pdf(tmp_path / "here.pdf", final, config.community(final.community_id), config)
        assert sha256_of(folder / pdf_name(final)) == sha256_of(tmp_path / "here.pdf") == shas[final.number]
    assert sorted(path.name for path in folder.iterdir()) == sorted(pdf_name(i) for i in asked)


def test_a_final_pdf_already_in_the_folder_or_elsewhere_is_kept_and_a_changed_one_refused(demo, tmp_path):
    invoices, config = demo
    final = invoices[0]._replace(number="INV-2022-00001", status="finalized")
    rendered = tmp_path / "rendered.pdf"
    write_invoice_pdf(rendered, final, config.community(final.community_id), config)
    sha = sha256_of(rendered)
    folder, previous, empty = tmp_path / "folder", tmp_path / "previous", tmp_path / "empty"
    for made in (folder, previous, empty):
        made.mkdir()
    (previous / "renamed.pdf").write_bytes(rendered.read_bytes())
    before = renders_here()
    write_pdfs(folder, previous, [final], {final.number: sha}, config, jobs=1)  # copied from previous
    write_pdfs(folder, empty, [final], {final.number: sha}, config, jobs=1)  # already there
    assert renders_here() == before and sha256_of(folder / pdf_name(final)) == sha
    with pytest.raises(DataError, match="rendering it again does not give the recorded bytes"):
        write_pdfs(empty, None, [final], {final.number: "0" * 64}, config, jobs=1)


@pytest.fixture
def without_harfbuzz_subset(monkeypatch, caplog):
    """This machine as one without HarfBuzz's font subsetting library: the file names it is looked
    for by are swapped for one no machine has (WeasyPrint itself still finds it). The ``billing``
    loggers are made to reach ``caplog``."""
    monkeypatch.setattr(pdf, "HARFBUZZ_SUBSET", ("libharfbuzz-subset-not-here.so.0",))
    monkeypatch.setattr(logging.getLogger("billing"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="billing")
    pdf.warn_of_slow_font_subsetting.cache_clear()  # said once per process
    yield caplog
    pdf.warn_of_slow_font_subsetting.cache_clear()


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "billing.render" and r.levelno == logging.WARNING]


def test_rendering_without_harfbuzz_subsetting_is_said_once_to_be_slow_and_keeping_pdfs_says_nothing(
        demo, tmp_path, without_harfbuzz_subset):
    invoices, config = demo
    write_pdfs(tmp_path, None, invoices[:2], {}, config, jobs=1)
    (said,) = warnings_of(without_harfbuzz_subset)
    assert said.startswith("HarfBuzz's font subsetting library (libharfbuzz-subset.so.0; the Debian and Ubuntu "
                           "package libharfbuzz-subset0) is not installed, so each PDF takes about four times")
    without_harfbuzz_subset.clear()
    pdf.warn_of_slow_font_subsetting.cache_clear()
    final = invoices[0]._replace(number="INV-2022-00001", status="finalized")
    write_invoice_pdf(tmp_path / pdf_name(final), final, config.community(final.community_id), config)
    write_pdfs(tmp_path, None, [final], {final.number: sha256_of(tmp_path / pdf_name(final))}, config, jobs=1)
    assert warnings_of(without_harfbuzz_subset) == []  # nothing rendered: the final PDF is kept


def test_check_config_warns_of_a_machine_without_harfbuzz_subsetting_and_still_says_ok(without_harfbuzz_subset):
    result = CliRunner().invoke(main, ["check-config", "--config", str(CONFIG)])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"OK: {CONFIG} (")
    assert "render: warning: HarfBuzz's font subsetting library" in " ".join(result.stderr.split())


def test_harfbuzz_subsetting_is_found_by_any_of_the_names_weasyprint_loads_it_by(monkeypatch):
    monkeypatch.setattr(pdf, "HARFBUZZ_SUBSET", ("libharfbuzz-subset-not-here.so.0", "libc.so.6"))
    assert pdf.slow_font_subsetting() is None  # a library found by its second name
    monkeypatch.setattr(pdf, "HARFBUZZ_SUBSET", ("libharfbuzz-subset-not-here.so.0",))
    assert "is not installed" in pdf.slow_font_subsetting()


@pytest.mark.parametrize("args, env, said", [
    (["--jobs", "0"], {}, "Invalid value for '--jobs': give a positive whole number of worker processes, e.g. 2 "
                          "(got '0')"),
    ([], {"BILLING_JOBS": "two"}, "Invalid value for '--jobs': give a positive whole number of worker processes, "
                                  "e.g. 2 (BILLING_JOBS is 'two')"),
])
@pytest.mark.parametrize("command", ["run", "finalize"])
def test_jobs_must_be_a_positive_number(command, args, env, said):
    result = CliRunner().invoke(main, [command, "--month", "2022-09", *args], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"Error: {said}"


def test_help_documents_jobs_with_an_example():
    for command in ("run", "finalize"):
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        assert "--jobs N Render the PDF invoices with N worker processes (or set BILLING_JOBS)" in text
        assert f"billing {command} --month 2022-09 --jobs 2" in text

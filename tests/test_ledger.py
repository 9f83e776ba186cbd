"""The ledger, on SQLite and on PostgreSQL: the same tests on both databases.

PostgreSQL is reached through ``BILLING_TEST_POSTGRES_URL`` (``.ci/run`` sets it); each test works
in a schema of its own and drops it. Where the variable is set and the server does not answer,
the tests fail rather than skip.
"""

import gzip
import json
import datetime as dt
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from billing import ledger
from billing.cli import main
from billing.errors import LedgerError
from billing.ledger.schema import events, invoice_lines, invoices
from billing.ledger.void import credit_note_for
from billing.records import Figure, Invoice, InvoiceLine, Month
from billing.render.csv_files import read_csv

from conftest import ROOT, SEPTEMBER, said

POSTGRES = os.environ.get("BILLING_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    if not POSTGRES:
        pytest.skip("BILLING_TEST_POSTGRES_URL is not set")
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:  # fails, not skips, when the server does not answer
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def draft(community="paleohack", total="1234.567891234") -> Invoice:
    lines = (InvoiceLine("cloud", "Google Cloud: Compute Engine", "gcp", "Compute Engine", Decimal("1300.10"),
                         Decimal("-65.532108766"), Decimal(total)),)
    return Invoice("DRAFT-202209-" + community, "draft", community, community.title(), SEPTEMBER,
                   dt.date(2022, 10, 1), dt.date(2022, 10, 31), "USD", lines)


FINGERPRINT = ledger.Fingerprint((("gcp", "01A2B3-C4D5E6-F7A8B9", "USD", "8710.2"),), "ab" * 32, "0.1.0", False)


def test_a_new_database_becomes_a_ledger_at_this_codes_schema(url):
    engine = ledger.open_ledger(url, "billing run")
    try:
        assert ledger.status(engine) == ()
        with engine.connect() as connection:
            assert sa.inspect(connection).has_table("invoices")
        assert ledger.upgrade(url) == (ledger.head(), ledger.head())
    finally:
        engine.dispose()


def test_drafts_are_recorded_exactly_and_a_rerun_replaces_them(url):
    engine = ledger.open_ledger(url, "billing run")
    try:
        ledger.record_drafts(engine, SEPTEMBER, [draft(), draft("temple", "10.5")], FINGERPRINT, "billing run")
        ledger.record_drafts(engine, SEPTEMBER, [draft(total="1234.567891235")], FINGERPRINT, "billing run")
        [document] = ledger.status(engine)
        assert document[:5] == ("2022-09", "paleohack", "invoice", "draft", None)
        assert document.total == Decimal("1234.567891235") and isinstance(document.total, Decimal)
        with engine.connect() as connection:
            [line] = connection.execute(sa.select(invoice_lines)).mappings().all()
            assert (line["cost"], line["credits"]) == (Decimal("1300.10"), Decimal("-65.532108766"))
            changes = connection.execute(sa.select(events.c.community_id, events.c.change)
                                         .order_by(events.c.id)).all()
            assert changes == [("paleohack", "drafted"), ("temple", "drafted"), ("paleohack", "redrafted")]
            assert isinstance(invoices.c.total.type, sa.Numeric)
            kind = [c for c in sa.inspect(connection).get_columns("invoices") if c["name"] == "total"][0]["type"]
            assert isinstance(kind, sa.Numeric) and (kind.precision, kind.scale) == (38, 9)
    finally:
        engine.dispose()


def test_a_ledger_at_the_first_revision_is_refused_until_upgraded_and_keeps_its_invoices(url, tmp_path):
    from alembic import command
    from alembic.config import Config as AlembicConfig

    engine = sa.create_engine(url)
    with engine.begin() as connection:  # a ledger as the version before month figures made it
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(ROOT / "billing" / "ledger" / "migrations"))
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0001")
        assert not sa.inspect(connection).has_table("month_figures")
        connection.execute(sa.insert(invoices).values(  # an invoice of that version: its lines keep no tax
            community_id="paleohack", community_name="PaleoHack", month="2022-08", kind="invoice", status="finalized",
            number="INV-2022-00001", currency="USD", issue_date="2022-09-01", due_date="2022-10-01",
            cloud_costs=Decimal("10"), fees=0, discounts=0, tax=0, total=Decimal("10"), scope="[]", notes="[]",
            flags="[]", created_at="2022-09-01T00:00:00+00:00"))
        connection.execute(sa.insert(invoice_lines).values(
            invoice_id=1, position=1, section="cloud", description="Google Cloud: Compute Engine", provider="gcp",
            service="Compute Engine", cost=Decimal("10"), credits=0, amount=Decimal("10")))
    with pytest.raises(LedgerError, match=r"its schema is at revision 0001, older than this version of billing "
                                          r"\(0003\); run `billing ledger upgrade` first"):
        ledger.open_ledger(url, "billing run")
    assert ledger.upgrade(url) == ("0001", "0003")
    opened = ledger.open_ledger(url, "billing run")
    try:
        ledger.record_drafts(opened, SEPTEMBER, [draft()], FINGERPRINT, "billing run")
        figures = (Figure("community:paleohack", "USD", Decimal("1234.567891234"), 3),
                   Figure("rule:community:paleohack#1", "USD", Decimal("1234.567891234"), 3, "attribution[0] (...)"))
        ledger.record_figures(opened, SEPTEMBER, figures, [("forced", "why")], "billing run")
        ledger.record_figures(opened, SEPTEMBER, figures[:1], [], "billing run")  # a rerun replaces them
        assert ledger.figures_of(opened, SEPTEMBER) == figures[:1]
        assert ledger.figures_of(opened, SEPTEMBER.previous) is None
        assert [(e.change, e.detail) for e in ledger.events_of(opened, SEPTEMBER)] == [("forced", "why")]
        (old,) = [invoice for invoice, _ in ledger.finalized(opened, Month(2022, 8))]
        assert [(line.amount, line.taxable, line.tax) for line in old.lines] == [(Decimal("10"), None, None)]
    finally:
        opened.dispose()
    with engine.begin() as connection:  # and back: the downgrades drop what 0002 and 0003 added, nothing else
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0001")
        assert not sa.inspect(connection).has_table("month_events")
        assert sa.inspect(connection).has_table("invoices")
    engine.dispose()


def test_a_ledger_from_a_newer_billing_or_a_foreign_database_is_refused(url):
    ledger.open_ledger(url, "billing run").dispose()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(LedgerError, match=r"billing status refuses the ledger at .*: it was written by a newer "
                                          r"version of billing \(schema revision 9999\)"):
        ledger.open_ledger(url, "billing status")
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE alembic_version"))
    with pytest.raises(LedgerError, match=r"billing run refuses the database at .*: it holds tables but is not a "
                                          r"billing ledger"):
        ledger.open_ledger(url, "billing run")
    engine.dispose()


def test_a_run_records_its_drafts_and_status_lists_them(url, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    runner = CliRunner()
    config = str(ROOT / "config" / "billing.yaml")
    done = runner.invoke(main, ["run", "--month", "2022-09", "--config", config, "--output", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "Recorded 8 draft invoice(s) in the ledger" in done.output
    listed = runner.invoke(main, ["status", "--month", "2022-09", "--config", config])
    assert listed.exit_code == 0
    assert [line.split()[:4] for line in listed.stdout.splitlines()[1:3]] == [
        ["2022-09", "callysto", "invoice", "draft"], ["2022-09", "ciroh", "invoice", "draft"]]
    assert "4,380.87  CAD" in listed.output


def test_an_unreachable_ledger_is_one_line_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", "postgresql+psycopg://billing@127.0.0.1:9/ledger")
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(ROOT / "config" / "billing.yaml"),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert said(result).startswith("Error: billing run: cannot use the ledger at "
                                    "postgresql+psycopg://billing@127.0.0.1:9/ledger: ")
    assert said(result).count("\n") == 1
    assert not (tmp_path / "out" / "2022-09").exists()


def test_a_password_in_the_configs_ledger_url_is_refused(tmp_path):
    text = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/", f"{ROOT}/demo/")
    path = tmp_path / "billing.yaml"
    path.write_text(text + "ledger: {url: 'postgresql+psycopg://billing:secret@db.example/ledger'}\n")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "ledger.url: Value error" not in said(result)
    assert "holds a password; give it in the environment (PGPASSWORD)" in said(result)


# --- finalizing ----------------------------------------------------------------------------------

def run_cli(*args):
    return CliRunner().invoke(main, [*args, "--config", str(ROOT / "config" / "billing.yaml")])


def pdf_text(path) -> str:
    from pypdf import PdfReader
    return " ".join(page.extract_text() for page in PdfReader(path).pages)


def test_finalize_numbers_without_gaps_prints_final_pdfs_and_a_rerun_changes_none(url, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    assert run_cli("run", "--month", "2022-09", "--output", out).exit_code == 0
    folder = tmp_path / "out" / "2022-09"
    assert "DRAFT" in pdf_text(folder / "invoice-2022-09-paleohack.pdf").upper()

    first = run_cli("finalize", "--month", "2022-09", "--output", out, "--community", "paleohack",
                    "--community", "ciroh")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[:2] == ["INV-2022-00001  CIROH  4,719.96 USD  finalized",
                                             "INV-2022-00002  PaleoHack  1,748.01 USD  finalized"]
    rest = run_cli("finalize", "--month", "2022-09", "--output", out)
    assert rest.exit_code == 0 and "Finalized 6 invoice(s) of September 2022; 2 were final already." in rest.output
    again = run_cli("finalize", "--month", "2022-09", "--output", out)
    assert "Finalized 0 invoice(s) of September 2022; 8 were final already." in again.output

    register = (folder / "invoice-register.csv").read_text().splitlines()
    numbers = sorted(line.split(",")[0] for line in register[1:])
    assert numbers == [f"INV-2022-{n:05d}" for n in range(1, 9)]
    assert all(line.split(",")[12] == "finalized" for line in register[1:])
    text = pdf_text(folder / "invoice-2022-09-paleohack.pdf")
    assert "INV-2022-00002" in text and "DRAFT" not in text.upper()

    focus = read_csv(folder / "focus-2022-09.csv")  # the FOCUS rows carry the numbers finalize gave
    assert {r["x_InvoiceNumber"] for r in focus if r["x_Community"] == "paleohack"} == {"INV-2022-00002"}
    assert {r["x_InvoiceNumber"] for r in focus if not r["x_Community"]} == {""}

    before = {p.name: p.read_bytes() for p in [*folder.glob("*.pdf"), *folder.glob("focus-*")]}
    rerun = run_cli("run", "--month", "2022-09", "--output", out)
    assert rerun.exit_code == 0 and "kept 8 final document(s) as they are" in rerun.output
    assert {p.name: p.read_bytes() for p in [*folder.glob("*.pdf"), *folder.glob("focus-*")]} == before
    assert (folder / "invoice-register.csv").read_text().count("finalized") == 8
    listed = run_cli("status", "--month", "2022-09")
    assert "finalized  INV-2022-00002" in listed.output


def test_a_finalized_pdf_that_went_missing_is_rendered_again_to_the_same_bytes(url, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    run_cli("run", "--month", "2022-09", "--output", out)
    run_cli("finalize", "--month", "2022-09", "--output", out, "--community", "temple")
    pdf = tmp_path / "out" / "2022-09" / "invoice-2022-09-temple.pdf"
    kept = pdf.read_bytes()
    shutil.rmtree(tmp_path / "out")
    again = run_cli("run", "--month", "2022-09", "--output", out)
    assert again.exit_code == 0, again.output
    assert pdf.read_bytes() == kept


def test_finalize_refuses_a_month_never_run_an_unknown_community_and_provisional_data(url, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    run_cli("run", "--month", "2022-09", "--output", out)
    never = run_cli("finalize", "--month", "2022-10", "--output", out)
    assert never.exit_code == 2
    assert said(never).startswith("Error: billing finalize: ")
    unknown = run_cli("finalize", "--month", "2022-09", "--output", out, "--community", "nobody")
    assert unknown.exit_code == 2
    assert said(unknown).startswith("Error: billing finalize: 2022-09 has no invoice for nobody (it has: callysto")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE months SET provisional = true"))
    engine.dispose()
    provisional = run_cli("finalize", "--month", "2022-09", "--output", out)
    assert provisional.exit_code == 1
    assert "2022-09 is provisional" in said(provisional)
    assert "draft" in run_cli("status", "--month", "2022-09").output  # nothing changed
    assert "finalized" not in run_cli("status", "--month", "2022-09").output


def test_drafts_priced_with_another_config_are_refused_until_the_month_is_run_again(url, own_demo, monkeypatch):
    """The fee changed in the config after the month's drafts were priced: finalizing them would
    issue invoices that disagree with the contract as the config now says it."""
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    config = own_demo / "billing.yaml"

    def cli(*args):
        return CliRunner().invoke(main, [*args, "--config", str(config)])

    assert cli("run", "--month", "2022-09").exit_code == 0
    text = config.read_text()
    changed = text.replace("(shared cluster), amount: 500.00}", "(shared cluster), amount: 900.00}", 1)
    assert changed != text
    config.write_text(changed)
    refused = cli("finalize", "--month", "2022-09", "--community", "paleohack")
    assert refused.exit_code == 1
    assert said(refused).startswith("Error: billing finalize: 2022-09's drafts were priced with another version of "
                                    "the config (sha256 ")
    assert "run `billing run --month 2022-09` again to price them with this config" in said(refused)
    assert "finalized" not in cli("status", "--month", "2022-09").stdout  # nothing changed

    assert cli("run", "--month", "2022-09").exit_code == 0
    done = cli("finalize", "--month", "2022-09", "--community", "paleohack")
    assert done.exit_code == 0, done.output
    assert "INV-2022-00001  PaleoHack  2,148.01 USD  finalized" in done.stdout  # the fee of 900.00
    assert "(1 final, 7 draft(s))" in done.stderr  # the closing summary: the month is partly final
    config.write_text(text)  # a finalize with nothing left to finalize is not refused for a changed config
    again = cli("finalize", "--month", "2022-09", "--community", "paleohack")
    assert again.exit_code == 0 and "already finalized, unchanged" in again.stdout


# --- two finalizers at once, and a finalizer killed --------------------------------------------------

def billing_process(*args, url):
    env = {**os.environ, "BILLING_LEDGER_URL": url}
    return subprocess.Popen([sys.executable, "-m", "billing.cli", *args, "--config", str(ROOT / "config" / "billing.yaml")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger_numbers(url) -> list[tuple[str, str | None, str | None]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(invoices.c.community_id, invoices.c.number, invoices.c.pdf_sha256)
                                  .order_by(invoices.c.community_id)).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_two_finalizers_at_once_never_share_or_skip_a_number(url, tmp_path):
    """Two processes, each with its own output folder, finalize the same month of one ledger."""
    for name in ("a", "b"):
        assert billing_process("run", "--month", "2022-09", "--output", str(tmp_path / name), url=url).wait(120) == 0
    both = [billing_process("finalize", "--month", "2022-09", "--output", str(tmp_path / name), url=url)
            for name in ("a", "b")]
    outputs = [(p.wait(120), p.stdout.read(), p.stderr.read()) for p in both]
    assert all(code == 0 for code, _, _ in outputs), outputs
    numbers = sorted(number for _, number, _ in ledger_numbers(url))
    assert numbers == [f"INV-2022-{n:05d}" for n in range(1, 9)]
    newly = sum(out.count("  finalized\n") for _, out, _ in outputs)
    assert newly == 8  # each invoice was finalized by exactly one of them


def test_a_finalizer_killed_at_random_instants_leaves_the_ledger_and_folder_matching(url, tmp_path):
    out = str(tmp_path / "out")
    assert billing_process("run", "--month", "2022-09", "--output", out, url=url).wait(120) == 0
    rng = random.Random(10)
    for _ in range(3):
        process = billing_process("finalize", "--month", "2022-09", "--output", out, url=url)
        time.sleep(rng.uniform(1.0, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        state = ledger_numbers(url)
        assert len({number is None for _, number, _ in state}) == 1, state  # all drafts or all final
        register = (tmp_path / "out" / "2022-09" / "invoice-register.csv").read_text()
        if state[0][1] is None:
            assert "finalized" not in register
        else:
            break
    assert billing_process("finalize", "--month", "2022-09", "--output", out, url=url).wait(120) == 0
    state = ledger_numbers(url)
    folder = tmp_path / "out" / "2022-09"
    register = {line.split(",")[1]: line.split(",")[0] for line in (folder / "invoice-register.csv").read_text()
                .splitlines()[1:]}
    for community, number, sha256 in state:
        assert register[community] == number
        assert hashlib.sha256((folder / f"invoice-2022-09-{community}.pdf").read_bytes()).hexdigest() == sha256


# --- voiding ---------------------------------------------------------------------------------------

def test_void_makes_a_numbered_credit_note_and_the_month_can_be_invoiced_again(url, tmp_path, monkeypatch):
    """Done when: void one September invoice; a numbered credit note exists, a new September
    invoice can be finalized, and billing status shows all three documents."""
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    run_cli("run", "--month", "2022-09", "--output", out)
    run_cli("finalize", "--month", "2022-09", "--output", out)
    folder = tmp_path / "out" / "2022-09"
    sent = (folder / "invoice-2022-09-temple.pdf").read_bytes()

    voided = run_cli("void", "INV-2022-00008", "--reason", "billed to the wrong department", "--output", out,
                     "--today", "2022-11-15")
    assert voided.exit_code == 0, voided.output
    assert voided.stdout.startswith("Voided INV-2022-00008 (Temple University, September 2022); credit note "
                                    "INV-2022-00009 for -3,436.34 USD cancels it.")
    assert (folder / "invoice-2022-09-temple-INV-2022-00008-void.pdf").read_bytes() == sent
    note = " ".join(pdf_text(folder / "credit-note-2022-09-temple-INV-2022-00009.pdf").split())
    assert "CREDIT NOTE" in note.upper() and "cancels invoice INV-2022-00008" in note
    assert "Total credited -$3,436.34" in note
    # issued the day it was made, not on the invoice's date (October 1, in a period perhaps closed)
    assert "Issue date November 15, 2022 Due date November 15, 2022" in note

    rerun = run_cli("run", "--month", "2022-09", "--output", out)
    assert rerun.exit_code == 0
    table = [" ".join(line.split()) for line in rerun.stdout.splitlines()]  # which row is which document
    assert "Community Document Cloud costs Fees Discounts Tax Total" in table
    assert [line for line in table if line.startswith("Temple University ")] == [
        "Temple University draft 1,051.34 2,250.00 0.00 135.00 3,436.34 USD",
        "Temple University void INV-2022-00008 1,051.34 2,250.00 0.00 135.00 3,436.34 USD",
        "Temple University credit note INV-2022-00009 -1,051.34 -2,250.00 0.00 -135.00 -3,436.34 USD"]
    assert "PaleoHack INV-2022-00007 1,248.01 500.00 0.00 0.00 1,748.01 USD" in table  # numbered by community id
    again = run_cli("finalize", "--month", "2022-09", "--output", out)
    assert again.stdout.splitlines()[-2:] == ["INV-2022-00010  Temple University  3,436.34 USD  finalized",
                                              "Finalized 1 invoice(s) of September 2022; 7 were final already."]
    listed = [line.split()[:5] for line in run_cli("status", "--month", "2022-09").stdout.splitlines()
              if " temple " in line]
    assert listed == [["2022-09", "temple", "invoice", "void", "INV-2022-00008"],
                      ["2022-09", "temple", "credit", "note", "finalized"],
                      ["2022-09", "temple", "invoice", "finalized", "INV-2022-00010"]]
    register = read_csv(folder / "invoice-register.csv")
    temple = [(r["invoice_number"], r["status"], r["type"], r["references"]) for r in register
              if r["community_id"] == "temple"]
    assert temple == [("INV-2022-00008", "void", "invoice", ""),
                      ("INV-2022-00009", "finalized", "credit_note", "INV-2022-00008"),
                      ("INV-2022-00010", "finalized", "invoice", "")]
    assert [(r["issue_date"], r["due_date"]) for r in register if r["invoice_number"] == "INV-2022-00009"] == [
        ("2022-11-15", "2022-11-15")]


def test_a_credit_note_is_issued_the_day_it_is_made_and_never_before_its_invoice():
    invoice = draft("temple")._replace(number="INV-2022-00008", status="finalized")
    assert invoice.issue_date == dt.date(2022, 10, 1)
    later = credit_note_for(invoice, "INV-2022-00009", "wrong department", dt.date(2023, 2, 3))
    assert (later.issue_date, later.due_date, later.references) == (dt.date(2023, 2, 3), dt.date(2023, 2, 3),
                                                                    "INV-2022-00008")
    assert later.total == -invoice.total
    early = credit_note_for(invoice, "INV-2022-00009", "wrong department", dt.date(2022, 9, 30))  # a clock behind
    assert (early.issue_date, early.due_date) == (dt.date(2022, 10, 1), dt.date(2022, 10, 1))


@pytest.mark.parametrize("number, words", [
    ("INV-2022-00009", "INV-2022-00009 is a credit note; a credit note cannot be voided"),
    ("INV-2022-00008", "INV-2022-00008 is void already (cancelled by credit note INV-2022-00009)"),
    ("INV-2099-00001", "no invoice is numbered 'INV-2099-00001'"),
    ("DRAFT-202209-paleohack", "DRAFT-202209-paleohack is a draft's reference, not an invoice number: a draft "
                               "needs no voiding"),
])
def test_voiding_what_cannot_be_voided_is_one_line_and_changes_nothing(url, tmp_path, monkeypatch, number, words):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    run_cli("run", "--month", "2022-09", "--output", out)
    run_cli("finalize", "--month", "2022-09", "--output", out)
    run_cli("void", "INV-2022-00008", "--reason", "wrong department", "--output", out)
    before = ledger_numbers(url)
    result = run_cli("void", number, "--reason", "again", "--output", out)
    assert result.exit_code == 2
    assert said(result).startswith(f"Error: billing void: {words}") and said(result).count("\n") == 1
    assert ledger_numbers(url) == before


def test_a_config_without_a_community_that_has_finalized_invoices_is_refused(url, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    out = str(tmp_path / "out")
    run_cli("run", "--month", "2022-09", "--output", out)
    run_cli("finalize", "--month", "2022-09", "--output", out, "--community", "paleohack")
    text = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/", f"{ROOT}/demo/")
    (tmp_path / "billing.yaml").write_text(text.replace("paleohack", "paleo"))  # the community renamed
    before = ledger_numbers(url)
    result = CliRunner().invoke(main, ["run", "--month", "2022-09", "--config", str(tmp_path / "billing.yaml"),
                                       "--output", out])
    assert result.exit_code == 2, result.output
    assert said(result) == ("Error: community 'paleohack' has invoices in the ledger but is not in the config; put "
                             "it back (its finalized invoices stay as they are)\n")
    assert ledger_numbers(url) == before


# --- late data ---------------------------------------------------------------------------------------

def test_late_data_for_a_finalized_month_is_carried_once_by_the_next_invoice(url, tmp_path, monkeypatch):
    """Done when: run and finalize September; a late row arrives in September's export; running
    September again keeps its finalized PDFs byte for byte and reports the difference; October's
    invoice carries it as an adjustment line citing the September number; numbers stay gapless."""
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    shutil.copytree(ROOT / "demo" / "data", tmp_path / "data")
    config = tmp_path / "billing.yaml"
    config.write_text((ROOT / "config" / "billing.yaml").read_text().replace("../demo/data/", "data/")
                      .replace("output: ../output", "output: out"))

    def cli(*args):
        return CliRunner().invoke(main, [*args, "--config", str(config)])

    assert cli("run", "--month", "2022-09").exit_code == 0
    assert cli("finalize", "--month", "2022-09").exit_code == 0
    september = tmp_path / "out" / "2022-09"
    sent = {p.name: p.read_bytes() for p in september.glob("*.pdf")}

    export = tmp_path / "data" / "gcp" / "billing-export-2022-09.json.gz"
    rows = gzip.decompress(export.read_bytes()).decode().splitlines()
    temple = next(json.loads(r) for r in rows if '"temple-jupyterhub"' in r and '"Compute Engine"' in r
                  and '"regular"' in r)
    late = {**temple, "cost": 12.34, "credits": [], "export_time": "2022-10-06 02:00:00 UTC",
            "usage_start_time": "2022-09-30 22:00:00 UTC", "usage_end_time": "2022-09-30 23:00:00 UTC"}
    export.write_bytes(gzip.compress(("\n".join(rows + [json.dumps(late)]) + "\n").encode(), mtime=0))

    again = cli("run", "--month", "2022-09")
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in september.glob("*.pdf")} == sent
    assert ("  temple: Adjustment to INV-2022-00008 (September 2022): Google Cloud: Compute Engine: +12.34 USD"
            in again.stdout.splitlines())
    assert [list(r.values()) for r in read_csv(september / "adjustments.csv")] == [
        ["found", "temple", "INV-2022-00008", "2022-09", "Google Cloud: Compute Engine", "USD", "12.34", ""]]

    october = cli("run", "--month", "2022-10")
    assert october.exit_code == 0, october.output
    finalized = cli("finalize", "--month", "2022-10")
    assert finalized.exit_code == 0
    lines = read_csv(tmp_path / "out" / "2022-10" / "invoice-lines.csv")
    carried = [(l["invoice_number"], l["community_id"], l["amount"]) for l in lines
               if l["description"].startswith("Adjustment to INV-2022-00008 (September 2022)")]
    assert carried == [("INV-2022-00016", "temple", "12.34")]
    assert [list(r.values()) for r in read_csv(tmp_path / "out" / "2022-10" / "adjustments.csv")] == [
        ["carried", "temple", "INV-2022-00008", "2022-09", "Google Cloud: Compute Engine", "USD", "12.34",
         "INV-2022-00016"]]
    numbers = sorted(number for _, number, _ in ledger_numbers(url))
    assert numbers == [f"INV-2022-{n:05d}" for n in range(1, 17)]

    rerun = cli("run", "--month", "2022-09")  # carried once: nothing is open any more
    assert rerun.exit_code == 0 and "Late data" not in rerun.output
    assert "Adjustment" not in (tmp_path / "out" / "2022-10" / "invoice-lines.csv").read_text().replace(
        "Adjustment to INV-2022-00008 (September 2022)", "")


# --- prepaid funds -------------------------------------------------------------------------------------

def test_prepaid_funds_are_drawn_down_by_finalized_invoices_and_never_below_zero(url, tmp_path, monkeypatch):
    """COESSING's invoices are 480.00 a month; a grant of 700.00 pays September in full and 220.00
    of October; drafts show what would be applied; finalizing out of order is refused."""
    monkeypatch.setenv("BILLING_LEDGER_URL", url)
    text = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/", f"{ROOT}/demo/")
    anchor = "      minimum: 600.00            # before discounts\n"
    assert anchor in text
    config = tmp_path / "billing.yaml"
    config.write_text(text.replace(anchor, anchor + "      prepaid: {amount: 700.00, start: 2022-09}\n"))
    out = str(tmp_path / "out")

    def cli(*args):
        return CliRunner().invoke(main, [*args, "--config", str(config), "--output", out])

    def coessing(month):
        rows = read_csv(tmp_path / "out" / month / "invoice-register.csv")
        row = next(r for r in rows if r["community_id"] == "coessing")
        return row["total"], row["prepaid_applied"], row["amount_due"]

    assert cli("run", "--month", "2022-09").exit_code == 0
    assert cli("run", "--month", "2022-10").exit_code == 0
    assert coessing("2022-09") == ("480.15", "480.15", "0.00")
    assert coessing("2022-10") == ("480.37", "480.37", "0.00")  # a draft: what would be applied now

    early = cli("finalize", "--month", "2022-10", "--community", "coessing")
    assert early.exit_code == 0, early.output
    late = cli("finalize", "--month", "2022-09", "--community", "coessing")
    assert late.exit_code == 1
    assert said(late) == ("Error: billing finalize: coessing's 2022-09 draft was priced when its prepaid funds had "
                           "0.00 drawn, and finalized invoices have drawn 480.37 since; run the month again first\n")
    assert cli("run", "--month", "2022-09").exit_code == 0
    assert coessing("2022-09") == ("480.15", "219.63", "260.52")  # 700 - 480.37 drawn by October
    assert cli("finalize", "--month", "2022-09", "--community", "coessing").exit_code == 0
    text = " ".join(pdf_text(tmp_path / "out" / "2022-09" / "invoice-2022-09-coessing.pdf").split())
    assert "Paid from prepaid funds (219.63 before, 0.00 left after this invoice)" in text
    assert "Please pay $260.52" in text

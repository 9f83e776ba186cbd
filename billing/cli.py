"""The ``billing`` commands: a thin skin over ``billing.run``, ``billing.finalize`` and
``billing.delivery``. What they share (options, the report, errors and exit codes, the closing
summary) is ``billing.console``: every ``BillingError`` becomes one line and its exit code there,
and nowhere else.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Sequence

import click

from . import console, dates, guards, ledger, logs, summary
from .adjustments import describe as describe_adjustment
from .config import load_config
from .errors import EXIT_DATA, ConfigError, GuardError, UsageError
from .finalize import finalize_month, void_invoice
from .money import format_amount, quantize
from .records import Month
from .render.pdf import warn_of_slow_font_subsetting
from .run import check_month, recorded_summary, run_month


@click.group(cls=console.Group, context_settings=console.CONTEXT, epilog=console.EXIT_CODES)
@click.version_option(package_name="cloud-billing")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Pass cloud costs through to the communities you host and invoice them.

    Example: billing run --month last
    """
    ctx.ensure_object(console.Job)


@main.command(epilog=console.EXIT_CODES)
@console.month_options()
@console.config_option
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the config's output). The month's files go in <output>/<YYYY-MM>/.")
@click.option("--refresh", is_flag=True,
              help="Fetch paid API responses again (AWS Cost Explorer) instead of reusing the saved ones.")
@click.option("--force", is_flag=True,
              help="Bill the month as final although its data has not settled yet (settle_days); recorded in the "
                   "ledger.")
@click.option("--allow", "allow", multiple=True, metavar="KIND[:SUBJECT]",
              help="Accept a guard's finding (unattributed, rule-unmatched, cost-zero, cost-change; alone or as "
                   "e.g. cost-change:ciroh); repeat for several; recorded in the ledger.")
@click.option("--no-deliver", is_flag=True, help="Do not deliver the month (billing deliver does it later).")
@console.jobs_option
@console.logging_options
def run(month: str, today: str | None, config_path: Path, output: Path | None, refresh: bool, force: bool,
        allow: tuple[str, ...], no_deliver: bool, jobs: int | None) -> None:
    """Bill one invoice month: PDF invoices and CSV files for finance, then deliver them.

    Replaces <output>/<YYYY-MM>/ whole, or leaves it untouched when anything fails. Before the
    month has settled (settle_days after it ends) its invoices are provisional. A guard's
    finding (e.g. a rule that stopped matching) stops the run before anything is written.

    \b
    Examples:
      billing run --month 2022-09
      billing run --month last --log-format json
      billing run --month 2022-09 --allow cost-change:ciroh
      billing run --month 2022-09 --jobs 2
    """
    job = console.job(summary=True)
    day = console.today(today)
    parsed = job.start(dates.month(month, day))
    config = load_config(config_path)
    closing: list[summary.Summary] = []

    def report_and_deliver(done) -> None:  # under the month's lock: nothing replaces the folder meanwhile
        result = done.result
        _report_run(config, parsed, done)
        billed = summary.of_invoices("billing run", parsed, result.invoices, result.unattributed(),
                                     result.paid_requests, result.bytes_scanned)
        closing.append(_deliver(config, parsed, output, billed, [f"{f.key} (allowed): {f.message}"
                                                                  for f in result.findings], no_deliver))

    run_month(config, parsed, output, refresh, config_sha256=_sha256(config_path), today=day, force=force,
              allow=allow, then=report_and_deliver, jobs=jobs)
    logs.summary(closing[0].line(), ok=True, **closing[0].fields())


def _document(invoice) -> str:
    """A run table's word for a document: ``draft``, its number, ``void INV-...``, ``credit note INV-...``."""
    if invoice.kind == "credit_note":
        return f"credit note {invoice.number}"
    if invoice.status == "void":
        return f"void {invoice.number}"
    return "draft" if invoice.status == "draft" else invoice.number


def _report_run(config, month: Month, done) -> None:
    """What a run did: its warnings and notes in the log, the invoices on stdout."""
    result = done.result
    for warning in result.warnings:
        logs.get("run").warning(warning)
    for note in result.notes:
        logs.get("collect").info(note)
    # A month with final documents (kept as they are) says which row is which: a community may have
    # a void invoice, its credit note and a new draft.
    named = any(i.status != "draft" for i in result.invoices)
    rows = [(i.community_name, *((_document(i),) if named else ()),
             *(format_amount(a, i.currency) for a in (i.cloud_costs, i.fees, i.discounts, i.tax, i.total)), i.currency)
            for i in result.invoices]
    headers = ("Community", *(("Document",) if named else ()), "Cloud costs", "Fees", "Discounts", "Tax", "Total", "")
    texts = 1 + named  # the columns of words, left-aligned; then the amounts, then the currency
    widths = [max(len(r[c]) for r in rows + [headers]) for c in range(len(headers))]
    console.say(f"Invoices for {month.label}{' (provisional)' if result.provisional else ''}:")
    for n, row in enumerate([headers] + rows):
        cells = ([row[c].ljust(widths[c]) for c in range(texts)]
                 + [row[c].rjust(widths[c]) for c in range(texts, len(row) - 1)] + [row[-1]])
        console.say("  " + "  ".join(cells).rstrip())
        if n == 0:
            console.say("  " + "  ".join("-" * w for w in widths[:-1]))
    for currency, amount in sorted(result.unattributed().items()):
        shown = format_amount(amount, currency) if quantize(amount, currency) else f"{amount.normalize():f}"
        console.say(f"Unattributed: {shown} {currency} (see unattributed.csv; write attribution rules for it)")
    console.say(f"Reconciliation: {len(result.reconciliation)} billing account(s) balance to the cent.")
    if result.late:
        console.say(f"Late data for {month.label}'s finalized invoices, to be carried by each community's next draft:")
        for item in result.late:
            sign = "+" if item.amount > 0 else ""
            console.say(f"  {item.community_id}: {describe_adjustment(item)}: "
                        f"{sign}{format_amount(item.amount, item.currency)} {item.currency}")
    console.say(f"Wrote {len(done.files)} files to {done.folder}")
    drafts = [i for i in result.invoices if i.status == "draft"]
    kept = [i.number for i in result.invoices if i.status != "draft"]
    console.say(f"Recorded {len(drafts)} draft invoice(s) in the ledger "
                f"{ledger.shown(ledger.ledger_url(config.ledger.url))}"
                + (f"; kept {len(kept)} final document(s) as they are ({', '.join(sorted(kept))})" if kept else ""))


def _deliver(config, month: Month, output: Path | None, closing: summary.Summary, findings: Sequence[str],
             no_deliver: bool, command: str = "billing run", again: bool = False,
             locked: bool = True) -> summary.Summary:
    """Deliver the month (unless told not to, or the config has no ``deliver``); the closing
    summary, saying so. ``locked``: called under the month's lock (after a run or finalize). A
    delivery failure leaves outputs and ledger as they are (exit 1)."""
    console.job().closing = closing
    if config.deliver is None or no_deliver:
        return closing
    from .delivery.month import deliver_month

    done = deliver_month(config, month, output, closing.line(), findings, command, closing.subject(), again,
                         locked)  # logs each destination
    return closing._replace(extra=f"delivered to {len(done)} destination(s)")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@main.command("check-config", epilog=console.EXIT_CODES)
@console.config_option
@console.month_options(required=False)
@console.logging_options
def check_config(config_path: Path, month: str | None, today: str | None) -> None:
    """Validate a config file: print OK, or every problem with its place in the file.

    Also checks that the local files it names (export copies, saved responses, the metrics
    folder) are there, and reports rules that can never match (exit 2 on any problem); warns
    when this machine lacks HarfBuzz's font subsetting library (slow rendering). With
    --month, also runs the rules against that month's data and the guards against last month's
    figures in the ledger, writing nothing (exit 1 on a finding).

    \b
    Examples:
      billing check-config --config config/billing.yaml
      billing check-config --month 2022-09
    """
    config = load_config(config_path, check_paths=True)
    never = guards.never_match(config)
    warn_of_slow_font_subsetting()  # not the config's fault, but what a scheduled job's machine may lack
    if month is None:
        if never:
            raise ConfigError(f"{config_path}: {len(never)} attribution rule(s) can never match", problems=never)
        console.say(f"OK: {config_path} ({len(config.communities)} communities, {len(config.sources)} sources, "
            f"{len(config.attribution)} attribution rules)")
        return
    day = console.today(today)
    parsed = console.job().start(dates.month(month, day))
    checked = check_month(config, parsed, day)
    for warning in checked.result.warnings:
        logs.get("check").warning(warning)
    for note in checked.result.notes:
        logs.get("collect").info(note)
    problems = tuple(f"{f.key}: {f.message}" for f in checked.findings) + checked.never
    compared = "" if checked.compared else f"; the ledger has no record of {parsed.previous}, so changes since then were not checked"
    if not problems:
        console.say(f"OK: {config_path} on {parsed}'s data: no guard finding, every rule can match{compared}")
        return
    error = ConfigError if checked.never else GuardError  # a rule that can never match is the config's fault
    raise error(f"{config_path} on {parsed}'s data: {len(checked.findings)} guard finding(s), {len(checked.never)} "
                f"rule(s) that can never match (nothing was written){compared}", problems=problems)


@main.command(epilog=console.EXIT_CODES)
@console.month_options()
@click.option("--community", "communities", multiple=True, metavar="ID",
              help="Only this community's invoice (repeat for several); default: every draft of the month.")
@console.config_option
@console.output_option
@click.option("--no-deliver", is_flag=True, help="Do not deliver the month (billing deliver does it later).")
@console.jobs_option
@console.logging_options
def finalize(month: str, today: str | None, communities: tuple[str, ...], config_path: Path, output: Path | None,
             no_deliver: bool, jobs: int | None) -> None:
    """Give a month's draft invoices their final numbers and final PDFs (no DRAFT mark).

    Numbers come from the config's invoices.number_pattern and one sequence, never reused and
    without gaps. A finalized invoice never changes; finalizing it again does nothing. Drafts
    of a provisional run (before the month settled), or priced with another version of the
    config file, are refused. Then the month is delivered.

    \b
    Examples:
      billing finalize --month 2022-09
      billing finalize --month last --community ciroh
      billing finalize --month 2022-09 --jobs 2
    """
    job = console.job(summary=True)
    parsed = job.start(dates.month(month, console.today(today)))
    config = load_config(config_path)
    closing: list[summary.Summary] = []

    def report_and_deliver(done) -> None:  # under the month's lock: nothing replaces the folder meanwhile
        for item in done:
            invoice = item.invoice
            state = "finalized" if item.newly else "already finalized, unchanged"
            console.say(f"{invoice.number}  {invoice.community_name}  "
                        f"{format_amount(invoice.total, invoice.currency)} {invoice.currency}  {state}")
        newly = sum(item.newly for item in done)
        console.say(f"Finalized {newly} invoice(s) of {parsed.label}"
                    + (f"; {len(done) - newly} were final already" if len(done) > newly else "") + ".")
        closing.append(_deliver(config, parsed, output, recorded_summary(config, parsed, "billing finalize"), (),
                                no_deliver, "billing finalize"))

    finalize_month(config, parsed, list(communities) or None, output, then=report_and_deliver, jobs=jobs,
                   config_sha256=_sha256(config_path))
    logs.summary(closing[0].line(), ok=True, **closing[0].fields())


@main.command(epilog=console.EXIT_CODES)
@console.month_options()
@console.config_option
@console.output_option
@click.option("--again", is_flag=True, help="Send the email and webhook even if they announced these files before.")
@console.logging_options
def deliver(month: str, today: str | None, config_path: Path, output: Path | None, again: bool) -> None:
    """Deliver a month's files again, as the config's deliver section says (buckets, email,
    webhook): after a delivery failed, or after the section changed. Bucket files that are
    already there unchanged are not uploaded again, and the email and webhook are not sent again
    about the same files (unless --again).

    \b
    Examples:
      billing deliver --month 2022-09
      billing deliver --month last --log-format json
    """
    job = console.job(summary=True)
    parsed = job.start(dates.month(month, console.today(today)))
    config = load_config(config_path)
    if config.deliver is None:
        raise ConfigError(f"{config_path} has no deliver section: nothing to deliver to")
    closing = _deliver(config, parsed, output, recorded_summary(config, parsed, "billing deliver"), (), False,
                       "billing deliver", again, locked=False)
    logs.summary(closing.line(), ok=True, **closing.fields())


@main.command(epilog=console.EXIT_CODES)
@click.argument("number")
@click.option("--reason", required=True, help="Why it is voided; printed on the credit note.")
@console.today_option("the credit note's issue date")
@console.config_option
@console.output_option
@console.logging_options
def void(number: str, reason: str, today: str | None, config_path: Path, output: Path | None) -> None:
    """Void a finalized invoice: a credit note with the next number cancels it.

    The credit note is issued today (never before the invoice it cancels). The invoice's number
    stays used; the community's invoice for that month can then be drafted (billing run) and
    finalized again.

    Example: billing void INV-2022-00008 --reason "billed to the wrong department"
    """
    day = console.today(today)
    config = load_config(config_path)
    done = void_invoice(config, number, reason, output, today=day)
    note = done.credit_note
    console.say(f"Voided {done.invoice.number} ({done.invoice.community_name}, {done.invoice.month.label}); credit note "
        f"{note.number} for {format_amount(note.total, note.currency)} {note.currency} cancels it.")
    console.say(f"Run `billing run --month {done.invoice.month}` to draft {done.invoice.community_name}'s invoice again.")


@main.command(epilog=console.EXIT_CODES)
@console.month_options(required=False)
@console.config_option
@console.logging_options
def status(month: str | None, today: str | None, config_path: Path) -> None:
    """List the invoices the ledger holds: month, community, kind, status, number and total.

    \b
    Examples:
      billing status
      billing status --month last
    """
    wanted = str(dates.month(month, console.today(today))) if month else None
    config = load_config(config_path)
    url = ledger.ledger_url(config.ledger.url)
    engine = ledger.open_existing(url, "billing status")  # reading: never creates a ledger
    if engine is None:
        console.say(f"There is no ledger at {ledger.shown(url)} yet (billing run --month YYYY-MM creates it and "
                    "records a month's drafts).")
        return
    try:
        documents = ledger.status(engine, wanted)
    finally:
        engine.dispose()
    if not documents:
        console.say(f"The ledger holds no invoice{' for ' + wanted if wanted else ''} yet "
            "(billing run --month YYYY-MM records a month's drafts).")
        return
    rows = [(d.month, d.community_id, d.kind.replace("_", " "), d.status + (" (provisional)" if d.provisional else ""),
             d.number or "-", format_amount(d.total, d.currency), d.currency) for d in documents]
    headers = ("Month", "Community", "Kind", "Status", "Number", "Total", "")
    widths = [max(len(r[c]) for r in rows + [headers]) for c in range(len(headers))]
    for row in [headers] + rows:
        console.say("  ".join(cell.rjust(w) if c == 5 else cell.ljust(w)
                      for c, (cell, w) in enumerate(zip(row, widths))).rstrip())


@main.group("ledger")
def ledger_group() -> None:
    """The ledger database: what was invoiced (SQLite by default, PostgreSQL when deployed)."""


@ledger_group.command("upgrade", epilog=console.EXIT_CODES)
@console.config_option
@console.logging_options
def ledger_upgrade(config_path: Path) -> None:
    """Bring the ledger's schema up to this version of billing (a new ledger is created).

    Example: billing ledger upgrade --config config/billing.yaml
    """
    config = load_config(config_path)
    url = ledger.ledger_url(config.ledger.url)
    before, after = ledger.upgrade(url)
    if before == after:
        console.say(f"The ledger {ledger.shown(url)} is at schema revision {after}, this version's; nothing to do.")
    else:
        console.say(f"The ledger {ledger.shown(url)} is now at schema revision {after} (was {before or 'empty'}).")


@main.group()
def aws() -> None:
    """AWS helpers."""


@aws.command("check-tags", epilog=console.EXIT_CODES)
@console.config_option
@console.logging_options
def check_tags(config_path: Path) -> None:
    """Say whether each cost allocation tag the AWS sources group by is active.

    Cost Explorer only groups cost by a tag once the tag is activated in the payer account's
    Billing console; until then all its cost shows as untagged. Exit 1 if any tag is not active.

    Example: billing aws check-tags --config config/billing.yaml
    """
    from .collectors.aws_cost_explorer import tag_status

    config = load_config(config_path)
    sources = [s for s in config.sources if s.type == "aws-cost-explorer"]
    if not sources:
        raise UsageError(f"{config_path} has no source of type aws-cost-explorer to check")
    inactive = 0
    for source in sources:
        keys = sorted({g.key for g in source.group_by if g.type == "TAG"} | set(config.label_keys("aws")))
        if not keys:
            console.say(f"{source.id}: groups by no tag; nothing to check")
            continue
        for key, status in tag_status(source, keys).items():
            if status == "Active":
                console.say(f"{source.id}: {key}: active")
                continue
            inactive += 1
            if status is None:
                console.say(f"{source.id}: {key}: not found; no resource in payer {source.payer_account} has "
                           "carried this tag yet, or its spelling differs (tag keys are case-sensitive)")
            else:
                console.say(f"{source.id}: {key}: {status.lower()}; activate it in the Billing console (Cost "
                           "allocation tags) or with `aws ce update-cost-allocation-tags-status "
                           f"--cost-allocation-tags-status TagKey={key},Status=Active`; cost is grouped by it "
                           "from activation on (allow 24 hours)")
    if inactive:
        sys.exit(EXIT_DATA)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``billing`` command: a thin skin over ``billing.run`` and ``billing.config``.

Every ``BillingError`` becomes one line on stderr and its exit code here, and nowhere else:
0 ok, 1 a data or reconciliation problem, 2 a usage or config error. The error's notes (what the
run paid for before it failed) go to stdout first, as a successful run's notes do.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import click

from . import ledger
from .adjustments import describe as describe_adjustment
from .config import DEFAULT_CONFIG, load_config
from .errors import EXIT_DATA, BillingError, UsageError
from .money import format_amount, quantize
from .records import Month
from .finalize import finalize_month, void_invoice
from .run import run_month

CONTEXT = {"help_option_names": ["-h", "--help"]}

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_CONFIG,
    show_default=True, envvar="BILLING_CONFIG", help="Config file (or set BILLING_CONFIG).")


def _fail(error: BillingError) -> None:
    for note in error.notes:  # what was done and paid before the failure, on stdout like a run's notes
        click.echo(note)
    click.echo(f"Error: {error.message}", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(error.exit_code)


class _Group(click.Group):
    """Turns click's own usage errors into exit 2 (its default) and every BillingError into one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BillingError as error:
            _fail(error)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="cloud-billing")
def main() -> None:
    """Pass cloud costs through to the communities you host and invoice them.

    Exit codes: 0 ok, 1 a data or reconciliation problem, 2 a usage or config error.
    """


@main.command()
@click.option("--month", required=True, metavar="YYYY-MM", help="Invoice month to bill, e.g. 2022-09.")
@config_option
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the config's output). The month's files go in <output>/<YYYY-MM>/.")
@click.option("--refresh", is_flag=True,
              help="Fetch paid API responses again (AWS Cost Explorer) instead of reusing the saved ones.")
def run(month: str, config_path: Path, output: Path | None, refresh: bool) -> None:
    """Bill one invoice month: PDF invoices and CSV files for finance.

    Replaces <output>/<YYYY-MM>/ whole, or leaves it untouched when anything fails.

    Example: billing run --month 2022-09
    """
    parsed = Month.parse(month)
    config = load_config(config_path)
    done = run_month(config, parsed, output, refresh, config_sha256=_sha256(config_path))
    result = done.result

    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    for note in result.notes:
        click.echo(note)
    rows = [(i.community_name, *(format_amount(a, i.currency) for a in (i.cloud_costs, i.fees, i.discounts, i.tax,
                                                                          i.total)), i.currency)
            for i in result.invoices]
    headers = ("Community", "Cloud costs", "Fees", "Discounts", "Tax", "Total", "")
    widths = [max(len(r[c]) for r in rows + [headers]) for c in range(len(headers))]
    click.echo(f"Invoices for {parsed.label}:")
    for n, row in enumerate([headers] + rows):
        cells = [row[0].ljust(widths[0])] + [row[c].rjust(widths[c]) for c in range(1, 6)] + [row[6]]
        click.echo("  " + "  ".join(cells).rstrip())
        if n == 0:
            click.echo("  " + "  ".join("-" * w for w in widths[:6]))
    for currency, amount in sorted(result.unattributed().items()):
        shown = format_amount(amount, currency) if quantize(amount, currency) else f"{amount.normalize():f}"
        click.echo(f"Unattributed: {shown} {currency} (see unattributed.csv; write attribution rules for it)")
    click.echo(f"Reconciliation: {len(result.reconciliation)} billing account(s) balance to the cent.")
    if result.late:
        click.echo(f"Late data for {parsed.label}'s finalized invoices, to be carried by each community's next draft:")
        for item in result.late:
            sign = "+" if item.amount > 0 else ""
            click.echo(f"  {item.community_id}: {describe_adjustment(item)}: {sign}{format_amount(item.amount, item.currency)} "
                       f"{item.currency}")
    click.echo(f"Wrote {len(done.files)} files to {done.folder}")
    drafts = [i for i in result.invoices if i.status == "draft"]
    kept = [i.number for i in result.invoices if i.status != "draft"]
    click.echo(f"Recorded {len(drafts)} draft invoice(s) in the ledger {ledger.shown(ledger.ledger_url(config.ledger.url))}"
               + (f"; kept {len(kept)} final document(s) as they are ({', '.join(sorted(kept))})" if kept else ""))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@main.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Validate a config file: print OK, or every problem with its place in the file.

    Also checks that the local files it names (export copies, saved responses, the metrics
    folder) are there. Exit 2 on any problem.

    Example: billing check-config --config config/billing.yaml
    """
    config = load_config(config_path, check_paths=True)
    click.echo(f"OK: {config_path} ({len(config.communities)} communities, {len(config.sources)} sources, "
               f"{len(config.attribution)} attribution rules)")


@main.command()
@click.option("--month", required=True, metavar="YYYY-MM", help="Invoice month to finalize, e.g. 2022-09.")
@click.option("--community", "communities", multiple=True, metavar="ID",
              help="Only this community's invoice (repeat for several); default: every draft of the month.")
@config_option
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the config's output), as given to billing run.")
def finalize(month: str, communities: tuple[str, ...], config_path: Path, output: Path | None) -> None:
    """Give a month's draft invoices their final numbers and final PDFs (no DRAFT mark).

    Numbers come from the config's invoices.number_pattern and one sequence, never reused and
    without gaps. A finalized invoice never changes; finalizing it again does nothing.

    Example: billing finalize --month 2022-09
    """
    parsed = Month.parse(month)
    config = load_config(config_path)
    done = finalize_month(config, parsed, list(communities) or None, output)
    for item in done:
        invoice = item.invoice
        state = "finalized" if item.newly else "already finalized, unchanged"
        click.echo(f"{invoice.number}  {invoice.community_name}  {format_amount(invoice.total, invoice.currency)} "
                   f"{invoice.currency}  {state}")
    newly = sum(item.newly for item in done)
    click.echo(f"Finalized {newly} invoice(s) of {parsed.label}"
               + (f"; {len(done) - newly} were final already" if len(done) > newly else "") + ".")


@main.command()
@click.argument("number")
@click.option("--reason", required=True, help="Why it is voided; printed on the credit note.")
@config_option
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the config's output), as given to billing run.")
def void(number: str, reason: str, config_path: Path, output: Path | None) -> None:
    """Void a finalized invoice: a credit note with the next number cancels it.

    The invoice's number stays used; the community's invoice for that month can then be drafted
    (billing run) and finalized again.

    Example: billing void INV-2022-00008 --reason "billed to the wrong department"
    """
    config = load_config(config_path)
    done = void_invoice(config, number, reason, output)
    note = done.credit_note
    click.echo(f"Voided {done.invoice.number} ({done.invoice.community_name}, {done.invoice.month.label}); credit note "
               f"{note.number} for {format_amount(note.total, note.currency)} {note.currency} cancels it.")
    click.echo(f"Run `billing run --month {done.invoice.month}` to draft {done.invoice.community_name}'s invoice again.")


@main.command()
@click.option("--month", default=None, metavar="YYYY-MM", help="Only this invoice month.")
@config_option
def status(month: str | None, config_path: Path) -> None:
    """List the invoices the ledger holds: month, community, kind, status, number and total.

    Example: billing status --month 2022-09
    """
    wanted = str(Month.parse(month)) if month else None
    config = load_config(config_path)
    engine = ledger.open_ledger(ledger.ledger_url(config.ledger.url), "billing status")
    try:
        documents = ledger.status(engine, wanted)
    finally:
        engine.dispose()
    if not documents:
        click.echo(f"The ledger holds no invoice{' for ' + wanted if wanted else ''} yet "
                   "(billing run --month YYYY-MM records a month's drafts).")
        return
    rows = [(d.month, d.community_id, d.kind.replace("_", " "), d.status + (" (provisional)" if d.provisional else ""),
             d.number or "-", format_amount(d.total, d.currency), d.currency) for d in documents]
    headers = ("Month", "Community", "Kind", "Status", "Number", "Total", "")
    widths = [max(len(r[c]) for r in rows + [headers]) for c in range(len(headers))]
    for row in [headers] + rows:
        click.echo("  ".join(cell.rjust(w) if c == 5 else cell.ljust(w)
                             for c, (cell, w) in enumerate(zip(row, widths))).rstrip())


@main.group("ledger")
def ledger_group() -> None:
    """The ledger database: what was invoiced (SQLite by default, PostgreSQL when deployed)."""


@ledger_group.command("upgrade")
@config_option
def ledger_upgrade(config_path: Path) -> None:
    """Bring the ledger's schema up to this version of billing (a new ledger is created).

    Example: billing ledger upgrade --config config/billing.yaml
    """
    config = load_config(config_path)
    url = ledger.ledger_url(config.ledger.url)
    before, after = ledger.upgrade(url)
    if before == after:
        click.echo(f"The ledger {ledger.shown(url)} is at schema revision {after}, this version's; nothing to do.")
    else:
        click.echo(f"The ledger {ledger.shown(url)} is now at schema revision {after} (was {before or 'empty'}).")


@main.group()
def aws() -> None:
    """AWS helpers."""


@aws.command("check-tags")
@config_option
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
            click.echo(f"{source.id}: groups by no tag; nothing to check")
            continue
        for key, status in tag_status(source, keys).items():
            if status == "Active":
                click.echo(f"{source.id}: {key}: active")
                continue
            inactive += 1
            if status is None:
                click.echo(f"{source.id}: {key}: not found; no resource in payer {source.payer_account} has "
                           "carried this tag yet, or its spelling differs (tag keys are case-sensitive)")
            else:
                click.echo(f"{source.id}: {key}: {status.lower()}; activate it in the Billing console (Cost "
                           "allocation tags) or with `aws ce update-cost-allocation-tags-status "
                           f"--cost-allocation-tags-status TagKey={key},Status=Active`; cost is grouped by it "
                           "from activation on (allow 24 hours)")
    if inactive:
        sys.exit(EXIT_DATA)


if __name__ == "__main__":  # pragma: no cover
    main()

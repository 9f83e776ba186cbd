"""One month's run: collect, attribute, reconcile, split shared pools, price, then write every
output or none.

``compute_month`` is the pipeline without I/O beyond reading the sources; ``run_month`` adds the
writers. Outputs are written to a hidden folder beside the month's folder and switched in whole
(``billing.atomic``), under a lock per month, so a failed, killed or concurrent run leaves the
previous outputs untouched and never a half-written folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator, Mapping, NamedTuple, Sequence

from sqlalchemy import Engine

from . import __version__, atomic, attribution, dates, guards, ledger, logs, reconciliation, summary
from .adjustments import Adjustment, differences
from .allocation import Share, allocate
from .collectors import Collection, collect
from .config import Config, source_providers
from .errors import BillingError, ConfigError, DataError, GuardError, OutputError, UsageError
from .metrics import Metrics
from .money import ZERO, currencies
from .pricing import price_invoice
from .records import PROVISIONAL, Attributed, Figure, Invoice, Month, ReconciliationRow, provider_name
from .render import csv_files
from .render.derived import import_early, write_derived
from .render.pdf import write_pdfs
from .render.pool import start_early


class MonthResult(NamedTuple):
    """Everything a month's run computed.

    Attributes:
        month: the invoice month.
        attributed: every cost row with its bucket.
        invoices: one per community with a contract in force, in config order.
        reconciliation: one row per provider, billing account and month; all balanced.
        warnings: lines a person should act on (provisional data, ...).
        notes: what collecting did and cost (bytes scanned, paid API requests).
        shares: every community's part of every shared pool.
        provisional: the month's figures are not final: a source says so (AWS Estimated), or
            the month has not settled yet (``dates.unsettled``).
        late: adjustments found for the month's finalized invoices, open (to be carried).
        paid_requests, bytes_scanned: what collecting paid for (Cost Explorer, BigQuery).
        findings: the guards' findings a person accepted (``--allow``); a run with others stops.
    """

    month: Month
    attributed: tuple[Attributed, ...]
    invoices: tuple[Invoice, ...]
    reconciliation: tuple[ReconciliationRow, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...] = ()
    shares: tuple[Share, ...] = ()
    provisional: bool = False
    late: tuple[Adjustment, ...] = ()
    paid_requests: int = 0
    bytes_scanned: int = 0
    findings: tuple[guards.Finding, ...] = ()

    def unattributed(self) -> dict[str, Decimal]:
        """Unattributed net cost per currency."""
        totals: dict[str, Decimal] = {}
        for item in self.attributed:
            if item.bucket.kind == "unattributed":
                totals[item.row.currency] = totals.get(item.row.currency, ZERO) + item.row.net
        return totals


class RunResult(NamedTuple):
    """A finished run: what was computed and where it was written."""

    result: MonthResult
    folder: Path
    files: tuple[Path, ...]


def _check_rule_keys(config: Config, collections: list[tuple[str, Collection]], month: Month) -> tuple[str, ...]:
    """A rule on a label or tag key that no source's data carries can never match: a typo that
    would silently send cost elsewhere. Refuse it; warn about a key no row of this month carries."""
    warnings = []
    matches = [(f"attribution[{i}]", r.match) for i, r in enumerate(config.attribution)]
    matches += [(f"shared_pools[{i}].scope", p.scope) for i, p in enumerate(config.shared_pools) if p.scope]
    held = [(source_id, c, {row.provider for row in c.rows}) for source_id, c in collections]
    for where, match in matches:
        providers = match.providers
        seen = [(source_id, c) for source_id, c, has in held if has and (providers is None or has & providers)]
        what = " or ".join(sorted(providers)) + " " if providers is not None else ""
        named = " or ".join(provider_name(p) for p in sorted(providers)) + " " if providers is not None else ""
        for key in match.labels:
            if not seen:
                continue
            if not any(key in c.label_keys for _, c in seen):
                known = sorted({k for _, c in seen for k in c.label_keys})
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                carried = "; ".join(f"{sid}: {_some(sorted(c.label_keys))}" for sid, c in seen)
                raise DataError(f"{where} matches {named}key {key!r}, which no row of any {what}source "
                                f"carries{hint}; keys carried ({carried})")
            if not any(row.label(key) is not None for _, c in seen for row in c.rows):
                warnings.append(f"{where} matches {named}key {key!r}, which no {month} cost carries (it is "
                                "in the data of other months)")
    return tuple(warnings)


def _some(names: list[str], shown: int = 8) -> str:
    """A few names for a one-line message (a GKE export can carry hundreds of label keys)."""
    if not names:
        return "none"
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _check_sources(collections: list[tuple[str, Collection]]) -> None:
    """Each billing account read once, in a currency the tool can round."""
    read_by: dict[tuple[str, str, str], str] = {}
    for source_id, collection in collections:
        for total in collection.totals:
            key = (total.provider, total.billing_account, total.invoice_month)
            if key in read_by and read_by[key] != source_id:
                raise ConfigError(f"sources {read_by[key]!r} and {source_id!r} both read {total.provider} billing "
                                  f"account {total.billing_account} for {total.invoice_month}; every cost would be "
                                  "billed twice")
            read_by[key] = source_id
            if total.currency not in currencies():
                raise DataError(f"source {source_id!r}: billing account {total.billing_account} bills in "
                                f"{total.currency!r}, which is not an ISO 4217 currency code")


def compute_month(config: Config, month: Month, refresh: bool = False,
                  adjustments: Mapping[str, Sequence[Adjustment]] | None = None,
                  prepaid_used: Mapping[str, Decimal] | None = None, unsettled: str | None = None) -> MonthResult:
    """Collect every source for ``month`` and turn the costs into invoices and a reconciliation.

    ``refresh`` makes sources that cache paid API responses fetch them again; ``adjustments``
    (per community) are carried as lines of its invoice; ``prepaid_used`` is what finalized
    invoices drew from each community's prepaid funds; ``unsettled`` says why the month's data
    is not final yet (``dates.unsettled``), making every invoice provisional.
    """
    collections: list[tuple[str, Collection]] = []
    try:
        with logs.progress("collect", len(config.sources), "sources") as step:
            for source in config.sources:
                step(source.id)
                keys = config.label_keys(source_providers(source))
                collections.append((source.id, collect(source, month, keys, refresh)))
        return _compute(config, month, collections, adjustments or {}, prepaid_used or {}, unsettled)
    except BillingError as error:  # say what the sources already did and cost, failure or not
        error.notes = tuple(f"{source_id}: {n}" for source_id, c in collections for n in c.notes) + error.notes
        error.paid_requests += sum(c.paid_requests for _, c in collections)
        error.bytes_scanned += sum(c.bytes_scanned for _, c in collections)
        raise


def _compute(config: Config, month: Month, collections: list[tuple[str, Collection]],
             adjustments: Mapping[str, Sequence[Adjustment]], prepaid_used: Mapping[str, Decimal],
             unsettled: str | None) -> MonthResult:
    key_warnings = _check_rule_keys(config, collections, month)
    _check_sources(collections)

    rows = [row for _, c in collections for row in c.rows]
    attributed = attribution.attribute(rows, config.attribution)
    balance = reconciliation.reconcile([t for _, c in collections for t in c.totals], attributed)
    reconciliation.check(balance)

    metrics = Metrics(config.metrics, month)
    shares, pool_warnings = allocate(config, attributed, month, metrics)
    by_community: dict[str, list[Attributed]] = {c.id: [] for c in config.communities}
    for item in attributed:
        if item.bucket.kind == "community":
            by_community[item.bucket.name].append(item)
    invoices = []
    for community in config.communities:
        invoice = price_invoice(config, community, month, by_community[community.id],
                                [s for s in shares if s.community == community.id], shares, metrics,
                                attribution.scope(by_community[community.id], config.attribution),
                                adjustments.get(community.id, ()), prepaid_used.get(community.id, ZERO))
        if invoice is not None:
            invoices.append(invoice)
    balance = reconciliation.add_invoiced(balance, attributed, shares, config, month)

    warnings = tuple(f"{source_id}: {w}" for source_id, c in collections for w in c.warnings)
    warnings += key_warnings + pool_warnings
    warnings += tuple(f"{i.community_name}: {flag}" for i in invoices for flag in i.flags)
    estimated = any(c.provisional for _, c in collections)
    if estimated or unsettled:  # said once in the warnings; on every invoice, so that none is sent as final
        why = unsettled or f"the cloud data for {month} is not final yet (e.g. AWS Estimated)"
        flag = f"{PROVISIONAL}: {why}; this invoice cannot be finalized until a run on final data"
        invoices = [i._replace(flags=i.flags + (flag,)) for i in invoices]
        if unsettled:
            warnings += (f"{month} is provisional: {unsettled}; run again from then (or with --force) to bill it "
                         "as final",)
    notes = tuple(f"{source_id}: {n}" for source_id, c in collections for n in c.notes)
    return MonthResult(month, attributed, tuple(invoices), balance, warnings, notes, shares, estimated or bool(unsettled),
                       paid_requests=sum(c.paid_requests for _, c in collections),
                       bytes_scanned=sum(c.bytes_scanned for _, c in collections))


def write_outputs(folder: Path, config: Config, result: MonthResult, finals: Mapping[str, str] | None = None,
                  previous: Path | None = None, step: Callable[[str], None] | None = None,
                  jobs: int | None = None) -> tuple[Path, ...]:
    """Write every output file of ``result`` into ``folder`` (which must exist and be empty).

    ``finals`` maps the numbers of finalized invoices to the sha256 of their PDFs: those are not
    rendered anew but kept byte for byte (``render.pdf.write_pdfs``, from ``previous``). The
    PDFs are rendered by ``jobs`` worker processes (``render.pool.worker_count``); the CSV and
    FOCUS files are written meanwhile. ``step`` is told each invoice as its PDF is written, then
    the CSV files (progress)."""
    write_pdfs(folder, previous, result.invoices, finals or {}, config, step=step, jobs=jobs,
               meanwhile=lambda: _write_tables(folder, config, result))
    if step:
        step("CSV files")
    return tuple(sorted(folder.iterdir()))


def _write_tables(folder: Path, config: Config, result: MonthResult) -> None:
    """The month's CSV files and its FOCUS files."""
    from .render import focus

    csv_files.write_register(folder / "invoice-register.csv", result.invoices)
    csv_files.write_lines(folder / "invoice-lines.csv", result.invoices)
    csv_files.write_cost_detail(folder / "cost-detail.csv", result.attributed)
    csv_files.write_unattributed(folder / "unattributed.csv", result.attributed)
    csv_files.write_absorbed(folder / "absorbed.csv", result.attributed)
    csv_files.write_shared_allocation(folder / "shared-allocation.csv", result.shares, config)
    csv_files.write_reconciliation(folder / "reconciliation.csv", result.reconciliation)
    csv_files.write_findings(folder / "findings.csv", result.findings, result.warnings)
    focus.write_focus(folder, result, config)  # focus-YYYY-MM.csv and .parquet


def late_data(computed: MonthResult, kept: Sequence[tuple[Invoice, str]]) -> dict[str, tuple[str, str, dict]]:
    """Per community with a finalized invoice this month: its number, currency, and what the
    month priced now charges less what it did, per line passed through at cost."""
    finals = {invoice.community_id: invoice for invoice, _ in kept
              if invoice.kind == "invoice" and invoice.status == "finalized"}
    return {now.community_id: (finals[now.community_id].number, now.currency,
                               differences(finals[now.community_id], now))
            for now in computed.invoices if now.community_id in finals}


def with_finalized(result: MonthResult, finalized: Sequence[tuple[Invoice, str]]) -> MonthResult:
    """``result`` with each community's finalized invoice in place of its new draft (an invoice
    that was finalized never changes), and the month's void invoices and credit notes after them."""
    current = [invoice for invoice, _ in finalized if invoice.kind == "invoice" and invoice.status == "finalized"]
    others = tuple(invoice for invoice, _ in finalized if invoice not in current)  # void invoices, credit notes
    finals = {invoice.community_id: invoice for invoice in current}
    invoices = [finals.pop(i.community_id, i) for i in result.invoices]
    return result._replace(invoices=tuple(invoices) + tuple(finals[c] for c in sorted(finals)) + others)


def fingerprint(result: MonthResult, config_sha256: str) -> ledger.Fingerprint:
    """What the month's invoices were computed from, for the ledger."""
    return ledger.Fingerprint(
        source_totals=tuple((r.provider, r.billing_account, r.currency, str(r.source_total)) for r in result.reconciliation),
        config_sha256=config_sha256, package_version=__version__, provisional=result.provisional)


@contextlib.contextmanager
def locked_month(config: Config, month: Month, output: Path | None, command: str,
                 existing: bool = False) -> Iterator[tuple[Engine, Path]]:
    """Hold ``month``'s lock with the ledger open (checked to be at this code's schema) and the
    month's folder recovered from any killed run; yields the ledger and the folder's path. With
    ``existing``, the folder must be there (finalize and void change a month that was run)."""
    final = (Path(output) if output is not None else config.output) / str(month)
    try:
        with atomic.locked(final, f"the outputs of {month}"):
            engine = ledger.open_ledger(ledger.ledger_url(config.ledger.url), command)
            try:
                atomic.recover(final)
                if existing and not final.is_dir():
                    raise UsageError(f"{command}: {final} does not exist; run `billing run --month {month}` with the "
                                     "same output folder (--output) first")
                yield engine, final
            finally:
                engine.dispose()
    except OSError as exc:
        raise OutputError(f"cannot write the outputs to {final}: {exc.strerror or exc}") from None


def run_month(config: Config, month: Month, output: Path | None = None, refresh: bool = False,
              config_sha256: str = "", command: str = "billing run", today: dt.date | None = None,
              force: bool = False, allow: Sequence[str] = (),
              then: Callable[[RunResult], None] | None = None, jobs: int | None = None) -> RunResult:
    """Compute ``month``, check it with the guards, record its drafts in the ledger, and replace
    ``<output>/<YYYY-MM>/`` with its outputs, whole.

    ``today`` (UTC; default the real date) decides whether the month has settled
    (``dates.unsettled``): before, its invoices are provisional, unless ``force`` bills it as
    final with a warning recorded in the ledger. A guard's finding (``billing.guards``) stops the
    run before anything is written or recorded, unless ``allow`` accepts it (recorded too).
    ``then`` is called with the published result while the month's lock is still held (delivery:
    no other run can replace the folder while it is read). ``jobs``: worker processes rendering
    the PDFs (``render.pool``; default ``BILLING_JOBS``, else one per usable CPU; 1: this process).

    The month's lock is held from before collecting to after publishing, so two runs of one
    month (in two shells, or two containers sharing the folder) never interleave: the second
    stops at once with ``Busy``. The folder is switched in one step (``billing.atomic``): a run
    killed at any point leaves the previous outputs or the new ones, never a mix or nothing.
    The ledger is opened (and checked to be at this code's schema) before anything is collected.
    """
    today = today or dates.today()
    unsettled = dates.unsettled(month, today, config.settle_days)
    guards.allowed((), allow)  # a mistyped --allow is refused before anything is collected
    events = []
    if unsettled and force:
        if today <= month.last_day:
            raise UsageError(f"--force cannot bill {month} as final before it has ended (today is {today}, UTC); it "
                             "only skips the settle days after the month")
        events.append(("forced", f"billed as final on {today} with --force by {ledger.who()}: {unsettled}"))
        unsettled = None
    with locked_month(config, month, output, command) as (engine, final):
        kept = ledger.finalized(engine, month)
        for invoice, _ in kept:  # a community with final documents must still be in the config: say so first
            config.community(invoice.community_id)
        carried: dict[str, list[Adjustment]] = {}
        for adjustment in ledger.open_adjustments(engine, month):
            carried.setdefault(adjustment.community_id, []).append(adjustment)
        start_early(jobs, len(config.communities))  # the PDF workers' forkserver starts while the sources are read
        import_early()  # and the review page's libraries are imported
        computed = compute_month(config, month, refresh, carried, ledger.prepaid_used(engine), unsettled)
        try:
            figures, findings = _findings(config, month, computed, ledger.figures_of(engine, month.previous))
            accepted, unused = _guard(month, findings, allow)
        except BillingError as error:
            error.notes = computed.notes + error.notes
            error.paid_requests += computed.paid_requests
            error.bytes_scanned += computed.bytes_scanned
            raise
        events += [("allowed", f"{f.key} by {ledger.who()}: {f.message}") for f in accepted]
        warnings = tuple(f"{change}: {detail}" for change, detail in events)
        warnings += tuple(f"--allow {entry} accepted no finding of {month}" for entry in unused)
        warnings += guards.never_match(config)
        computed = computed._replace(warnings=computed.warnings + warnings, findings=accepted)
        found = late_data(computed, kept)
        result = with_finalized(computed, kept)
        finals = {invoice.number: sha256 for invoice, sha256 in kept}
        try:
            with atomic.writing(final) as version:
                with logs.progress("render", len(result.invoices) + 1, "files") as step:
                    write_outputs(version, config, result, finals, final, step, jobs)
                ledger.record_drafts(engine, month, result.invoices, fingerprint(result, config_sha256), command,
                                     {community: [a.id for a in items] for community, items in carried.items()})
                result = result._replace(late=ledger.record_adjustments(engine, month, found, command))
                ledger.record_figures(engine, month, figures, events, command)
                csv_files.write_adjustments(version / "adjustments.csv", result.late, result.invoices)
                write_derived(version, config, month)
                names = sorted(path.name for path in version.iterdir())
        except OSError as exc:
            error = OutputError(f"cannot write the outputs to {final}: {exc.strerror or exc}", notes=result.notes)
            error.paid_requests, error.bytes_scanned = result.paid_requests, result.bytes_scanned
            raise error from None
        except BillingError as error:  # say what the sources did and cost all the same
            error.notes = result.notes + error.notes
            error.paid_requests += result.paid_requests
            error.bytes_scanned += result.bytes_scanned
            raise
        from .review import publish_index  # pandas: imported only when a month is written
        publish_index(config, final.parent, engine)  # the index of months, now that this one is published
        done = RunResult(result, final, tuple(final / name for name in names))
        if then is not None:
            then(done)
    return done


def _findings(config: Config, month: Month, result: MonthResult,
              last: Sequence[Figure] | None) -> tuple[tuple[Figure, ...], tuple[guards.Finding, ...]]:
    """The month's figures, and the guards' findings on them against ``last`` month's."""
    if last is None:
        logs.get("guards").info("the ledger has no record of %s: changes since last month are not checked",
                                month.previous)
    figures = guards.figures(config, result.attributed, result.shares, result.reconciliation)
    contracted = [i.community_id for i in result.invoices if i.kind == "invoice"]
    return figures, guards.check(config, month, figures, last, result.attributed, contracted)


def _guard(month: Month, findings: Sequence[guards.Finding],
           allow: Sequence[str]) -> tuple[tuple[guards.Finding, ...], tuple[str, ...]]:
    """The findings ``allow`` accepts and the ``allow`` entries that accepted none; ``GuardError``
    for any finding not allowed."""
    stopping, accepted, unused = guards.allowed(findings, allow)
    if stopping:
        raise GuardError(f"{len(stopping)} finding(s) stop the run of {month}: nothing was written or recorded. Fix "
                         "the config (billing check-config --month " + str(month) + " shows them without writing), "
                         "or accept each with --allow KIND:SUBJECT if it is right",
                         problems=tuple(f"{f.key}: {f.message}" for f in stopping))
    return accepted, unused


class MonthCheck(NamedTuple):
    """What ``check_month`` found: the guards' findings, rules that can never match, and the
    month's computed result (nothing of it written)."""

    findings: tuple[guards.Finding, ...]
    never: tuple[str, ...]
    result: MonthResult
    compared: bool


def check_month(config: Config, month: Month, today: dt.date, command: str = "billing check-config") -> MonthCheck:
    """Run the attribution rules against ``month``'s data and the guards against last month's
    figures in the ledger, writing nothing: no outputs, no ledger (a missing one is not created).
    Sources that cache paid answers (Cost Explorer) use and keep their cache as a run does."""
    result = compute_month(config, month, unsettled=dates.unsettled(month, today, config.settle_days))
    engine = ledger.open_existing(ledger.ledger_url(config.ledger.url), command)
    try:
        last = ledger.figures_of(engine, month.previous) if engine is not None else None
    finally:
        if engine is not None:
            engine.dispose()
    _, findings = _findings(config, month, result, last)
    never = guards.never_match(config)
    return MonthCheck(findings, never, result, last is not None)


def recorded_summary(config: Config, month: Month, command: str) -> summary.Summary:
    """The summary of ``month`` as the ledger has it: its invoices, and the unattributed cost its
    last run found."""
    engine = ledger.open_ledger(ledger.ledger_url(config.ledger.url), command)
    try:
        invoices = ledger.month_invoices(engine, month)
        figures = ledger.figures_of(engine, month) or ()
    finally:
        engine.dispose()
    unattributed = {f.currency: f.amount for f in figures if f.subject == guards.UNATTRIBUTED}
    return summary.of_invoices(command, month, invoices, unattributed)

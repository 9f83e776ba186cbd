"""Delivering a month that was run: under the month's lock (so that no run replaces the folder
while it is read), from the folder as it is, with what was delivered, or why not, recorded in
the ledger's events of the month."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Sequence

from .. import atomic, ledger, logs
from ..config import Config
from ..errors import BillingError, UsageError
from ..records import Month
from . import deliver
from .manifest import manifest, read_month


def deliver_month(config: Config, month: Month, output: Path | None, summary: str, findings: Sequence[str],
                  command: str, subject: str | None = None, again: bool = False,
                  locked: bool = False) -> tuple[str, ...]:
    """Deliver ``<output>/<YYYY-MM>/`` as the config's ``deliver`` section says; the lines of
    what each destination did. A failure (``DeliveryError``) leaves the outputs and the ledger's
    invoices as they are; ``billing deliver --month`` tries again.

    Each event the ledger records starts with the digest of the month's manifest, so that a
    retry (or a rerun that made the same files) does not email finance or post again about
    files they were told of; ``again`` sends anyway. Buckets are always checked (they upload
    only what they lack). ``locked``: the caller holds the month's lock already (a run or
    finalize delivering what it just published)."""
    assert config.deliver is not None
    final = (Path(output) if output is not None else config.output) / str(month)
    engine = ledger.open_ledger(ledger.ledger_url(config.ledger.url), command)
    try:
        with contextlib.nullcontext() if locked else atomic.locked(final, f"the outputs of {month}"):
            if not locked:
                atomic.recover(final)
            if not final.is_dir():
                raise UsageError(f"{command}: {final} does not exist; run `billing run --month {month}` with the "
                                 "same output folder (--output) first")
            files = read_month(final, month)
            digest = hashlib.sha256(manifest(month, files)).hexdigest()[:16]
            skip = frozenset() if again else _announced(ledger.events_of(engine, month), digest)
            try:
                done = deliver(config.deliver, final, month, summary, findings, logs.get("deliver"), subject, skip,
                               files)
            except BillingError as error:  # what the other destinations received, then what failed
                ledger.record_events(engine, month, [("delivered", f"{digest} {note}") for note in error.notes]
                                     + [("delivery-failed", f"{digest} {error.message}")], command)
                error.notes = ()  # each destination's line is logged already
                raise
        ledger.record_events(engine, month, [("delivered", f"{digest} {line}") for line in done.lines], command)
    finally:
        engine.dispose()
    return done.lines


def _announced(events: Sequence[ledger.MonthEvent], digest: str) -> frozenset[str]:
    """The messages (``email``, ``webhook``) already sent about the files whose manifest has ``digest``."""
    lines = [e.detail.removeprefix(digest + " ") for e in events
             if e.change == "delivered" and e.detail.startswith(digest + " ")]
    return frozenset(kind for kind in ("email", "webhook") if any(line.startswith(kind + " ") for line in lines))

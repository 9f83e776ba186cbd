"""Delivering a month that was run: under the month's lock (so that no run replaces the folder
while it is read), from the folder as it is, with what was delivered, or why not, recorded in
the ledger's events of the month."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import atomic, ledger, logs
from ..config import Config
from ..errors import BillingError, UsageError
from ..records import Month
from . import deliver


def deliver_month(config: Config, month: Month, output: Path | None, summary: str, findings: Sequence[str],
                  command: str, subject: str | None = None) -> tuple[str, ...]:
    """Deliver ``<output>/<YYYY-MM>/`` as the config's ``deliver`` section says; the lines of
    what each destination did. A failure (``DeliveryError``) leaves the outputs and the ledger's
    invoices as they are; ``billing deliver --month`` tries again."""
    assert config.deliver is not None
    final = (Path(output) if output is not None else config.output) / str(month)
    with atomic.locked(final, f"the outputs of {month}"):
        atomic.recover(final)
        if not final.is_dir():
            raise UsageError(f"{command}: {final} does not exist; run `billing run --month {month}` with the same "
                             "output folder (--output) first")
        try:
            done = deliver(config.deliver, final, month, summary, findings, logs.get("deliver"), subject)
        except BillingError as error:  # what the other destinations received, then what failed
            _record(config, month, [("delivered", note) for note in error.notes] + [("delivery-failed", error.message)],
                    command)
            error.notes = ()  # each destination's line is logged already
            raise
    _record(config, month, [("delivered", line) for line in done.lines], command)
    return done.lines


def _record(config: Config, month: Month, events: list[tuple[str, str]], command: str) -> None:
    engine = ledger.open_ledger(ledger.ledger_url(config.ledger.url), command)
    try:
        ledger.record_events(engine, month, events, command)
    finally:
        engine.dispose()

"""What each month's run found (``guards.figures``), kept for the next month's run to compare
with, and the month's own events: a run forced before its data settled, findings a person
accepted, deliveries."""

from __future__ import annotations

import getpass
import os
import socket
from typing import NamedTuple, Sequence

from sqlalchemy import Engine, delete, insert, select

from ..records import Figure, Month
from .connect import guarded, timestamp
from .schema import month_events, month_figures


class MonthEvent(NamedTuple):
    month: str
    at: str
    command: str
    change: str
    detail: str


def who() -> str:
    """``user@host``: who ran the command, for the events a person caused (--force, --allow)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's user without a name
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"



@guarded
def record_figures(engine: Engine, month: Month, figures: Sequence[Figure], events: Sequence[tuple[str, str]],
                   command: str) -> None:
    """Replace ``month``'s figures by ``figures`` and add its ``events`` (change, detail), in one
    transaction."""
    with engine.begin() as connection:
        connection.execute(delete(month_figures).where(month_figures.c.month == str(month)))
        if figures:
            connection.execute(insert(month_figures), [
                {"month": str(month), "subject": f.subject, "currency": f.currency, "amount": f.amount,
                 "rows": f.rows, "detail": f.detail} for f in figures])
        _add_events(connection, month, events, command)


@guarded
def record_events(engine: Engine, month: Month, events: Sequence[tuple[str, str]], command: str) -> None:
    """Add ``events`` (change, detail) to ``month``'s events."""
    with engine.begin() as connection:
        _add_events(connection, month, events, command)


def _add_events(connection, month: Month, events: Sequence[tuple[str, str]], command: str) -> None:
    now = timestamp()
    for change, detail in events:
        connection.execute(insert(month_events).values(month=str(month), at=now, command=command, change=change,
                                                       detail=detail))


@guarded
def figures_of(engine: Engine, month: Month) -> tuple[Figure, ...] | None:
    """``month``'s figures as its last run recorded them; ``None`` if no run of it did."""
    with engine.connect() as connection:
        rows = connection.execute(select(month_figures).where(month_figures.c.month == str(month))
                                  .order_by(month_figures.c.subject, month_figures.c.currency)).mappings().all()
    if not rows:
        return None
    return tuple(Figure(r["subject"], r["currency"], r["amount"], r["rows"], r["detail"]) for r in rows)


@guarded
def events_of(engine: Engine, month: Month) -> tuple[MonthEvent, ...]:
    """``month``'s events, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(month_events).where(month_events.c.month == str(month))
                                  .order_by(month_events.c.id)).mappings().all()
    return tuple(MonthEvent(r["month"], r["at"], r["command"], r["change"], r["detail"]) for r in rows)

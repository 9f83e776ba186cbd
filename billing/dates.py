"""Today, and the months a command line names: ``YYYY-MM`` or ``last``, against a clock that
tests (and a rerun of a missed job) can set with ``--today`` or ``BILLING_TODAY``.

Every date rule (``--month last``, the settle rule) reads the day from here, in UTC: a monthly job
runs in one timezone wherever its machine is.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import UsageError
from .records import Month

LAST = "last"
FIRST_YEAR, LAST_YEAR = 2000, 2999  # cloud bills: a year outside is a slip
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def today(given: str | None = None) -> dt.date:
    """``given`` (``YYYY-MM-DD``, from ``--today`` or ``BILLING_TODAY``), else today's date in UTC."""
    if given is None or not given.strip():
        return dt.datetime.now(dt.timezone.utc).date()
    text = given.strip()
    if not _DAY.fullmatch(text):
        raise UsageError(f"--today (or BILLING_TODAY) {given!r} is not a date of the form YYYY-MM-DD "
                         "(for example 2022-10-06)")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--today (or BILLING_TODAY) {given!r} is not a date of the calendar") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise UsageError(f"--today (or BILLING_TODAY) {given!r} is not between {FIRST_YEAR} and {LAST_YEAR}")
    return day


def month(text: str, day: dt.date) -> Month:
    """The month ``text`` names: ``YYYY-MM``, or ``last``, the calendar month before ``day``'s."""
    if isinstance(text, str) and text.strip().lower() == LAST:
        return Month.of(day).previous
    try:
        month = Month.parse(text)
    except UsageError:
        raise UsageError(f"--month {text!r} is neither YYYY-MM (for example 2022-09) nor 'last' (the month "
                         "before today's, UTC)") from None
    if not FIRST_YEAR <= month.year <= LAST_YEAR:
        raise UsageError(f"--month {text!r} is not between {FIRST_YEAR} and {LAST_YEAR}")
    return month


def settles_on(month: Month, settle_days: int) -> dt.date:
    """The first day ``month``'s cloud data counts as final: ``settle_days`` whole days into the
    next month (with 5, the 6th)."""
    return month.next.first_day + dt.timedelta(days=settle_days)


def unsettled(month: Month, day: dt.date, settle_days: int) -> str | None:
    """Why ``month`` cannot be billed as final on ``day``, or ``None`` once it has settled.

    Providers keep adding rows and adjustments to a month for days after it ends (GCP's late
    rows; AWS's Estimated figures), so a run before ``settles_on`` is provisional. A month that
    has not begun is a usage error."""
    if day < month.first_day:
        raise UsageError(f"{month} has not begun (today is {day}, UTC); give a month that has, or --month last")
    settled = settles_on(month, settle_days)
    if day >= settled:
        return None
    return f"the cloud data for {month} is still settling until {settled} (settle_days {settle_days}, today {day} UTC)"

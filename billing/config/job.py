"""The monthly job's rules: when a month's data is settled, and the guards that stop a run
before it sends an invoice that silently lost money."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from .fields import Count, Money, Percent, _Model, _exact_number

MAX_CHANGE = Decimal(100_000)    # percent: a thousandfold change is still a number to compare with

SettleDays = Annotated[Count, Field(ge=0, le=27)]
ChangePercent = _exact_number(Decimal(0), MAX_CHANGE)


class MaxUnattributed(_Model):
    """Unattributed cost a run accepts, per currency of the sources: a run whose unattributed cost
    is above ``amount`` or above ``percent`` of the sources' total stops (``null`` turns a limit
    off). The defaults let through the cents of a provider's odd rows, not a community's bill."""

    amount: Money | None = Decimal(100)
    percent: Percent | None = Decimal(1)


class Guards(_Model):
    """Findings that stop a run (exit 1) unless accepted with ``--allow``; see ``billing.guards``.

    ``max_change_percent``: a community under contract whose cloud cost changed by more than this
    since last month (``null``: never; a fall to zero is always a finding), unless the change is
    smaller than ``min_change_amount`` (in the sources' currency; ``null``: any change counts).
    """

    max_unattributed: MaxUnattributed = MaxUnattributed()
    max_change_percent: ChangePercent | None = Decimal(50)
    min_change_amount: Money | None = Decimal(100)

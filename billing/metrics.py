"""Monthly usage metrics per community, from a CSV file per month.

The file (``metrics:`` in the config, a path with ``{month}`` in it, e.g.
``metrics/{month}.csv``) has the columns ``community, metric, value``: for example
memory-request byte-hours exported from Prometheus for a metric-split shared pool, or monthly
active users for a tiered fee. Values are exact decimals from 0 to ``MAX_QUANTITY`` (10^18), the
bound on quantities in the config. The file is read only when a pool or a fee needs it.
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .config import MAX_QUANTITY
from .errors import DataError
from .records import Month

COLUMNS = ("community", "metric", "value")


class Metrics:
    """The metrics of one month, read on first use."""

    def __init__(self, template: Path | None, month: Month):
        self.path = Path(str(template).replace("{month}", str(month))) if template else None
        self._values: dict[tuple[str, str], Decimal] | None = None

    def value(self, community: str, metric: str) -> Decimal | None:
        """The community's value of ``metric`` this month, or ``None`` if the file has none."""
        if self._values is None:
            self._values = self._read()
        return self._values.get((community, metric))

    def _read(self) -> dict[tuple[str, str], Decimal]:
        if self.path is None:
            raise DataError("a shared pool or fee needs usage metrics, but the config sets no `metrics:` file")
        try:
            text = self.path.read_text(encoding="utf-8-sig")  # -sig: as spreadsheets save it
        except FileNotFoundError:
            raise DataError(f"metrics file {self.path} not found (a shared pool or fee needs it)") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"metrics file {self.path} cannot be read: {error}") from None
        values: dict[tuple[str, str], Decimal] = {}
        reader = csv.DictReader(text.splitlines())
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DataError(f"{self.path}: expected the columns {', '.join(COLUMNS)}, "
                            f"found {', '.join(reader.fieldnames or ()) or 'none'}")
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise DataError(f"{self.path}:{line}: expected 3 values (community, metric, value)")
            key = (row["community"].strip(), row["metric"].strip())
            try:
                value = Decimal(row["value"].strip())
            except InvalidOperation:
                raise DataError(f"{self.path}:{line}: value {row['value']!r} is not a number") from None
            if not value.is_finite() or value < 0 or value > MAX_QUANTITY:
                raise DataError(f"{self.path}:{line}: value {row['value']!r} must be a number "
                                f"from 0 to {MAX_QUANTITY:,f}")
            if key in values:
                raise DataError(f"{self.path}:{line}: {key[0]} {key[1]} appears twice")
            values[key] = value
        return values

"""What every collector returns."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import NamedTuple

from ..records import CostRow, SourceTotal


class Collection(NamedTuple):
    """The costs of one source for one month.

    Attributes:
        rows: normalized cost rows, sorted.
        totals: the source's own total per billing account (for reconciliation).
        label_keys: the label/tag keys the source's data carries: for GCP, the keys attribution
            asked for that some row carries (and, when one of them is carried by none, every key
            the data holds, to suggest a spelling); for AWS, the tags the responses were grouped
            by. A rule on any other key can never match, and is reported.
        warnings: things a person should act on (e.g. a provisional month), one line each.
        notes: what the collection did and cost (bytes scanned, paid requests), one line each.
        provisional: the source says its figures for the month are not final (AWS Estimated).
        paid_requests: paid API requests made (Cost Explorer: 0.01 USD each).
        bytes_scanned: bytes a query engine billed for (BigQuery).
    """

    rows: tuple[CostRow, ...]
    totals: tuple[SourceTotal, ...]
    label_keys: frozenset[str]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    provisional: bool = False
    paid_requests: int = 0
    bytes_scanned: int = 0


def files_at(path: Path, suffixes: tuple[str, ...], fold_case: bool = False) -> list[Path]:
    """The files whose names end in one of ``suffixes`` (in any case, with ``fold_case``) at
    ``path``: a folder (at any depth), a file or a glob; sorted."""
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file()]
    elif path.is_file():
        found = [path]
    else:
        found = [Path(p) for p in glob.glob(str(path), recursive=True)]
    return sorted(p for p in found if (p.name.lower() if fold_case else p.name).endswith(suffixes))

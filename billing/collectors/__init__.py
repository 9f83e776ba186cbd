"""Collectors: one small interface, one implementation per kind of source.

A collector is a function ``collect(source, month, label_keys) -> Collection``. It only reads:
it returns normalized ``CostRow``s plus the source's own total per billing account, and never
writes anything. Which collector serves a source is chosen from ``COLLECTORS`` by the source's
``type``; nothing downstream knows which cloud a row came from except through its fields.
"""

from __future__ import annotations

from typing import Callable

from ..config import Source
from ..records import Month
from .base import Collection
from . import aws_files, gcp_files

Collector = Callable[[Source, Month, tuple[str, ...]], Collection]

COLLECTORS: dict[str, Collector] = {
    "gcp-export-files": gcp_files.collect,
    "aws-cost-explorer-files": aws_files.collect,
}


def collect(source: Source, month: Month, label_keys: tuple[str, ...]) -> Collection:
    """Collect one source's costs for ``month``, keeping only the ``label_keys`` attribution uses."""
    return COLLECTORS[source.type](source, month, label_keys)


__all__ = ["COLLECTORS", "Collection", "collect"]

"""Collectors: one small interface, one implementation per kind of source.

A collector is a function ``collect(source, month, label_keys, refresh) -> Collection``. It
reads: it returns normalized ``CostRow``s plus the source's own total per billing account, and
writes nothing but its own cache of raw API responses (``refresh`` ignores that cache). Which collector serves a source is chosen from ``COLLECTORS`` by the source's
``type``; nothing downstream knows which cloud a row came from except through its fields.
Collector modules are imported when first used, so a run pays only for the clients it needs.
"""

from __future__ import annotations

import importlib

from ..config import Source
from ..records import Month
from .base import Collection

COLLECTORS: dict[str, str] = {
    "gcp-export-files": "gcp_files",
    "gcp-bigquery": "gcp_bigquery",
    "aws-cost-explorer-files": "aws_files",
    "aws-cost-explorer": "aws_cost_explorer",
    "aws-data-exports": "aws_data_exports",
    "focus-files": "focus_files",
}


def collect(source: Source, month: Month, label_keys: tuple[str, ...], refresh: bool = False) -> Collection:
    """Collect one source's costs for ``month``, keeping only the ``label_keys`` attribution uses."""
    module = importlib.import_module(f"{__name__}.{COLLECTORS[source.type]}")
    return module.collect(source, month, label_keys, refresh)


__all__ = ["COLLECTORS", "Collection", "collect"]

"""The review page: static HTML for finance to look at before sending the month's invoices.

``<output>/<YYYY-MM>/index.html`` (``write_month_page``, one of the files ``render.derived``
makes from a month's CSV files) shows the month; ``<output>/index.html`` (``write_index``,
rewritten after every run, finalize and void) lists every month. Both are built from the files
in the month folders with ``billing.api`` (the functions a notebook uses), never from a run's
computation, and are self-contained: inline CSS, charts as inline SVG (``charts``), relative
links, no script, no network; they open from a laptop's folder (``file://``) or a bucket.
"""

from .pages import publish_index, write_index, write_month_page

__all__ = ["publish_index", "write_index", "write_month_page"]

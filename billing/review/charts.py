"""Stacked bar charts as static SVG, to be put inline in a page: no script, no file beside it.

Drawn with matplotlib's object-oriented API (no pyplot, so no global figure state and no display
needed) and saved as SVG with a fixed hash salt and no date, so that the same figures give the
same bytes. Each series is one ``PatchCollection``, which the SVG writer puts in one ``<g>``; that
group gets ``class="series"`` and ``data-series`` (and ``data-<kind>``, e.g. ``data-community``)
so that a reader, or a test, can tell the series apart, and each bar a ``<title>`` (its label,
month and amount), which a browser shows as a tooltip. Every ``id`` is prefixed with the chart's
own name, so that two charts in one page never share one.

Amounts come in as ``Decimal``; they become floats here only for the bars' geometry. The numbers
printed (tooltips, totals above the bars) are formatted from the Decimals.
"""

from __future__ import annotations

import html
import io
import re
from decimal import Decimal
from typing import Mapping, NamedTuple, Sequence

import matplotlib
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from ..money import ZERO, format_amount

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Distinct colours for up to 20 series (matplotlib's tab20, dark shades first); more repeat them.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
           "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")
TEXT, GRID = "#333333", "#dddddd"
MIN_SLOTS = 6  # the width of the plot, in bars, however few months there are


class Series(NamedTuple):
    """One stacked series: its key (an id, as in the data), the label shown, its colour."""

    key: str
    label: str
    colour: str


def month_label(month: str) -> str:
    """``2022-09`` -> ``Sep 2022`` (fixed English names: the system's locale must not change the bytes)."""
    year, number = month.split("-")
    return f"{MONTH_NAMES[int(number) - 1]} {year}"


def stacked_bars(name: str, kind: str, months: Sequence[str], series: Sequence[Series],
                 values: Mapping[tuple[str, str], Decimal], currency: str, title: str) -> str:
    """An inline ``<svg>``: one bar per month (in ``months``' order), each stacked from ``series``
    (first at the bottom; negative amounts stack below zero), with ``values[(key, month)]`` in
    ``currency`` (a missing value is nothing). ``name`` prefixes every id; ``kind`` names the
    series' data attribute (``community`` gives ``data-community="<key>"``)."""
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none", "font.size": 9, "text.parse_math": False,
                                "font.family": "DejaVu Sans"}):
        figure = Figure(figsize=(9.2, 3.6))
        axes = figure.subplots()
        positive, negative = [0.0] * len(months), [0.0] * len(months)
        tooltips: dict[str, list[str]] = {}
        for item in series:
            rectangles, tooltips[item.key] = [], []
            for index, month in enumerate(months):
                amount = values.get((item.key, month), ZERO)
                if not amount:
                    continue
                height = float(amount)  # geometry only
                base = positive if height > 0 else negative
                rectangles.append(Rectangle((index - 0.35, base[index]), 0.7, height))
                base[index] += height
                tooltips[item.key].append(f"{item.label}, {month_label(month)}: {format_amount(amount, currency)} "
                                          f"{currency}")
            axes.add_collection(PatchCollection(rectangles, facecolor=item.colour, edgecolor="white", linewidth=0.4,
                                                gid=f"series-{item.key}"))
        totals = {month: sum((values.get((item.key, month), ZERO) for item in series), ZERO) for month in months}
        top = max(positive + [0.0]) or 1.0
        for index, month in enumerate(months):
            if totals[month] or positive[index] or negative[index]:
                axes.annotate(format_amount(totals[month], currency), (index, positive[index]), xytext=(0, 3),
                              textcoords="offset points", ha="center", va="bottom", fontsize=7.5, color=TEXT)
        spare = max(0, MIN_SLOTS - len(months)) / 2  # a month or two: bars of the usual width, centred
        axes.set_xlim(-0.6 - spare, len(months) - 0.4 + spare)
        axes.set_ylim(min(negative + [0.0]) * 1.1, top * 1.12)
        axes.set_xticks(range(len(months)), [month_label(m).replace(" ", "\n") for m in months])
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.set_ylabel(currency, color=TEXT)
        axes.tick_params(colors=TEXT, length=0)
        axes.grid(axis="y", color=GRID, linewidth=0.6)
        axes.set_axisbelow(True)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        axes.spines["bottom"].set_color("#999999")
        handles = [Patch(facecolor=item.colour, label=item.label) for item in reversed(series)]
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8.5)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _inline(buffer.getvalue(), name, kind, title, tooltips)


def _inline(svg: str, name: str, kind: str, title: str, tooltips: Mapping[str, list[str]]) -> str:
    """matplotlib's SVG document as an element for an HTML page (see the module docstring)."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', svg)

    def series(match: re.Match) -> str:
        key = match[2]
        titles = iter(tooltips.get(key, ()))
        body = re.sub(r"/>", lambda _: f"><title>{html.escape(next(titles, ''))}</title></path>", match[3])
        return f'{match[1]} class="series" data-series="{html.escape(key)}" data-{kind}="{html.escape(key)}">{body}'

    svg = re.sub(rf'(<g id="{re.escape(name)}-series-([^"]+)")>(.*?</g>)', series, svg, flags=re.DOTALL)
    return svg.replace("<svg ", f'<svg role="img" aria-labelledby="{name}-title" ', 1).replace(
        ">", f'>\n <title id="{name}-title">{html.escape(title)}</title>', 1).strip()

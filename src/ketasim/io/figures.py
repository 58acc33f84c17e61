"""Figure and table helpers shared by the report sections (``report``, ``report_trial``,
``report_lab``) and the validation scorecard: matplotlib figures drawn on the Agg canvas
directly (the caller's pyplot backend is never touched) and embedded as base64 PNG, the
time axis every time-course panel uses, and HTML tables with cells formatted for reading.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ketasim.units import format_hours

__all__ = ["DAYS_AFTER_H", "arm_colors", "esc", "figure_html", "html_table", "new_figure",
           "number", "png", "pvalue", "time_axis"]

DAYS_AFTER_H = 72.0  # follow-up longer than this: a log-like time axis labelled in days


def esc(v: Any) -> str:
    """``v`` as text, HTML-escaped."""
    return html.escape(str(v))


def number(v: Any, digits: int = 4) -> str:
    """A cell value for reading: ``digits`` significant digits, yes/no, '' for NaN/None."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.{digits}g}"
    return str(v)


def pvalue(v: Any) -> str:
    """A p-value cell: ``<0.001`` or three decimals; '' when not a finite number."""
    if v is None or not isinstance(v, float | np.floating) or not math.isfinite(v):
        return ""
    return "<0.001" if v < 0.001 else f"{float(v):.3f}"


def html_table(df: pd.DataFrame) -> str:
    """An HTML table of ``df`` (index dropped), cells formatted for reading."""
    shown = df.copy()
    for col in shown.columns:
        if col == "p_value":
            shown[col] = [pvalue(v) for v in shown[col]]
        else:
            shown[col] = [number(v) if not isinstance(v, str) else v for v in shown[col]]
    return str(shown.to_html(index=False, classes="tbl", border=0, na_rep="", escape=True))


def png(fig: Any) -> str:
    """The figure as base64 PNG text (100 dpi, tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(n_panels: int, ncols: int = 3, w: float = 4.3,
               h: float = 3.1) -> tuple[Any, list[Any]]:
    """A figure of ``n_panels`` axes in rows of ``ncols``, each ``w`` x ``h`` inches."""
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def figure_html(fig: Any, caption: str) -> str:
    """``<figure>`` with the PNG inline and ``caption`` below it."""
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{png(fig)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def arm_colors(keys: Iterable[Any]) -> dict[Any, Any]:
    """One tab10 colour per key, in the order given."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {k: cmap(i % 10) for i, k in enumerate(dict.fromkeys(keys))}


def time_axis(ax: Any, tmin: float, tmax: float, repeated: bool = False) -> str:
    """Set up the x axis; return its description for the caption.

    Follow-up up to 3 days: linear, in hours. Longer: linear in days for repeated dosing
    (so every dose has its place), else logarithmic (symmetric-log, linear below 1 h, when
    there are times at or before the dose), labelled in min, h and d.
    """
    if tmax <= DAYS_AFTER_H:
        ax.set_xlabel("time after first dose (h)" if repeated else "time after dose (h)")
        return "time in hours"
    if repeated:
        span_d = (tmax - min(tmin, 0.0)) / 24.0
        step = next((s for s in (1, 2, 7, 14, 28, 56) if span_d / s <= 10), 91)
        first = math.floor(min(tmin, 0.0) / 24.0 / step) * step
        days = np.arange(first, tmax / 24.0 + step, step)
        ax.set_xticks(days * 24.0)
        ax.set_xticklabels([f"{d:g}" for d in days], fontsize=8)
        ax.set_xlim(min(tmin, 0.0) - 0.02 * span_d * 24, tmax + 0.02 * span_d * 24)
        ax.set_xlabel("time after first dose (d)")
        return "time in days"
    if tmin > 0:
        ax.set_xscale("log")
        ax.set_xlim(tmin / 1.3, tmax * 1.3)
        note = "logarithmic time axis"
    else:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_xlim(tmin - 0.1, tmax * 1.3)
        note = "logarithmic time axis (linear below 1 h)"
    marks = [0, 0.5, 1, 4, 24, 72, 168, 336, 672, 1344, 2688, 5376, 8760]
    lo = tmin if tmin <= 0 else tmin / 1.3
    ticks = [t for t in marks if lo <= t <= tmax * 1.3]
    ax.set_xticks(ticks)
    ax.set_xticklabels([format_hours(t) for t in ticks], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("time after dose")
    return note

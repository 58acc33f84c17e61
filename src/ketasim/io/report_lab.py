"""Report section for virtual animal experiments: group bars with SEM and significance marks.

One figure per requested readout, as a paper draws it: for terminal measures (behaviour,
Western blot, spine counts, metabolomics) a panel per output time with a bar per arm
(group mean), SEM error bars, every animal as a dot and significance marks against the
vehicle arm (* p < 0.05, ** p < 0.01, *** p < 0.001; Tukey HSD after a one-way ANOVA, or a
Welch t-test with two arms, from ``lab_tests``); for in vivo time series (microdialysis,
MRS) a time course of mean +- SEM per arm with the marks above the points. matplotlib is
imported lazily and drawn on the Agg canvas (``ketasim.io.figures``), so the caller's
pyplot backend is never touched.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ketasim.io.figures import arm_colors, figure_html, new_figure
from ketasim.result import RunResult
from ketasim.units import format_hours

MAX_DOTS = 60  # per bar; larger groups show a fixed random subset of animals


def _tables(result: RunResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ketasim.experiments import lab

    extra = result.extra_tables or {}
    if "lab_stats" in extra and "lab_tests" in extra:
        return extra["lab_stats"], extra["lab_tests"]
    got = lab.group_statistics(result.scenario, result.data)
    return got["lab_stats"], got["lab_tests"]


def render(result: RunResult) -> str:
    """HTML for this section, or "" when the run has nothing for it."""
    sc = result.scenario
    if getattr(sc, "species", "human") == "human" or not hasattr(sc, "arms"):
        return ""
    from ketasim.experiments import lab

    stats, tests = _tables(result)
    if stats.empty:
        return ""
    control = lab.vehicle_arm(sc)
    arms = [a.name for a in sc.arms]
    parts = []
    for r in dict.fromkeys(stats["readout"]):
        tech = lab.technique_of(str(r))
        sub = stats[stats["readout"] == r]
        course = tech is not None and tech.plot == "time_course" and sub["time_h"].nunique() > 1
        fig_html = (_time_course(result, str(r), sub, tests, arms, control) if course
                    else _bars(result, str(r), sub, tests, arms, control))
        parts.append(fig_html)
    fact = lab.factorial_2x2(sc)
    intro = ("<p class=\"muted\">Group means with SEM; animals as dots. Marks against "
             f"{_name(control)}: * p &lt; 0.05, ** p &lt; 0.01, *** p &lt; 0.001 (Tukey HSD "
             "after a one-way ANOVA; Welch t-test with two arms). Assayed readouts carry the "
             "technique's measurement error (catalog/assays.toml)."
             + (" The arms form a 2 x 2 factorial: the two-way ANOVA is in lab_tests."
                if fact else "") + "</p>")
    return "<h2>Laboratory figures</h2>\n" + intro + "\n" + "\n".join(p for p in parts if p)


def _name(control: str | None) -> str:
    import html

    return f"the {html.escape(control)} arm" if control else "no vehicle arm (no marks)"


def _animals(result: RunResult, readout: str, period_idx: int, k: int,
             arm: str) -> np.ndarray:
    data = result.data
    ok = data["status"].values == "ok"
    sel = ok & (data["arm"].values[:, period_idx] == arm)
    v = np.asarray(data[readout].values, dtype=float)[sel, period_idx, k]
    v = v[np.isfinite(v)]
    if v.size > MAX_DOTS:
        v = np.random.default_rng(0).choice(v, MAX_DOTS, replace=False)
    return v


def _caption(result: RunResult, readout: str, unit: str, sub: pd.DataFrame) -> str:
    from ketasim.experiments import lab

    tech = lab.technique_of(readout)
    n = sub.groupby("arm", sort=False)["n"].max()
    ns = ", ".join(f"{a} n={int(v)}" for a, v in n.items())
    how = (f"{tech.name}, measurement CV {tech.cv.value:.0%}" if tech is not None
           else "behavioural test or model state")
    sampling = result.data[readout].attrs.get("sampling", "")
    return (f"{readout} ({unit}): {how}"
            + (f"; {sampling}" if sampling else "") + f"; {ns}.")


def _bars(result: RunResult, readout: str, sub: pd.DataFrame, tests: pd.DataFrame,
          arms: list[str], control: str | None) -> str:
    from ketasim.experiments import lab

    periods = list(dict.fromkeys(sub["period"]))
    times = sorted(set(sub["time_h"]))
    panels = [(p, t) for p in periods for t in times]
    present = [a for a in arms if a in set(sub["arm"])]
    fig, axes = new_figure(len(panels), ncols=min(4, len(panels)),
                            w=max(2.2, 0.75 * len(present) + 1.0), h=3.4)
    colors = arm_colors(arms)
    unit = str(sub["unit"].iloc[0])
    t_index = {float(t): k for k, t in enumerate(result.data["time"].values)}
    p_index = {int(p): i for i, p in enumerate(result.data["period"].values)}
    jitter = np.random.default_rng(1)
    for ax, (period, t) in zip(axes, panels, strict=True):
        rows = sub[(sub["period"] == period) & np.isclose(sub["time_h"], t)].set_index("arm")
        marks = (lab.significance_vs(tests, readout, int(period), float(t), control)
                 if control else {})
        x = np.arange(len(present))
        top = 0.0
        for i, arm in enumerate(present):
            if arm not in rows.index:
                continue
            m, e = float(rows.loc[arm, "mean"]), float(rows.loc[arm, "sem"])
            ax.bar(i, m, color=colors[arm], alpha=0.55, width=0.7, edgecolor=colors[arm])
            if math.isfinite(e):
                ax.errorbar(i, m, yerr=e, color="black", capsize=3, linewidth=1)
            dots = _animals(result, readout, p_index[int(period)], t_index[float(t)], arm)
            ax.scatter(i + jitter.uniform(-0.18, 0.18, dots.size), dots, s=9, color="black",
                       alpha=0.6, linewidths=0, zorder=3)
            hi = max([m + (e if math.isfinite(e) else 0.0), *dots.tolist()])
            top = max(top, hi)
            star = lab.stars(marks.get(arm, float("nan")))
            if star:
                ax.text(i, hi, star, ha="center", va="bottom", fontsize=11)
        ax.set_xticks(x)
        ax.set_xticklabels(present, rotation=35, ha="right", fontsize=7)
        label = format_hours(t) + (f", period {period}" if len(periods) > 1 else "")
        ax.set_title(f"{readout}, {label}", fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        if top > 0:
            ax.set_ylim(top=top * 1.15)
        if unit == lab.PCT_VEHICLE:
            ax.axhline(100.0, color="grey", linewidth=0.6, linestyle=":")
    return figure_html(fig, _caption(result, readout, unit, sub))


def _time_course(result: RunResult, readout: str, sub: pd.DataFrame, tests: pd.DataFrame,
                 arms: list[str], control: str | None) -> str:
    from ketasim.experiments import lab

    periods = list(dict.fromkeys(sub["period"]))
    fig, axes = new_figure(len(periods), ncols=min(2, len(periods)), w=6.5, h=4.0)
    colors = arm_colors(arms)
    unit = str(sub["unit"].iloc[0])
    for ax, period in zip(axes, periods, strict=True):
        rows = sub[sub["period"] == period]
        upper = (rows["mean"] + rows["sem"].fillna(0.0)).groupby(rows["time_h"]).max()
        span = float(upper.max() - rows["mean"].min()) or 1.0
        shown = [a for a in arms if a in set(rows["arm"])]
        for arm in shown:
            g = rows[rows["arm"] == arm].sort_values("time_h")
            ax.errorbar(g["time_h"].to_numpy(float) * 60.0, g["mean"].to_numpy(float),
                        yerr=np.nan_to_num(g["sem"].to_numpy(float)), color=colors[arm],
                        marker="o", markersize=3, capsize=2, linewidth=1.2, label=arm)
        for t_h, hi in upper.items():  # marks stacked above the highest arm at each time
            p = (lab.significance_vs(tests, readout, int(period), float(t_h), control)
                 if control else {})
            level = 0
            for arm in shown:
                star = lab.stars(p.get(arm, float("nan")))
                if star:
                    ax.text(float(t_h) * 60.0, hi + 0.05 * span * (level + 0.3), star,
                            ha="center", va="bottom", fontsize=9, color=colors[arm])
                    level += 1
        ax.set_xlabel("time after dose (min)")
        ax.set_ylabel(unit, fontsize=8)
        ax.set_title(readout + (f", period {period}" if len(periods) > 1 else ""), fontsize=10)
        ax.axhline(100.0 if "%" in unit else 0.0, color="grey", linewidth=0.6, linestyle=":")
        ax.legend(fontsize=7)
    return figure_html(fig, _caption(result, readout, unit, sub))

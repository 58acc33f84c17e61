"""Report section for virtual trials (human runs): trajectories, response and remission
bars, Kaplan-Meier curves, whole-period endpoints and, for the default study set, the
six-infusion course beside the crossover and the rules behind Table 1.

- Trajectories: for each rating scale in the run (madrs, hamd17 and their changes), the
  mean per arm and period with a +/- 1 SD band and the 5th-95th percentile range (dotted).
- Response and remission: bars per arm (periods pooled: each subject once per arm) at up
  to four rating times (4 h, 24 h, day 3 and day 7 where rated; else the first ones), with
  Wilson 95 % intervals.
- Kaplan-Meier: relapse among responders from the start of the last dose, with the 95 %
  band (log(-log) Greenwood), from ``extra_tables["kaplan_meier"]`` when the run has it
  (the default study set: the course), else from the run itself when it reads out
  ``relapse_free``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ketasim.io.figures import arm_colors, esc, figure_html, html_table, new_figure, time_axis
from ketasim.result import RunResult
from ketasim.stats import km_median, wilson
from ketasim.units import format_hours

BAR_TIMES_H = (4.0, 24.0, 72.0, 168.0)
SCALES = ("madrs", "madrs.change", "hamd17", "hamd17.change")


def render(result: RunResult) -> str:
    """HTML for this section, or "" when the run has nothing for it."""
    sc = result.scenario
    if getattr(sc, "species", None) != "human" or not hasattr(sc, "arms"):
        return ""
    data = result.data
    if "time" not in data.coords or "status" not in data:
        return ""
    parts = [_trajectories(result), _response_bars(result), _km_figure(result),
             _course_figure(result)]
    body = "\n".join(p for p in parts if p)
    endpoints = _endpoint_table(result.summary)
    if endpoints:
        body += ("\n<h3>Endpoints over each period</h3><p class=\"muted\">Time to response "
                 "and remission (Kaplan-Meier medians) from the period's time zero; time to "
                 "relapse from the start of the last dose; safety peaks over the rating "
                 "times.</p>" + endpoints)
    rules = (result.notes or {}).get("table1")
    if "table1" in (result.extra_tables or {}) and rules:  # written by analysis.table1
        body += ("\n<h3>How Table 1's simulated values are read off</h3><pre>"
                 + esc(rules) + "</pre>")
    if not body:
        return ""
    return "<h2>Virtual trial</h2>\n" + body


def _new(n: int, ncols: int = 2, w: float = 5.5, h: float = 3.6) -> tuple[Any, list[Any]]:
    return new_figure(n, ncols=ncols, w=w, h=h)


def _ok(result: RunResult) -> np.ndarray:
    return np.asarray(result.data["status"].values == "ok")


def _trajectories(result: RunResult) -> str:
    data = result.data
    scales = [s for s in SCALES if s in data]
    if not scales or data.sizes.get("time", 0) < 2:  # one time: the tables say it all
        return ""
    fig, axes = _new(len(scales))
    ok = _ok(result)
    times = np.asarray(data["time"].values, float)
    arm_of = data["arm"].values[ok]
    periods = list(np.asarray(data["period"].values))
    arms = list(dict.fromkeys(str(a) for a in arm_of.ravel()))
    col = arm_colors(arms)
    note = ""
    for ax, r in zip(axes, scales, strict=True):
        v = np.asarray(data[r].values[ok], float)
        for p_idx, period in enumerate(periods):
            for arm in arms:
                sel = arm_of[:, p_idx] == arm
                if not sel.any():
                    continue
                x = v[sel, p_idx, :]
                with np.errstate(all="ignore"):
                    mean = np.nanmean(x, axis=0)
                    sd = np.nanstd(x, axis=0, ddof=1) if x.shape[0] > 1 else 0 * mean
                    lo, hi = np.nanpercentile(x, 5, axis=0), np.nanpercentile(x, 95, axis=0)
                style = "-" if p_idx == 0 else "--"
                label = f"{arm} (period {period})" if len(periods) > 1 else arm
                ax.plot(times, mean, style, marker="o", markersize=3, color=col[arm],
                        label=label)
                ax.fill_between(times, mean - sd, mean + sd, color=col[arm], alpha=0.15,
                                linewidth=0)
                ax.plot(times, lo, ":", color=col[arm], linewidth=0.8)
                ax.plot(times, hi, ":", color=col[arm], linewidth=0.8)
        ax.set_title(r, fontsize=10)
        ax.set_ylabel("points", fontsize=8)
        note = time_axis(ax, float(times.min()), float(times.max()))
        ax.legend(fontsize=7)
    return figure_html(
        fig, "Rating-scale trajectories: mean per arm and period (lines), +/- 1 SD "
        f"(band) and the 5th-95th percentiles (dotted); {note}.")


def _bar_times(times: np.ndarray) -> list[int]:
    idx = [int(np.flatnonzero(np.isclose(times, t))[0]) for t in BAR_TIMES_H
           if np.isclose(times, t).any()]
    return idx or list(range(min(4, times.size)))


def _response_bars(result: RunResult) -> str:
    data = result.data
    what = [r for r in ("response", "remission") if r in data]
    if not what:
        return ""
    ok = _ok(result)
    times = np.asarray(data["time"].values, float)
    ks = _bar_times(times)
    arm_of = data["arm"].values[ok]
    arms = list(dict.fromkeys(str(a) for a in arm_of.ravel()))
    col = arm_colors(arms)
    fig, axes = _new(len(what))
    width = 0.8 / max(1, len(arms))
    for ax, r in zip(axes, what, strict=True):
        v = np.asarray(data[r].values[ok], float)
        for j, arm in enumerate(arms):
            fr, lo, hi = [], [], []
            for k in ks:
                x = v[:, :, k][arm_of == arm]
                x = x[np.isfinite(x)]
                f = float(x.mean()) if x.size else np.nan
                w = wilson(float(x.sum()), x.size)
                fr.append(f)
                lo.append(max(f - w[0], 0.0) if x.size else 0.0)
                hi.append(max(w[1] - f, 0.0) if x.size else 0.0)
            pos = np.arange(len(ks)) + (j - (len(arms) - 1) / 2) * width
            ax.bar(pos, fr, width, color=col[arm], label=arm, yerr=[lo, hi], capsize=2)
        ax.set_xticks(np.arange(len(ks)))
        ax.set_xticklabels([format_hours(times[k]) for k in ks], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("fraction of subjects", fontsize=8)
        ax.set_title(r, fontsize=10)
        ax.legend(fontsize=7)
    return figure_html(
        fig, "Response (>= 50 % fall on the primary scale) and remission per arm "
        "(periods pooled: each subject once per arm) with Wilson 95 % intervals.")


def _km_table(result: RunResult) -> tuple[pd.DataFrame, str]:
    extra = result.extra_tables or {}
    if "kaplan_meier" in extra and len(extra["kaplan_meier"]):
        course = extra.get("course_summary")
        where = "the six-infusion course" if course is not None else "this run"
        return pd.DataFrame(extra["kaplan_meier"]), where
    if "relapse_free" not in result.data:
        return pd.DataFrame(), ""
    from ketasim.experiments.endpoints import kaplan_meier_table

    return kaplan_meier_table(result.scenario, result.data), "this run"


def _km_figure(result: RunResult) -> str:
    km, where = _km_table(result)
    if km.empty:
        return ""
    fig, axes = _new(1, ncols=1, w=6.5, h=4.0)
    ax = axes[0]
    groups = list(dict.fromkeys(zip(km["arm"], km["period"], strict=True)))
    col = arm_colors([a for a, _ in groups])
    medians = []
    for arm, period in groups:
        g = km[(km["arm"] == arm) & (km["period"] == period)].sort_values("time_h")
        t = np.concatenate([[0.0], g["time_h"].to_numpy(float) / 24.0])
        s = np.concatenate([[1.0], g["survival"].to_numpy(float)])
        lo = np.concatenate([[1.0], g["lower"].to_numpy(float)])
        hi = np.concatenate([[1.0], g["upper"].to_numpy(float)])
        label = f"{arm}" + (f" (period {period})" if len(groups) > 1 else "")
        n0 = int(g["at_risk"].iloc[0]) if len(g) else 0
        ax.step(t, s, where="post", color=col[arm], label=f"{label}, {n0} responders")
        ax.fill_between(t, lo, hi, step="post", color=col[arm], alpha=0.15, linewidth=0)
        cens = g[g["censored"] > 0]
        ax.plot(cens["time_h"] / 24.0, cens["survival"], "|", color=col[arm], markersize=8)
        med = km_median(g["time_h"].to_numpy(float), g["survival"].to_numpy(float))
        medians.append(f"{label}: {med / 24:.1f} d" if math.isfinite(med)
                       else f"{label}: not reached")
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("days since the start of the last dose")
    ax.set_ylabel("fraction of responders relapse-free")
    ax.legend(fontsize=8)
    return figure_html(
        fig, f"Kaplan-Meier curve of relapse among responders at the end of treatment "
        f"({where}); band: 95 % CI; ticks: censored; median time to relapse "
        + "; ".join(medians) + ".")


def _course_figure(result: RunResult) -> str:
    course = (result.extra_tables or {}).get("course_summary")
    if course is None or not len(course):
        return ""
    s = pd.DataFrame(course)
    s = s[s["time_h"].notna() & ~s["arm"].astype(str).str.contains(" vs ", regex=False)]
    madrs = s[(s["readout"] == "madrs")]
    frac = s[s["statistic"] == "fraction"]
    if madrs.empty and frac.empty:
        return ""
    fig, axes = _new(2)
    for arm, g in madrs.groupby("arm", sort=False):
        w = g.pivot_table(index="time_h", columns="statistic", values="value").sort_index()
        t = w.index.to_numpy(float)
        axes[0].plot(t, w["mean"], marker="o", markersize=3, label=str(arm))
        if "sd" in w:
            axes[0].fill_between(t, w["mean"] - w["sd"], w["mean"] + w["sd"], alpha=0.15,
                                 linewidth=0)
        time_axis(axes[0], float(t.min()), float(t.max()), repeated=True)
    axes[0].set_title("course: MADRS (mean +/- SD)", fontsize=10)
    axes[0].set_ylabel("points", fontsize=8)
    for r, g in frac.groupby("readout", sort=False):
        g = g.sort_values("time_h")
        t = g["time_h"].to_numpy(float)
        axes[1].plot(t, g["value"], marker="o", markersize=3, label=str(r))
        time_axis(axes[1], float(t.min()), float(t.max()), repeated=True)
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("course: fraction of subjects", fontsize=10)
    axes[1].legend(fontsize=7)
    return figure_html(
        fig, "The six-infusion course of the default study set (ratings before each "
        "infusion, 24 h after the last and through the follow-up): MADRS and the "
        "fractions responding, remitting and relapse-free (among responders).")


def _endpoint_table(summary: pd.DataFrame) -> str:
    if summary is None or not len(summary) or "time_h" not in summary:
        return ""
    s = summary[summary["time_h"].isna()]
    if not len(s):
        return ""
    shown = s[["arm", "period", "readout", "statistic", "value", "unit", "n"]].copy()
    shown["value"] = [format_hours(v) if u == "h" and v == v else ("not reached" if u == "h" else v)
                      for v, u in zip(shown["value"], shown["unit"], strict=True)]
    return html_table(shown)

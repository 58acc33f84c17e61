"""``report.html``: one self-contained page a person can read after a run.

The page holds the scenario (species, design, arms), the run's facts from the manifest,
figures (matplotlib, embedded as base64 PNG; drawn with the Agg canvas directly so the
caller's pyplot backend is never touched), the summary table and any extra tables of the
result (``table1``, ``scorecard``, ...).
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ketasim.io.figures import (
    arm_colors,
    esc,
    figure_html,
    html_table,
    new_figure,
    number,
    time_axis,
)
from ketasim.readouts import FIXED
from ketasim.result import RunResult
from ketasim.units import format_hours

__all__ = ["render_report"]

CONTINUOUS_STATS = ["mean", "sd", "median", "p05", "p95"]
BETWEEN_STATS = ["difference", "cohens_d", "p_value"]
_EXTRA_TITLES = {
    "table1": "Table 1: published values beside simulated ones",
    "scorecard": "Scorecard",
}
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.1em; } h1 + p { margin-top: 0; color: #555; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
table.tbl { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em 0; }
table.tbl th, table.tbl td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
table.tbl th { background: #f3f3f3; }
table.tbl td:first-child, table.tbl th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #444; }
.muted { color: #666; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


# ------------------------------------------------------------------- scenario details


def _scenario_dict(result: RunResult) -> dict[str, Any]:
    sc = result.scenario
    if sc is not None and hasattr(sc, "as_dict"):
        return dict(sc.as_dict())
    if sc is not None and hasattr(sc, "model_dump"):
        return dict(sc.model_dump(mode="json"))
    if isinstance(sc, dict):
        return sc
    m = result.manifest.get("scenario")
    return m if isinstance(m, dict) else {}


def _dose_text(d: dict[str, Any]) -> str:
    parts = [str(d.get("drug", "?")), str(d.get("amount", "")), str(d.get("route", ""))]
    if d.get("duration"):
        parts.append(f"over {d['duration']}")
    if d.get("at"):
        parts.append("at " + ", ".join(str(t) for t in d["at"]))
    elif d.get("every"):
        parts.append(f"every {d['every']} x {d.get('count', '?')}")
    return " ".join(p for p in parts if p)


def _scenario_section(sc: dict[str, Any]) -> str:
    pop = sc.get("population") or {}
    design = sc.get("design") or {}
    facts: list[tuple[str, Any]] = [
        ("species", sc.get("species")),
        ("condition", pop.get("condition")),
        ("subjects", pop.get("size")),
        ("variability", pop.get("variability")),
        ("design", design.get("type")),
    ]
    for key in ("washout", "period_length", "follow_up"):
        if design.get(key):
            facts.append((key.replace("_", " "), design[key]))
    if pop.get("knockouts"):
        facts.append(("knockouts", ", ".join(pop["knockouts"])))
    outputs = sc.get("outputs") or {}
    if outputs.get("times"):
        facts.append(("output times", ", ".join(str(t) for t in outputs["times"])))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(number(v))}</td></tr>"
                   for k, v in facts if v is not None and v != "")
    out = [f'<table class="tbl">{rows}</table>']
    arms = sc.get("arms") or []
    if arms:
        arm_rows = "".join(
            f"<tr><td>{esc(a.get('name', ''))}</td><td>"
            + "<br>".join(esc(_dose_text(d)) for d in a.get("doses", []))
            + "</td></tr>"
            for a in arms)
        out.append('<table class="tbl"><tr><th>arm</th><th>doses</th></tr>'
                   f"{arm_rows}</table>")
    return "\n".join(out)


def _manifest_section(manifest: dict[str, Any]) -> str:
    known = [("ketasim_version", "ketasim version"), ("seed", "seed"), ("engine", "engine"),
             ("wall_time_s", "wall time (s)"), ("subjects", "subjects simulated"),
             ("solver_status", "solver status"), ("subjects_parquet", "subjects.parquet")]
    rows: list[tuple[str, str]] = []
    for key, label in known:
        if key in manifest:
            rows.append((label, _fact(manifest[key])))
    for key, value in manifest.items():
        if key in {k for k, _ in known} or key in ("scenario", "files"):
            continue
        rows.append((key.replace("_", " "), _fact(value)))
    if not rows:
        return '<p class="muted">No manifest.</p>'
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="tbl">{body}</table>'


def _fact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {number(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(number(v) for v in value)
    return number(value)


# ----------------------------------------------------------------------- the series


def _is_between(arm: Any) -> bool:
    return " vs " in str(arm)


def _unit(result: RunResult, readout: str) -> str:
    if readout in result.data:
        u = result.data[readout].attrs.get("unit")
        if u:
            return str(u)
    s = result.summary
    if "unit" in s.columns:
        units = s.loc[s["readout"] == readout, "unit"].dropna()
        if len(units):
            return str(units.iloc[0])
    return FIXED[readout].unit if readout in FIXED else ""


def _is_fraction(result: RunResult, readout: str) -> bool:
    if readout in FIXED:
        return FIXED[readout].kind == "fraction"
    s = result.summary
    return bool(((s["readout"] == readout) & (s["statistic"] == "fraction")).any())


def _series(result: RunResult, readout: str) -> dict[tuple[str, int], pd.DataFrame]:
    """Per (arm, period): a frame indexed by time_h with the statistics as columns."""
    s = result.summary
    rows = s[(s["readout"] == readout) & ~s["arm"].map(_is_between)]
    out: dict[tuple[str, int], pd.DataFrame] = {}
    if len(rows):
        for (arm, period), g in rows.groupby(["arm", "period"], sort=False):
            wide = g.pivot_table(index="time_h", columns="statistic", values="value",
                                 aggfunc="first")
            out[(str(arm), int(period))] = wide.sort_index()  # type: ignore[call-overload]
        return out
    return _series_from_data(result, readout)


def _series_from_data(result: RunResult, readout: str) -> dict[tuple[str, int], pd.DataFrame]:
    data = result.data
    if readout not in data:
        return {}
    vals = np.asarray(data[readout].values, dtype=float)
    arms = np.asarray(data["arm"].values) if "arm" in data.coords or "arm" in data else None
    ok = (np.asarray(data["status"].values) == "ok") if "status" in data else None
    times = np.asarray(data["time"].values, dtype=float)
    fraction = _is_fraction(result, readout)
    out: dict[tuple[str, int], pd.DataFrame] = {}
    for p_idx, period in enumerate(np.asarray(data["period"].values)):
        names = ["all"] if arms is None else list(dict.fromkeys(arms[:, p_idx].tolist()))
        for arm in names:
            sel = np.ones(vals.shape[0], bool) if arms is None else arms[:, p_idx] == arm
            if ok is not None:
                sel &= ok
            v = vals[sel, p_idx, :]
            if v.shape[0] == 0:
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if fraction:
                    cols = {"fraction": np.nanmean(v, axis=0)}
                else:
                    cols = {"mean": np.nanmean(v, axis=0), "sd": np.nanstd(v, axis=0, ddof=1),
                            "p05": np.nanpercentile(v, 5, axis=0),
                            "p95": np.nanpercentile(v, 95, axis=0)}
            out[(str(arm), int(period))] = pd.DataFrame(cols, index=pd.Index(times, name="time_h"))
    return out


# --------------------------------------------------------------------------- figures


def _repeated(result: RunResult) -> bool:
    """True when some arm gives a drug more than once (a regimen, not a single dose)."""
    for arm in _scenario_dict(result).get("arms") or []:
        for d in arm.get("doses") or []:
            if len(d.get("at") or []) > 1 or int(d.get("count") or 1) > 1:
                return True
    return False


def _label(arm: str, period: int, crossover: bool) -> str:
    return f"{arm} (period {period})" if crossover else arm


def _crossover(result: RunResult) -> bool:
    return "period" in result.data.dims and result.data.sizes["period"] > 1


def _styles(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    keys = list(keys)
    colors = arm_colors(a for a, _ in keys)
    return {(a, p): {"color": colors[a], "linestyle": "-" if p == 1 else ("--" if p == 2 else ":")}
            for a, p in keys}


def _pk_figure(result: RunResult, readouts: list[str]) -> str:
    """Concentration-time: plasma.* in one panel, brain.* in another."""
    from matplotlib import colormaps

    # concentration curves only (PK summaries such as plasma.ketamine.cmax are tables)
    groups = [(p, [r for r in readouts if r.startswith(p + ".") and r.count(".") == 1])
              for p in ("plasma", "brain")]
    groups = [(p, rs) for p, rs in groups if rs]
    if not groups:
        return ""
    fig, axes = new_figure(len(groups), ncols=2, w=6.0, h=4.0)
    cross = _crossover(result)
    repeated = _repeated(result)
    cmap = colormaps["tab10"]
    axis_note = ""
    drawn = False
    for ax, (prefix, rs) in zip(axes, groups, strict=True):
        tmin, tmax = math.inf, -math.inf
        series = {r: _series(result, r) for r in rs}
        combos = list(dict.fromkeys(key for ss in series.values() for key in ss))
        by_arm = _styles(combos)
        peak = max((float(np.nanmax(np.abs(df["mean"].to_numpy(float)), initial=0.0))
                    for ss in series.values() for df in ss.values() if "mean" in df),
                   default=0.0)
        for i, r in enumerate(rs):
            for key, df in series[r].items():
                if "mean" not in df or peak == 0:
                    continue
                if not np.any(np.nan_to_num(np.abs(df["mean"].to_numpy(float))) > 1e-6 * peak):
                    continue  # a vehicle arm (or mere carry-over traces) has nothing to show
                t = df.index.to_numpy(float)
                tmin, tmax = min(tmin, t.min()), max(tmax, t.max())
                if len(rs) == 1:  # one analyte: a colour per arm, as in the other figures
                    style = by_arm[key]
                    label = _label(*key, cross)
                else:  # a colour per analyte, a line style per arm and period
                    style = {"color": cmap(i % 10),
                             "linestyle": ["-", "--", ":", "-."][combos.index(key) % 4]}
                    label = f"{r.split('.', 1)[1]}: {_label(*key, cross)}"
                ax.plot(t, df["mean"], marker="o", markersize=3, label=label, **style)
                if "p05" in df and "p95" in df:
                    ax.fill_between(t, df["p05"], df["p95"], color=style["color"], alpha=0.15,
                                    linewidth=0)
                drawn = True
        unit = _unit(result, rs[0])
        where = "plasma (total)" if prefix == "plasma" else "brain (unbound)"
        ax.set_title(f"{where}: {rs[0].split('.', 1)[1]}" if len(rs) == 1 else where)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        if math.isfinite(tmax):
            axis_note = time_axis(ax, tmin, tmax, repeated)
            ax.legend(fontsize=7)
    if not drawn:
        return ""
    caption = ("Concentration-time profiles: mean per arm (lines) with the 5th-95th "
               f"percentile band; plasma in ng/mL, brain in uM; {axis_note}.")
    return figure_html(fig, caption)


def _panel_figure(result: RunResult, readouts: list[str], caption: str) -> str:
    if not readouts:
        return ""
    fig, axes = new_figure(len(readouts))
    cross = _crossover(result)
    repeated = _repeated(result)
    handles: dict[str, Any] = {}
    axis_note = ""
    for ax, r in zip(axes, readouts, strict=True):
        series = _series(result, r)
        styles = _styles(series.keys())
        fraction = _is_fraction(result, r)
        tmin, tmax = math.inf, -math.inf
        for key, df in series.items():
            col = "fraction" if fraction and "fraction" in df else "mean"
            if col not in df:
                continue
            t = df.index.to_numpy(float)
            tmin, tmax = min(tmin, t.min()), max(tmax, t.max())
            st = styles[key]
            (line,) = ax.plot(t, df[col], marker="o", markersize=3, **st)
            if not fraction and "sd" in df:
                ax.fill_between(t, df["mean"] - df["sd"], df["mean"] + df["sd"],
                                color=st["color"], alpha=0.15, linewidth=0)
            handles.setdefault(_label(*key, cross), line)
        ax.set_title(r, fontsize=10)
        unit = _unit(result, r)
        ax.set_ylabel(unit if not fraction else "fraction of subjects", fontsize=8)
        if fraction:
            ax.set_ylim(-0.02, 1.02)
        if math.isfinite(tmax):
            axis_note = time_axis(ax, tmin, tmax, repeated)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncols=min(4, len(handles)), fontsize=8)
    return figure_html(fig, f"{caption}; {axis_note}." if axis_note else caption + ".")


# -------------------------------------------------------------------------- tables


def _summary_tables(result: RunResult) -> str:
    s = result.summary
    if s is None or not len(s):
        return '<p class="muted">The summary is empty.</p>'
    between = s["arm"].map(_is_between)
    parts = []
    per_arm = s[~between]
    if len(per_arm):
        wide = per_arm.pivot_table(index=["readout", "unit", "arm", "period", "time_h"],
                                   columns="statistic", values="value", aggfunc="first",
                                   sort=False)
        n = per_arm.groupby(["readout", "unit", "arm", "period", "time_h"], sort=False)["n"].max()
        wide = wide.join(n)
        cols = [c for c in ["n", *CONTINUOUS_STATS, "fraction"] if c in wide.columns]
        wide = wide[cols].reset_index()
        wide["time"] = [format_hours(t) for t in wide.pop("time_h")]
        wide = wide[["readout", "unit", "arm", "period", "time", *cols]]
        parts.append("<h3>Per arm</h3>" + html_table(wide))
    comp = s[between]
    if len(comp):
        wide = comp.pivot_table(index=["readout", "unit", "arm", "time_h"], columns="statistic",
                                values="value", aggfunc="first", sort=False)
        n = comp.groupby(["readout", "unit", "arm", "time_h"], sort=False)["n"].max()
        wide = wide.join(n)
        cols = [c for c in ["n", *BETWEEN_STATS] if c in wide.columns]
        wide = wide[cols].reset_index().rename(columns={"arm": "comparison"})
        wide["time"] = [format_hours(t) for t in wide.pop("time_h")]
        wide = wide[["readout", "unit", "comparison", "time", *cols]]
        parts.append("<h3>Between arms</h3><p class=\"muted\">difference = active - control; "
                     "Cohen's d (crossover: within-subject); p from a Welch t-test (parallel) "
                     "or the period-adjusted crossover analysis; Fisher's exact test "
                     "(parallel) or McNemar's (crossover) for response and remission; "
                     "ci_low/ci_high: 95 % CI of the difference; nnt = 1 / difference."
                     "</p>" + html_table(wide))
    return "\n".join(parts)


_HIDDEN_EXTRA = {"course_summary", "kaplan_meier"}  # drawn by report_trial; in the CSVs


def _extra_tables(result: RunResult) -> str:
    parts = []
    for name, table in result.extra_tables.items():
        if name in _HIDDEN_EXTRA:
            continue
        title = _EXTRA_TITLES.get(name, str(name).replace("_", " "))
        parts.append(f"<h2>{esc(title)}</h2>" + html_table(pd.DataFrame(table)))
    return "\n".join(parts)


def _sections(result: RunResult) -> str:
    """Design-specific sections: trial figures (Kaplan-Meier, response bars, Table 1) and
    laboratory figures (group bars with SEM and significance), each in its own module."""
    from ketasim.io import report_lab, report_trial

    return "\n".join(part for part in (report_trial.render(result), report_lab.render(result))
                     if part)


# ---------------------------------------------------------------------------- page


def render_report(result: RunResult) -> str:
    """The HTML page for ``result``: self-contained (figures inline), no external assets."""
    sc = _scenario_dict(result)
    name = sc.get("name") or "ketasim run"
    readouts = [r for r in result.readouts]
    for r in result.summary["readout"].unique() if len(result.summary) else []:
        if r not in readouts:
            readouts.append(str(r))
    pk = [r for r in readouts if r.split(".", 1)[0] in ("plasma", "brain")]
    fractions = [r for r in readouts if r not in pk and _is_fraction(result, r)]
    others = [r for r in readouts if r not in pk and r not in fractions]

    if result.data.sizes.get("time", 0) < 2:  # one output time: a time course is one dot
        figures_html = ('<p class="muted">One output time: no time courses to draw; the '
                        "values are in the tables below.</p>")
    else:
        figures = [
            _pk_figure(result, pk),
            _panel_figure(result, others, "Mean per arm (lines) with a band of +/- 1 SD; "
                          "each panel in its readout's unit"),
            _panel_figure(result, fractions, "Fraction of subjects meeting each definition "
                          "(response, remission, relapse-free)"),
        ]
        figures_html = ("\n".join(f for f in figures if f)
                        or '<p class="muted">Nothing to plot.</p>')
    version = result.manifest.get("ketasim_version", "")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scenario_json = html.escape(json.dumps(sc, indent=2, default=str))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ketasim: {esc(name)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(name)}</h1>
<p>ketasim {esc(version)} simulation report, {when}</p>
<h2>Scenario</h2>
{_scenario_section(sc)}
<h2>Run</h2>
{_manifest_section(result.manifest)}
<h2>Figures</h2>
{figures_html}
{_sections(result)}
{_extra_tables(result)}
<h2>Summary</h2>
<p class="muted">Statistics over subjects whose integration succeeded (n); times from the
start of each period's first active dose.</p>
{_summary_tables(result)}
<details><summary>Scenario as run (JSON)</summary><pre>{scenario_json}</pre></details>
</body>
</html>
"""

"""The built-in default run: a small *study set* that fills every row of the seed's Table 1.

A scenario holds one design, and the seed's Table 1 mixes two kinds of study: single
infusions against saline (dosage, onset, peak, 24-h response, duration) and a repeated
course (response after six infusions, time to relapse). ``ketasim run`` with no file runs
both built-in scenarios, ``scenarios/default.toml`` (the seed's crossover) and
``scenarios/default_course.toml`` (six infusions Mon-Wed-Fri, Murrough 2013 Biol
Psychiatry), and returns the crossover's :class:`~ketasim.result.RunResult` with extra
tables:

- ``table1``: ``Study parameter | Finding (published) | Simulated``, the seed's rows;
- ``course_summary``: the course's summary (contract columns);
- ``kaplan_meier``: the course's Kaplan-Meier curve of relapse among responders;

and the course's manifest under ``manifest["companion_studies"]``.

Each simulated value follows an explicit rule (``d`` = within-subject Cohen's d and ``p``
the period-adjusted p-value of ketamine vs saline in MADRS change, summary rows
``madrs.change`` / ``ketamine vs saline``; times from the start of the infusion):

- **Dosage**: the ketamine arm's dose and infusion time as run, with the mean venous plasma
  ketamine at the end of the infusion.
- **Onset of action**: the first rating time from which, at every rating up to 24 h, the
  ketamine - saline difference is at most -2 MADRS points with p < 0.05.
- **Peak effect**: the rating time of the most negative mean difference.
- **Response rate (single infusion)**: the fraction of subjects meeting response 24 h after
  their ketamine infusion, both periods pooled (each subject once), with a Wilson 95 % CI;
  saline beside it.
- **Response rate (repeated infusions)**: the course's response fraction at the first rating
  at least 24 h after the start of the sixth infusion (day 12), Wilson 95 % CI.
- **Duration of effect (single infusion)**: the last rating time up to which, from the
  onset on, every rating has d <= -0.2 and p < 0.05.
- **Median time to relapse**: the Kaplan-Meier median, among responders at the end of the
  course (as ``relapse_free`` counts them), of the time from the start of the last infusion
  to the first rating at which ``relapse_free`` is 0 (relapse: no longer meeting response at
  two consecutive ratings), censored at the last rating.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ketasim.experiments.endpoints import last_dose_h, relapse_events
from ketasim.result import RunResult
from ketasim.stats import kaplan_meier, wilson
from ketasim.units import format_hours
from ketasim.validation.schema import published_table

COLUMNS = ["Study parameter", "Finding (published)", "Simulated"]
TABLE = "seed Table 1"  # the published values are the ``published`` rows of the seed cases
ONSET_POINTS = -2.0
DURATION_D = -0.2
ALPHA = 0.05


def course_scenario() -> Any:
    """The built-in six-infusion course (src/ketasim/scenarios/default_course.toml)."""
    from ketasim.scenario import load_scenario

    text = resources.files("ketasim.scenarios").joinpath("default_course.toml").read_text(
        "utf-8")
    return load_scenario(tomllib.loads(text))


class _Totals:
    """Adds the totals of several runs for one progress callback."""

    def __init__(self, progress: Any, total: int) -> None:
        self.progress, self.total = progress, total

    def __call__(self, advance: int = 0, total: int | None = None) -> None:
        if callable(self.progress):
            self.progress(advance, total=self.total if total is not None else None)


def run_default(progress: Any = None, single: Any = None, course: Any = None,
                simulate: Any = None) -> RunResult:
    """Run the default study set (see the module docstring); ``single``/``course`` replace
    the built-in scenarios (tests use small ones), ``simulate`` replaces ``ketasim.run``."""
    from ketasim.scenario import default_scenario

    if simulate is None:
        from ketasim.experiments.run import run

        simulate = run

    single = default_scenario() if single is None else single
    course = course_scenario() if course is None else course
    total = single.population.size + course.population.size * len(course.arms)
    bar = _Totals(progress, total)
    first = simulate(single, progress=bar)
    second = simulate(course, progress=bar)
    first.extra_tables["table1"] = table1(first, second)
    first.notes["table1"] = rules()
    first.extra_tables["course_summary"] = second.summary
    km = kaplan_meier_of(second)
    if len(km):
        first.extra_tables["kaplan_meier"] = km
    manifest = dict(second.manifest)
    first.manifest["companion_studies"] = [manifest]
    first.manifest["wall_time_s"] = round(float(first.manifest.get("wall_time_s", 0.0))
                                          + float(manifest.get("wall_time_s", 0.0)), 3)
    return first


def rules() -> str:
    """The rules behind each simulated value of Table 1, as text (from this module's
    docstring): carried with the result (``RunResult.notes["table1"]``) for the report."""
    doc = (__doc__ or "").split("Each simulated value follows", 1)
    return "Each simulated value follows" + (doc[1] if len(doc) > 1 else "").rstrip()


def kaplan_meier_of(result: RunResult) -> pd.DataFrame:
    from ketasim.experiments.endpoints import kaplan_meier_table

    return kaplan_meier_table(result.scenario, result.data)


# ------------------------------------------------------------------------------ rules


def _rows(summary: pd.DataFrame, arm: str, readout: str, stat: str,
          period: int = 1) -> pd.Series:
    s = summary[(summary["arm"] == arm) & (summary["readout"] == readout)
                & (summary["statistic"] == stat) & (summary["period"] == period)
                & summary["time_h"].notna()]
    return s.set_index("time_h")["value"].sort_index()


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _comparison(result: RunResult) -> tuple[str, str, str] | None:
    """(comparison label, readout, active arm) of the single-infusion study."""
    from ketasim.experiments.endpoints import control_arm

    sc = result.scenario
    ctrl = control_arm(sc)
    if ctrl is None:
        return None
    active = next(a.name for a in sc.arms if a.name != ctrl)
    readout = "madrs.change" if "madrs.change" in result.data else "madrs"
    return f"{active} vs {ctrl}", readout, active


def onset_peak_duration(result: RunResult) -> dict[str, float]:
    """Onset, peak and duration (h) by the module's rules; NaN where a rule finds none."""
    out = {"onset_h": np.nan, "peak_h": np.nan, "peak_difference": np.nan,
           "duration_h": np.nan, "after_duration_h": np.nan}
    comp = _comparison(result)
    if comp is None:
        return out
    label, readout, _ = comp
    s = result.summary
    diff = _rows(s, label, readout, "difference")
    p = _rows(s, label, readout, "p_value").reindex(diff.index)
    d = _rows(s, label, readout, "cohens_d").reindex(diff.index)
    times = diff.index.to_numpy(float)
    if not times.size:
        return out
    good = ((diff <= ONSET_POINTS) & (p < ALPHA)).to_numpy()
    upto = times <= 24.0 + 1e-9
    for k in range(times.size):
        if upto[k] and good[k] and good[k:][upto[k:]].all():
            out["onset_h"] = float(times[k])
            break
    k_peak = int(np.nanargmin(diff.to_numpy(float)))
    out["peak_h"], out["peak_difference"] = float(times[k_peak]), float(diff.iloc[k_peak])
    if np.isfinite(out["onset_h"]):
        sep = ((d <= DURATION_D) & (p < ALPHA)).to_numpy()
        k0 = int(np.searchsorted(times, out["onset_h"]))
        k = k0
        while k + 1 < times.size and sep[k + 1]:
            k += 1
        if sep[k0]:
            out["duration_h"] = float(times[k])
            out["after_duration_h"] = float(times[k + 1]) if k + 1 < times.size else np.nan
    return out


def _single_response(result: RunResult, active: str, at_h: float) -> tuple[float, int, float]:
    """Pooled response fraction on ``active`` at ``at_h`` (each subject once), its n, and
    the same on the other arm."""
    data = result.data
    if "response" not in data:
        return np.nan, 0, np.nan
    k = int(np.argmin(np.abs(np.asarray(data["time"].values, float) - at_h)))
    ok = data["status"].values == "ok"
    v = data["response"].values[ok][:, :, k]
    arm = data["arm"].values[ok]
    on = v[arm == active]
    off = v[arm != active]
    on, off = on[np.isfinite(on)], off[np.isfinite(off)]
    return (float(on.mean()) if on.size else np.nan, int(on.size),
            float(off.mean()) if off.size else np.nan)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if np.isfinite(x) else "-"


def table1(single: RunResult, course: RunResult | None) -> pd.DataFrame:
    """The seed's Table 1 with a simulated value beside each published finding."""
    sim: dict[str, str] = {}
    sc = single.scenario
    comp = _comparison(single)
    active = comp[2] if comp else sc.arms[0].name
    ket = sc.arm(active)
    dose = ket.doses[0]
    text = f"{dose.amount} over {dose.duration}" if dose.duration else f"{dose.amount}"
    pk = _rows(single.summary, active, "plasma.ketamine", "mean")
    if len(pk) and dose.duration:
        end = dose.times_h()[0] + dose.duration_h
        t = float(pk.index[int(np.argmin(np.abs(pk.index.to_numpy(float) - end)))])
        text += f" (plasma ketamine {pk.loc[t]:.0f} ng/mL at {format_hours(t)})"
    sim["Dosage"] = text
    opd = onset_peak_duration(single)
    if comp is not None:
        label, readout, _ = comp
        diff = _rows(single.summary, label, readout, "difference")
        p = _rows(single.summary, label, readout, "p_value")
        if np.isfinite(opd["onset_h"]):
            t = opd["onset_h"]
            sim["Onset of Action"] = (f"{format_hours(t)} from the start of the infusion "
                                      f"({diff.loc[t]:+.1f} points vs saline, "
                                      f"{_fmt_p(float(p.loc[t]))})")
        else:
            sim["Onset of Action"] = "no rating up to 24 h separates by the rule"
        if np.isfinite(opd["peak_h"]):
            sim["Peak Effect"] = (f"{format_hours(opd['peak_h'])} ({opd['peak_difference']:+.1f} "
                                  "MADRS points vs saline)")
        if np.isfinite(opd["duration_h"]):
            after = opd["after_duration_h"]
            tail = (f"; gone by {format_hours(after)}" if np.isfinite(after)
                    else "; present at the last rating")
            sim["Duration of Effect (Single Infusion)"] = (
                f"through {format_hours(opd['duration_h'])} (d <= {DURATION_D}, p < {ALPHA}{tail})")
        else:
            sim["Duration of Effect (Single Infusion)"] = "no separation by the rule"
    frac, n, other = _single_response(single, active, 24.0)
    if np.isfinite(frac):
        lo, hi = wilson(frac * n, n)
        sim["Response Rate (Single Infusion)"] = (
            f"{_pct(frac)} at 24 h (95% CI {_pct(lo)}-{_pct(hi)}, n={n}; saline {_pct(other)})")
    if course is not None:
        sim.update(_course_rows(course))
    rows = [(p.parameter, p.finding, sim.get(p.parameter, "not simulated"))
            for p in published_table(TABLE)]
    return pd.DataFrame(rows, columns=COLUMNS)


def _course_rows(course: RunResult) -> dict[str, str]:
    out: dict[str, str] = {}
    sc = course.scenario
    arm = sc.arms[0].name
    data = course.data
    if "time" not in data.coords or "status" not in data:
        return out
    last = last_dose_h(sc, arm)
    times = np.asarray(data["time"].values, float)
    if "response" in data:
        after = np.flatnonzero(times >= last + 24.0 - 1e-9)
        if after.size:
            k = int(after[0])
            ok = data["status"].values == "ok"
            v = data["response"].values[ok][:, 0, k]
            v = v[np.isfinite(v)]
            if v.size:
                lo, hi = wilson(float(v.sum()), v.size)
                count = sum(len(d.times_h()) for d in sc.arms[0].doses)
                out["Response Rate (Repeated Infusions)"] = (
                    f"{_pct(float(v.mean()))} at {format_hours(times[k])}, "
                    f"{format_hours(times[k] - last)} "
                    f"after the last of {count} (95% CI {_pct(lo)}-{_pct(hi)}, n={v.size})")
    dur, seen = relapse_events(sc, data, arm, 0)
    if dur.size:
        med = kaplan_meier(dur, seen).median()
        days = f"{med / 24:.0f} days" if np.isfinite(med) else (
            f"not reached by {np.nanmax(dur) / 24:.0f} days")
        out["Median Time to Relapse (After Repeated Infusions)"] = (
            f"{days} after the last infusion (Kaplan-Meier; {int(seen.sum())} of "
            f"{dur.size} responders relapsed)")
    elif "response" in data:
        out["Median Time to Relapse (After Repeated Infusions)"] = "no responders"
    return out

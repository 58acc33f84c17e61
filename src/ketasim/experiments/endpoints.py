"""Summary statistics and trial endpoints: the contract's summary.csv rows.

Per (arm, period, readout, time): ``mean, sd, median, p05, p95`` for continuous readouts,
``fraction`` for proportions (response, remission, relapse_free; relapse_free among
responders only). Subjects whose integration failed are left out and the counts say so.

Between arms, where the design has a control arm (``arm = "<a> vs <control>"``, period 1),
at every output time:

- ``difference`` (active - control; crossover: mean within-subject difference),
  ``cohens_d`` (parallel: difference / pooled SD; crossover: within-subject d, mean
  difference / SD of the differences) and ``p_value``;
- ``ci_low``, ``ci_high``: 95 % confidence interval of the difference;
- the test behind ``p_value`` depends on the design and the readout:

  ============  ===================================  =====================================
  design        continuous readout                   fraction (response, remission)
  ============  ===================================  =====================================
  parallel      Welch t-test (CI: Welch)             Fisher exact test (CI: Newcombe)
  crossover     period-adjusted two-period crossover  exact McNemar test on discordant
                analysis (Hills-Armitage: t-test of   pairs (CI: Wald for paired
                the period differences between        proportions)
                sequences; the same estimate as OLS
                with subject fixed effects + period
                + treatment). CI of the adjusted
                estimate ``difference_adjusted``;
                ``period_effect`` = period 2 -
                period 1.
  ============  ===================================  =====================================

  A crossover in which one sequence has fewer than two subjects cannot separate the
  period effect: there ``p_value`` falls back to the paired t-test.
- parallel designs, rating scales (madrs, hamd17 and their ``.change``) when both the score
  and its change are read out: ``difference_ancova`` and ``p_ancova`` (ANCOVA of the
  readout on arm with the period's baseline score as covariate);
- fractions: ``nnt`` = 1 / difference (number needed to treat; negative = number needed to
  harm; NaN when the difference is 0).

Time-to-event and safety endpoints summarise a whole period; their rows have ``time_h``
empty (NaN) and ``unit`` "h" for times:

- ``response`` (and ``remission``): ``median_time_to_response`` (``..._remission``): the
  Kaplan-Meier median of the first rating meeting the criterion, from the period's time
  zero, censored at the last rating; ``fraction_ever``: met it at any rating;
- ``relapse_free`` (when read out): ``responders`` (count at the end of treatment, as the
  readout counts them), ``median_time_to_relapse`` (h from the start of the arm's last
  dose; the Kaplan-Meier median of the first rating at which ``relapse_free`` is 0,
  censored at the last rating; NaN when not reached); the curves are in
  :func:`kaplan_meier_table`;
- safety readouts (``cadss``, ``sbp.change``, ``heart_rate.change``): ``peak`` (largest arm
  mean over the output times), ``time_of_peak`` (h, the rating time of that peak) and
  ``subject_peak_mean`` (mean over subjects of each subject's largest value); an arm whose
  values all stay below 1e-6 (saline) has peak 0 and no time of peak.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ketasim.catalog import catalog
from ketasim.readouts import FIXED
from ketasim.result import SUMMARY_COLUMNS
from ketasim.stats import compare_crossover, compare_parallel, kaplan_meier

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

SAFETY = ("cadss", "sbp.change", "heart_rate.change")
NUMERICAL_ZERO = 1e-6  # points, mmHg, beats/min: below this a safety readout is 0
SCALES = ("madrs", "hamd17")


def control_arm(sc: Scenario) -> str | None:
    """The arm others are compared with: all-vehicle doses first, else an active placebo."""
    cat = catalog()
    for arm in sc.arms:
        if all(cat.drug(d.drug).role == "vehicle" for d in arm.doses):
            return str(arm.name)
    for arm in sc.arms:
        if any(cat.resolve(d.drug) == "midazolam" for d in arm.doses):
            return str(arm.name)
    return None


def is_fraction(readout: str) -> bool:
    """True for readouts summarised as a fraction of subjects (response, remission, ...)."""
    return readout in FIXED and FIXED[readout].kind == "fraction"


def _continuous_rows(vals: np.ndarray) -> list[tuple[str, float]]:
    if vals.size == 0:
        return [(s, np.nan) for s in ("mean", "sd", "median", "p05", "p95")]
    return [("mean", float(np.mean(vals))),
            ("sd", float(np.std(vals, ddof=1)) if vals.size > 1 else np.nan),
            ("median", float(np.median(vals))),
            ("p05", float(np.percentile(vals, 5))), ("p95", float(np.percentile(vals, 95)))]


def summarise(sc: Scenario, data: xr.Dataset) -> pd.DataFrame:
    """The summary table for every requested readout (contract columns)."""
    ok = data["status"].values == "ok"
    rows: list[tuple[Any, ...]] = []
    readouts = [r for r in sc.outputs.readouts if r in data]
    arms = [a.name for a in sc.arms]
    times = data["time"].values
    for r in readouts:
        da = data[r].values[ok]
        unit = data[r].attrs.get("unit", "")
        arm_of = data["arm"].values[ok]
        for p_idx, period in enumerate(data["period"].values):
            for arm in arms:
                sel = arm_of[:, p_idx] == arm
                if not sel.any():
                    continue
                for k, t in enumerate(times):
                    vals = da[sel, p_idx, k]
                    vals = vals[np.isfinite(vals)]
                    if is_fraction(r):
                        stat = [("fraction", float(vals.mean()) if vals.size else np.nan)]
                    else:
                        stat = _continuous_rows(vals)
                    rows += [(arm, int(period), r, float(t), s, v, unit, int(vals.size))
                             for s, v in stat]
                rows += _period_endpoints(sc, data, r, ok, arm, p_idx, unit)
        rows += _between_arms(sc, data, r, ok, unit)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# ------------------------------------------------------------------- comparisons


def crossover_arrays(data: xr.Dataset, readout: str, k: int, arm: str, ctrl: str,
                     ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per subject (ok ones): the value on ``arm``, on ``ctrl`` at time index ``k``, and
    whether ``arm`` came first."""
    if ok is None:
        ok = data["status"].values == "ok"
    v = data[readout].values[ok][:, :, k]
    arm_of = data["arm"].values[ok]
    y_a = np.where(arm_of == arm, v, np.nan)
    y_c = np.where(arm_of == ctrl, v, np.nan)
    with np.errstate(all="ignore"):
        ya = np.where(np.isfinite(y_a).any(axis=1), np.nansum(y_a, axis=1), np.nan)
        yc = np.where(np.isfinite(y_c).any(axis=1), np.nansum(y_c, axis=1), np.nan)
    return ya, yc, arm_of[:, 0] == arm


def baseline_of(data: xr.Dataset, readout: str) -> np.ndarray | None:
    """The period's baseline score (subject, period) for a rating readout, when both the
    score and its change are in ``data`` (baseline = score - change, exactly)."""
    scale = readout.removesuffix(".change")
    if scale not in SCALES or scale not in data or f"{scale}.change" not in data:
        return None
    base = (data[scale] - data[f"{scale}.change"]).values  # (subject, period, time)
    with np.errstate(all="ignore"):
        return np.nanmedian(base, axis=2)  # the same at every time, up to clipping at 0


def _between_arms(sc: Scenario, data: xr.Dataset, r: str, ok: np.ndarray,
                  unit: str) -> list[tuple[Any, ...]]:
    ctrl = control_arm(sc)
    if ctrl is None or r == "relapse_free":
        return []
    rows: list[tuple[Any, ...]] = []
    da = data[r].values[ok]
    arm_of = data["arm"].values[ok]
    times = data["time"].values
    crossover = sc.design.type == "crossover"
    fraction = is_fraction(r)
    base = baseline_of(data, r) if not crossover else None
    base = base[ok] if base is not None else None
    for arm in (a.name for a in sc.arms if a.name != ctrl):
        label = f"{arm} vs {ctrl}"
        for k, t in enumerate(times):
            if crossover:
                ya, yc, first = crossover_arrays(data, r, k, arm, ctrl, ok)
                comp = compare_crossover(ya, yc, first, fraction)
            else:
                sa, sc_ = arm_of[:, 0] == arm, arm_of[:, 0] == ctrl
                comp = compare_parallel(
                    da[sa, 0, k], da[sc_, 0, k], fraction,
                    None if base is None else base[sa, 0], None if base is None else base[sc_, 0])
            rows += [(label, 1, r, float(t), s, v, unit, comp.n) for s, v in comp.rows()]
    return rows


# ------------------------------------------------------------------ time to event


def first_event(flags: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``flags`` (subjects x times, 1/0/NaN): the first time it is 1 (event) or
    the last time observed (censored). Rows never observed get NaN."""
    f = np.asarray(flags, float)
    hit = f > 0.5
    any_hit = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    observed = np.isfinite(f)
    last = np.where(observed.any(axis=1),
                    f.shape[1] - 1 - np.argmax(observed[:, ::-1], axis=1), -1)
    dur = np.where(any_hit, times[first], np.where(last >= 0, times[np.maximum(last, 0)], np.nan))
    return dur.astype(float), np.asarray(any_hit, bool)


def _arm_rows(data: xr.Dataset, ok: np.ndarray, arm: str, p_idx: int,
              readout: str) -> np.ndarray:
    sel = data["arm"].values[ok][:, p_idx] == arm
    return np.asarray(data[readout].values[ok][sel, p_idx, :], float)


def last_dose_h(sc: Scenario, arm: str) -> float:
    """Start of the arm's last dose (h from the period's time zero)."""
    a = sc.arm(arm)
    return float(max(max(d.times_h()) for d in a.doses))


def relapse_events(sc: Scenario, data: xr.Dataset, arm: str, p_idx: int,
                   ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Responders at the end of treatment (as ``relapse_free`` counts them): time to
    relapse in hours from the start of the arm's last dose, and whether it was seen
    (False: censored at the last rating)."""
    if ok is None:
        ok = data["status"].values == "ok"
    times = np.asarray(data["time"].values, float)
    if "relapse_free" in data:
        rf = _arm_rows(data, ok, arm, p_idx, "relapse_free")
    elif "response" in data:
        from ketasim.experiments.measures import relapse_free

        resp = _arm_rows(data, ok, arm, p_idx, "response")
        start = np.full((resp.shape[0],), int(np.searchsorted(times, last_dose_h(sc, arm))))
        rf = relapse_free(xr.DataArray(resp, dims=("subject", "time")), start).values
    else:
        return np.array([]), np.array([], bool)
    responders = np.isfinite(rf).any(axis=1)
    rf = rf[responders]
    dur, seen = first_event(np.where(np.isfinite(rf), 1.0 - rf, np.nan), times)
    return dur - last_dose_h(sc, arm), seen


def kaplan_meier_table(sc: Scenario, data: xr.Dataset) -> pd.DataFrame:
    """Kaplan-Meier curves of relapse among responders, per arm and period: columns
    ``arm, period, time_h`` (h from the start of the last dose), then those of
    :class:`ketasim.stats.KaplanMeier`. Empty when the run has no responders or no
    response readout."""
    if "response" not in data and "relapse_free" not in data:
        return pd.DataFrame()
    frames = []
    for p_idx, period in enumerate(data["period"].values):
        for arm in dict.fromkeys(data["arm"].values[:, p_idx]):
            dur, seen = relapse_events(sc, data, str(arm), p_idx)
            if not dur.size:
                continue
            km = pd.DataFrame(kaplan_meier(dur, seen).columns())
            km.insert(0, "period", int(period))
            km.insert(0, "arm", str(arm))
            frames.append(km.rename(columns={"time": "time_h"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _period_endpoints(sc: Scenario, data: xr.Dataset, r: str, ok: np.ndarray, arm: str,
                      p_idx: int, unit: str) -> list[tuple[Any, ...]]:
    """Whole-period endpoints of one arm (time_h NaN): see the module docstring."""
    period = int(data["period"].values[p_idx])
    times = np.asarray(data["time"].values, float)
    nan = np.nan
    rows: list[tuple[Any, ...]] = []
    if r in ("response", "remission"):
        v = _arm_rows(data, ok, arm, p_idx, r)
        dur, hit = first_event(v, times)
        n = int(np.isfinite(dur).sum())
        rows.append((arm, period, r, nan, f"median_time_to_{r}", kaplan_meier(dur, hit).median(),
                     "h", n))
        rows.append((arm, period, r, nan, "fraction_ever",
                     float(hit.mean()) if hit.size else nan, "fraction", n))
    elif r == "relapse_free":
        dur, seen = relapse_events(sc, data, arm, p_idx, ok)
        med = kaplan_meier(dur, seen).median() if dur.size else nan
        rows.append((arm, period, r, nan, "responders", float(dur.size), "subjects",
                     int(dur.size)))
        rows.append((arm, period, r, nan, "median_time_to_relapse", med, "h", int(dur.size)))
    elif r in SAFETY:
        v = _arm_rows(data, ok, arm, p_idx, r)
        if v.size and np.isfinite(v).any():
            with np.errstate(all="ignore"):
                mean = np.nanmean(v, axis=0)
                k = int(np.nanargmax(mean))
                subj = np.nanmax(v, axis=1)
            n = int(np.isfinite(subj).sum())
            peak, when, subj_mean = float(mean[k]), float(times[k]), float(np.nanmean(subj))
            if np.nanmax(np.abs(v)) < NUMERICAL_ZERO:  # e.g. saline: nothing to time
                peak, when, subj_mean = 0.0, nan, 0.0
            rows += [(arm, period, r, nan, "peak", peak, unit, n),
                     (arm, period, r, nan, "time_of_peak", when, "h", n),
                     (arm, period, r, nan, "subject_peak_mean", subj_mean, unit, n)]
    return rows

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ketasim.catalog import catalog
from ketasim.readouts import FIXED
from ketasim.result import SUMMARY_COLUMNS

SAFETY = ("cadss", "sbp.change", "heart_rate.change")
NUMERICAL_ZERO = 1e-6  # points, mmHg, beats/min: below this a safety readout is 0
SCALES = ("madrs", "hamd17")
Z95 = float(stats.norm.ppf(0.975))


def control_arm(sc: Any) -> str | None:
    """The arm others are compared with: all-vehicle doses first, else an active placebo."""
    cat = catalog()
    for arm in sc.arms:
        if all(cat.drug(d.drug).role == "vehicle" for d in arm.doses):
            return str(arm.name)
    for arm in sc.arms:
        if any(cat.resolve(d.drug) == "midazolam" for d in arm.doses):
            return str(arm.name)
    return None


def _is_fraction(readout: str) -> bool:
    return readout in FIXED and FIXED[readout].kind == "fraction"


def _continuous_rows(vals: np.ndarray) -> list[tuple[str, float]]:
    if vals.size == 0:
        return [(s, np.nan) for s in ("mean", "sd", "median", "p05", "p95")]
    return [("mean", float(np.mean(vals))),
            ("sd", float(np.std(vals, ddof=1)) if vals.size > 1 else np.nan),
            ("median", float(np.median(vals))),
            ("p05", float(np.percentile(vals, 5))), ("p95", float(np.percentile(vals, 95)))]


def summarise(sc: Any, data: xr.Dataset) -> pd.DataFrame:
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
                    if _is_fraction(r):
                        stat = [("fraction", float(vals.mean()) if vals.size else np.nan)]
                    else:
                        stat = _continuous_rows(vals)
                    rows += [(arm, int(period), r, float(t), s, v, unit, int(vals.size))
                             for s, v in stat]
                rows += _period_endpoints(sc, data, r, ok, arm, p_idx, unit)
        rows += _between_arms(sc, data, r, ok, unit)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# ------------------------------------------------------------------- comparisons


@dataclass
class Comparison:
    """One active-vs-control comparison at one time (see the module docstring)."""

    difference: float = np.nan
    cohens_d: float = np.nan
    p_value: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    n: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, float]]:
        out = [("difference", self.difference), ("cohens_d", self.cohens_d),
               ("p_value", self.p_value), ("ci_low", self.ci_low), ("ci_high", self.ci_high)]
        return out + list(self.extra.items())


def _degenerate(x: np.ndarray) -> bool:
    """Constant to rounding: no meaningful test statistic."""
    return x.size < 2 or float(np.std(x, ddof=1)) <= 1e-12 * max(1.0, float(np.abs(x).max()))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN) for n = 0."""
    if n <= 0:
        return np.nan, np.nan
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def nnt(difference: float) -> float:
    """Number needed to treat: 1 / (risk difference); NaN when the difference is 0."""
    if not np.isfinite(difference) or difference == 0:
        return np.nan
    return float(1.0 / difference)


def compare_parallel(a: np.ndarray, c: np.ndarray, fraction: bool = False,
                     base_a: np.ndarray | None = None,
                     base_c: np.ndarray | None = None) -> Comparison:
    """Active ``a`` vs control ``c``, independent groups (NaNs dropped)."""
    keep_a, keep_c = np.isfinite(a), np.isfinite(c)
    a, c = a[keep_a], c[keep_c]
    out = Comparison(n=int(a.size + c.size))
    if not a.size or not c.size:
        return out
    out.difference = float(np.mean(a) - np.mean(c))
    if fraction:
        out.extra["nnt"] = nnt(out.difference)
        sa, sc_ = int(np.rint(a.sum())), int(np.rint(c.sum()))
        table = [[sa, a.size - sa], [sc_, c.size - sc_]]
        out.p_value = float(stats.fisher_exact(table).pvalue)
        la, ua = wilson(sa, a.size)
        lc, uc = wilson(sc_, c.size)
        pa, pc = sa / a.size, sc_ / c.size
        out.ci_low = out.difference - float(np.sqrt((pa - la) ** 2 + (uc - pc) ** 2))
        out.ci_high = out.difference + float(np.sqrt((ua - pa) ** 2 + (pc - lc) ** 2))
    if a.size < 2 or c.size < 2:
        return out
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (c.size - 1) * c.var(ddof=1))
                     / (a.size + c.size - 2))
    if pooled <= 1e-12 * max(1.0, float(np.abs(np.concatenate([a, c])).max())):
        return out
    out.cohens_d = float(out.difference / pooled)
    if not fraction:
        va, vc = a.var(ddof=1) / a.size, c.var(ddof=1) / c.size
        se = float(np.sqrt(va + vc))
        df = (va + vc) ** 2 / (va**2 / (a.size - 1) + vc**2 / (c.size - 1))
        q = float(stats.t.ppf(0.975, df))
        out.p_value = float(stats.ttest_ind(a, c, equal_var=False).pvalue)
        out.ci_low, out.ci_high = out.difference - q * se, out.difference + q * se
    if base_a is not None and base_c is not None:
        out.extra.update(_ancova(a, c, base_a[keep_a], base_c[keep_c]))
    return out


def _ancova(a: np.ndarray, c: np.ndarray, ba: np.ndarray, bc: np.ndarray) -> dict[str, float]:
    """Treatment effect and its p from OLS y ~ 1 + treated + baseline."""
    y = np.concatenate([a, c])
    b = np.concatenate([ba, bc])
    keep = np.isfinite(b)
    treated = np.concatenate([np.ones(a.size), np.zeros(c.size)])
    y, b, treated = y[keep], b[keep], treated[keep]
    df = y.size - 3
    if df < 1 or _degenerate(b) or _degenerate(y):
        return {"difference_ancova": np.nan, "p_ancova": np.nan}
    X = np.column_stack([np.ones(y.size), treated, b])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    s2 = float(resid @ resid) / df
    cov = s2 * np.linalg.inv(X.T @ X)
    se = float(np.sqrt(cov[1, 1]))
    if se <= 0:
        return {"difference_ancova": float(beta[1]), "p_ancova": np.nan}
    p = float(2 * stats.t.sf(abs(beta[1] / se), df))
    return {"difference_ancova": float(beta[1]), "p_ancova": p}


def compare_crossover(y_a: np.ndarray, y_c: np.ndarray, a_first: np.ndarray,
                      fraction: bool = False) -> Comparison:
    """Two-period crossover: ``y_a``/``y_c`` each subject's value on the active/control arm,
    ``a_first`` True where the subject had the active arm in period 1."""
    keep = np.isfinite(y_a) & np.isfinite(y_c)
    y_a, y_c, a_first = y_a[keep], y_c[keep], np.asarray(a_first, bool)[keep]
    diff = y_a - y_c
    out = Comparison(n=int(diff.size))
    if not diff.size:
        return out
    out.difference = float(np.mean(diff))
    if fraction:
        out.extra["nnt"] = nnt(out.difference)
        b = int(np.sum(diff > 0.5))  # responded on the active arm only
        c = int(np.sum(diff < -0.5))
        out.p_value = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
        n = diff.size
        se = float(np.sqrt(max((b + c) - (b - c) ** 2 / n, 0.0))) / n
        out.ci_low, out.ci_high = out.difference - Z95 * se, out.difference + Z95 * se
        if not _degenerate(diff):
            out.cohens_d = float(np.mean(diff) / np.std(diff, ddof=1))
        return out
    if _degenerate(diff):
        return out
    out.cohens_d = float(np.mean(diff) / np.std(diff, ddof=1))
    # period differences: AB subjects (a first) P1 - P2 = a - c; BA subjects = c - a
    pd_ab, pd_ba = diff[a_first], -diff[~a_first]
    n1, n2 = pd_ab.size, pd_ba.size
    if n1 >= 2 and n2 >= 2:
        est = 0.5 * (pd_ab.mean() - pd_ba.mean())
        dof = n1 + n2 - 2
        s2 = ((n1 - 1) * pd_ab.var(ddof=1) + (n2 - 1) * pd_ba.var(ddof=1)) / dof
        se = 0.5 * float(np.sqrt(s2 * (1 / n1 + 1 / n2)))
        out.extra["difference_adjusted"] = float(est)
        # period 2 - period 1 (both sequences' P1 - P2 contain minus the period effect)
        out.extra["period_effect"] = float(-0.5 * (pd_ab.mean() + pd_ba.mean()))
        if se > 0:
            q = float(stats.t.ppf(0.975, dof))
            out.p_value = float(2 * stats.t.sf(abs(est / se), dof))
            out.ci_low, out.ci_high = float(est - q * se), float(est + q * se)
        return out
    # one sequence (almost) empty: the period effect is confounded; paired t-test
    n = diff.size
    se = float(np.std(diff, ddof=1) / np.sqrt(n))
    q = float(stats.t.ppf(0.975, n - 1))
    out.p_value = float(stats.ttest_1samp(diff, 0.0).pvalue)
    out.ci_low, out.ci_high = out.difference - q * se, out.difference + q * se
    return out


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


def _between_arms(sc: Any, data: xr.Dataset, r: str, ok: np.ndarray,
                  unit: str) -> list[tuple[Any, ...]]:
    ctrl = control_arm(sc)
    if ctrl is None or r == "relapse_free":
        return []
    rows: list[tuple[Any, ...]] = []
    da = data[r].values[ok]
    arm_of = data["arm"].values[ok]
    times = data["time"].values
    crossover = sc.design.type == "crossover"
    fraction = _is_fraction(r)
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


# -------------------------------------------------------------------- Kaplan-Meier


def kaplan_meier(durations: np.ndarray, events: np.ndarray) -> pd.DataFrame:
    """Kaplan-Meier estimate: one row per distinct event or censoring time.

    Columns: ``time``, ``at_risk``, ``events``, ``censored``, ``survival`` (S just after
    ``time``), ``se`` (Greenwood), ``lower``, ``upper`` (95 %, log(-log) transform).
    Censored subjects at a time of events are at risk at that time (the usual convention).
    """
    d = np.asarray(durations, float)
    e = np.asarray(events, bool)
    keep = np.isfinite(d)
    d, e = d[keep], e[keep]
    rows = []
    s, green = 1.0, 0.0
    for t in np.unique(d):
        at_risk = int(np.sum(d >= t))
        ev = int(np.sum((d == t) & e))
        cens = int(np.sum((d == t) & ~e))
        if ev:
            s *= 1.0 - ev / at_risk
            green += ev / (at_risk * (at_risk - ev)) if at_risk > ev else np.inf
        se = s * np.sqrt(green) if np.isfinite(green) else np.nan
        lo, hi = _loglog_ci(s, green)
        rows.append((float(t), at_risk, ev, cens, s, se, lo, hi))
    return pd.DataFrame(rows, columns=["time", "at_risk", "events", "censored", "survival",
                                       "se", "lower", "upper"])


def _loglog_ci(s: float, green: float) -> tuple[float, float]:
    if s <= 0 or s >= 1 or not np.isfinite(green) or green <= 0:
        return (s, s) if s in (0.0, 1.0) else (np.nan, np.nan)
    half = Z95 * np.sqrt(green) / abs(np.log(s))
    return float(s ** np.exp(half)), float(s ** np.exp(-half))


def km_median(table: pd.DataFrame) -> float:
    """The smallest time at which survival is at or below 0.5; NaN if never."""
    hit = table.loc[table["survival"] <= 0.5 + 1e-12, "time"]
    return float(hit.iloc[0]) if len(hit) else np.nan


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


def last_dose_h(sc: Any, arm: str) -> float:
    """Start of the arm's last dose (h from the period's time zero)."""
    a = sc.arm(arm)
    return float(max(max(d.times_h()) for d in a.doses))


def relapse_events(sc: Any, data: xr.Dataset, arm: str, p_idx: int,
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


def kaplan_meier_table(sc: Any, data: xr.Dataset) -> pd.DataFrame:
    """Kaplan-Meier curves of relapse among responders, per arm and period: columns
    ``arm, period, time_h`` (h from the start of the last dose), then those of
    :func:`kaplan_meier`. Empty when the run has no responders or no response readout."""
    if "response" not in data and "relapse_free" not in data:
        return pd.DataFrame()
    frames = []
    for p_idx, period in enumerate(data["period"].values):
        for arm in dict.fromkeys(data["arm"].values[:, p_idx]):
            dur, seen = relapse_events(sc, data, str(arm), p_idx)
            if not dur.size:
                continue
            km = kaplan_meier(dur, seen)
            km.insert(0, "period", int(period))
            km.insert(0, "arm", str(arm))
            frames.append(km.rename(columns={"time": "time_h"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _period_endpoints(sc: Any, data: xr.Dataset, r: str, ok: np.ndarray, arm: str,
                      p_idx: int, unit: str) -> list[tuple[Any, ...]]:
    """Whole-period endpoints of one arm (time_h NaN): see the module docstring."""
    period = int(data["period"].values[p_idx])
    times = np.asarray(data["time"].values, float)
    nan = np.nan
    rows: list[tuple[Any, ...]] = []
    if r in ("response", "remission"):
        v = _arm_rows(data, ok, arm, p_idx, r)
        dur, hit = first_event(v, times)
        km = kaplan_meier(dur, hit)
        n = int(np.isfinite(dur).sum())
        rows.append((arm, period, r, nan, f"median_time_to_{r}", km_median(km), "h", n))
        rows.append((arm, period, r, nan, "fraction_ever",
                     float(hit.mean()) if hit.size else nan, "fraction", n))
    elif r == "relapse_free":
        dur, seen = relapse_events(sc, data, arm, p_idx, ok)
        med = km_median(kaplan_meier(dur, seen)) if dur.size else nan
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

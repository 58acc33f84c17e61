"""Which baseline covariates and early readouts predict response (``ketasim predictors``).

For each target (response 24 h and 7 days after the active dose; in a crossover each
subject's active period, in a parallel design the first active arm), every candidate
predictor gets its ROC AUC: the Mann-Whitney probability that a responder's value is
larger than a non-responder's (ties count a half), with a 95 % confidence interval from
DeLong's variance (or, with ``bootstrap > 0``, the percentile interval of that many
resamples of subjects). ``AUC < 0.5`` means that *lower* values go with response; the
table gives the AUC as computed, the direction, and ``discrimination`` = max(AUC, 1 - AUC).

A predictor is flagged *worth measuring* when its confidence interval excludes 0.5.

Candidates (those the run can provide):

- baseline: BMI, body weight, age, sex (female = 1), BDNF Val66Met Met carrier (1),
  family history of alcohol use disorder (1), CYP2B6 poor metaboliser (1), baseline
  MADRS;
- early readouts: response at 4 h (1/0), MADRS change at 4 h, CADSS at 40 min (end of the
  infusion), plasma BDNF at 240 min (% of baseline), plasma ketamine at 40 min.

The scenario is run with the output times and readouts these need added (40 min, 4 h,
1 d, 7 d; madrs, madrs.change, response, cadss, bdnf.plasma, plasma.ketamine). Rating noise
is drawn per output time, so the scores differ in their noise from a run of the scenario as
written; the subjects are the same. Latent model quantities (severity, plasticity) are not
candidates: a trial cannot measure them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ketasim import units
from ketasim.errors import ArgumentError
from ketasim.experiments.endpoints import control_arm

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

COLUMNS = ["target", "predictor", "kind", "auc", "ci_low", "ci_high", "direction",
           "discrimination", "responders", "non_responders", "worth_measuring"]
TARGETS = (("response at 24 h", 24.0), ("response at day 7", 168.0))
NEEDED_TIMES = ("40 min", "4 h", "1 d", "7 d")
NEEDED_READOUTS = ("madrs", "madrs.change", "response", "cadss", "bdnf.plasma",
                   "plasma.ketamine")


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of scores ``x`` for the binary outcome ``y`` (1 = event): the Mann-Whitney
    statistic U / (n1 n0), ties counting one half. NaN without both outcomes."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep] > 0.5
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return np.nan
    ranks = stats.rankdata(x)  # average ranks for ties
    u = ranks[y].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def delong_ci(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """AUC and its confidence interval from DeLong's (1988) variance (structural
    components), clipped to [0, 1].

    The structural components come from midranks (Sun & Xu 2014, IEEE Signal Process Lett
    21:1389): a responder's V10 is (its rank among all - its rank among responders) / n0,
    a non-responder's V01 is 1 - (its rank among all - its rank among non-responders) / n1,
    ties counting one half. The same numbers as the n1 x n0 comparison matrix in O(n)
    memory (that matrix is 24 GB at 100,000 subjects)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep] > 0.5
    pos, neg = x[y], x[~y]
    m, n = pos.size, neg.size
    if m < 2 or n < 2:
        return auc(x, y), np.nan, np.nan
    ranks = stats.rankdata(x)  # midranks among all subjects
    v10 = (ranks[y] - stats.rankdata(pos)) / n
    v01 = 1.0 - (ranks[~y] - stats.rankdata(neg)) / m
    a = float(v10.mean())
    var = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    z = float(stats.norm.ppf(0.5 + level / 2))
    half = z * float(np.sqrt(max(var, 0.0)))
    return a, max(0.0, a - half), min(1.0, a + half)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the AUC over ``n_boot`` resamples of subjects."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        v = auc(x[idx], y[idx])
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return np.nan, np.nan
    lo, hi = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _scenario_for(sc: Scenario, size: int | None = None) -> Scenario:
    from ketasim.scenario import load_scenario

    if sc.species != "human":
        raise ArgumentError("sc", f"predictors of response need a human trial; this "
                            f"scenario is {sc.species}")
    data = copy.deepcopy(sc.as_dict())
    if size is not None:
        if size < 2:
            raise ArgumentError("size", f"{size} is too few; use 2 or more")
        data["population"]["size"] = size
    times = list(data["outputs"]["times"])
    have = {units.hours(t) for t in times}
    end = sc.follow_up_h
    for t in NEEDED_TIMES:
        if units.hours(t) not in have and units.hours(t) <= end + 1e-9:
            times.append(t)
    data["outputs"]["times"] = sorted(times, key=units.hours)
    readouts = list(data["outputs"]["readouts"])
    for r in NEEDED_READOUTS:
        if r not in readouts:
            readouts.append(r)
    data["outputs"]["readouts"] = readouts
    return load_scenario(data)


def _active_period(sc: Scenario, data: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(subject rows, period index per row, arm) of the active arm's observations."""
    ctrl = control_arm(sc)
    active = next((a.name for a in sc.arms if a.name != ctrl), sc.arms[0].name)
    arm_of = data["arm"].values
    ok = data["status"].values == "ok"
    rows, periods = np.nonzero((arm_of == active) & ok[:, None])
    return rows, periods, active


def _at(data: Any, readout: str, rows: np.ndarray, periods: np.ndarray,
        t_h: float) -> np.ndarray | None:
    if readout not in data:
        return None
    times = np.asarray(data["time"].values, float)
    k = np.flatnonzero(np.abs(times - t_h) < 1e-6)
    if not k.size:
        return None
    return np.asarray(data[readout].values[rows, periods, int(k[0])], float)


def candidates(data: Any, rows: np.ndarray, periods: np.ndarray) -> list[tuple[str, str,
                                                                                np.ndarray]]:
    """(name, kind, values per observation) for every predictor the run provides."""
    out: list[tuple[str, str, np.ndarray]] = []
    coords = data.coords

    def cov(name: str, label: str, fn: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if name in coords:
            v = np.asarray(coords[name].values)[rows]
            out.append((label, "baseline", np.asarray(fn(v) if fn else v, float)))

    cov("bmi", "BMI")
    cov("weight", "body weight")
    cov("age", "age")
    cov("female", "sex (female)")
    cov("genotype", "BDNF Met carrier", lambda g: np.isin(g, ("val_met", "met_met")))
    cov("fh_aud", "family history of AUD")
    cov("cyp2b6_pm", "CYP2B6 poor metaboliser")
    if "madrs" in data and "madrs.change" in data:
        base = (data["madrs"] - data["madrs.change"]).values[rows, periods, :]
        with np.errstate(all="ignore"):
            out.append(("baseline MADRS", "baseline", np.nanmedian(base, axis=1)))
    early = (("response at 4 h", "response", 4.0),
             ("MADRS change at 4 h", "madrs.change", 4.0),
             ("CADSS at 40 min", "cadss", 40 / 60),
             ("plasma BDNF at 240 min", "bdnf.plasma", 4.0),
             ("plasma ketamine at 40 min", "plasma.ketamine", 40 / 60))
    for label, readout, t in early:
        v = _at(data, readout, rows, periods, t)
        if v is not None:
            out.append((label, "early readout", v))
    return out


def predictor_table(sc: Scenario, data: Any, bootstrap: int = 0) -> pd.DataFrame:
    """The ranked predictor table of a run (see the module docstring)."""
    rows, periods, _ = _active_period(sc, data)
    cands = candidates(data, rows, periods)
    records = []
    for target, t_h in TARGETS:
        y = _at(data, "response", rows, periods, t_h)
        if y is None:
            continue
        for name, kind, x in cands:
            finite = x[np.isfinite(x)]
            if finite.size == 0 or np.ptp(finite) == 0:
                a, lo, hi = np.nan, np.nan, np.nan  # constant: no information
            else:
                a, lo, hi = delong_ci(x, y)
                if bootstrap > 0:
                    lo, hi = bootstrap_ci(x, y, bootstrap, seed=int(sc.seed))
            keep = np.isfinite(x) & np.isfinite(y)
            n1 = int((y[keep] > 0.5).sum())
            worth = bool(np.isfinite(lo) and (lo > 0.5 or hi < 0.5))
            direction = ("-" if not np.isfinite(a) else "higher" if a > 0.5
                         else "lower" if a < 0.5 else "none")
            disc = max(a, 1 - a) if np.isfinite(a) else np.nan
            records.append((target, name, kind, a, lo, hi, direction, disc, n1,
                            int(keep.sum()) - n1, worth))
    df = pd.DataFrame(records, columns=COLUMNS)
    if len(df):
        df["_t"] = df["target"].map({t: k for k, (t, _) in enumerate(TARGETS)})
        df = df.sort_values(["_t", "discrimination"], ascending=[True, False],
                            na_position="last").drop(columns="_t").reset_index(drop=True)
    return df


def predictors(sc: Scenario, bootstrap: int = 0, progress: Any = None,
               simulate: Callable[..., Any] | None = None,
               size: int | None = None) -> pd.DataFrame:
    """Run the scenario (with the outputs the candidates need; ``size`` replaces its
    population size) and rank the predictors."""
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ArgumentError("bootstrap", f"{bootstrap} is not a whole number >= 0")
    if simulate is None:
        from ketasim.experiments.run import run

        simulate = run
    run_sc = _scenario_for(sc, size)
    result = simulate(run_sc, progress=progress)
    if "response" not in result.data:
        raise ArgumentError("sc", "the run has no response readout")
    return predictor_table(run_sc, result.data, bootstrap)

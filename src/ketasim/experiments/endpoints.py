"""Summary statistics: the contract's summary.csv rows.

Per (arm, period, readout, time): ``mean, sd, median, p05, p95`` for continuous readouts,
``fraction`` for proportions (response, remission, relapse_free; relapse_free among
responders only). Between arms, where the design has a control arm: ``difference``
(active - control), ``cohens_d`` and ``p_value`` (Welch t-test for parallel groups;
paired t-test on within-subject differences for crossovers, pooling both periods).
Subjects whose integration failed are left out and the counts say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ketasim.catalog import catalog
from ketasim.readouts import FIXED
from ketasim.result import SUMMARY_COLUMNS


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
        rows += _between_arms(sc, data, r, ok, unit)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


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
    for arm in (a.name for a in sc.arms if a.name != ctrl):
        label = f"{arm} vs {ctrl}"
        for k, t in enumerate(times):
            if crossover:
                a = np.where(arm_of == arm, da[:, :, k], np.nan)
                c = np.where(arm_of == ctrl, da[:, :, k], np.nan)
                diff = np.nansum(a, axis=1) - np.nansum(c, axis=1)
                diff = diff[np.isfinite(diff)]
                d, p = _paired(diff)
                n = diff.size
                delta = float(np.mean(diff)) if n else np.nan
            else:
                a = da[arm_of[:, 0] == arm, 0, k]
                c = da[arm_of[:, 0] == ctrl, 0, k]
                a, c = a[np.isfinite(a)], c[np.isfinite(c)]
                delta = float(np.mean(a) - np.mean(c)) if a.size and c.size else np.nan
                d, p = _welch(a, c)
                n = a.size + c.size
            rows += [(label, 1, r, float(t), s, v, unit, int(n))
                     for s, v in (("difference", delta), ("cohens_d", d), ("p_value", p))]
    return rows


def _paired(diff: np.ndarray) -> tuple[float, float]:
    # a difference that is constant to rounding has no meaningful test statistic
    if diff.size < 2 or np.std(diff, ddof=1) <= 1e-12 * max(1.0, float(np.abs(diff).max())):
        return np.nan, np.nan
    d = float(np.mean(diff) / np.std(diff, ddof=1))
    return d, float(stats.ttest_1samp(diff, 0.0).pvalue)


def _welch(a: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    if a.size < 2 or c.size < 2:
        return np.nan, np.nan
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (c.size - 1) * c.var(ddof=1))
                     / (a.size + c.size - 2))
    if pooled <= 1e-12 * max(1.0, float(np.abs(np.concatenate([a, c])).max())):
        return np.nan, np.nan
    d = float((a.mean() - c.mean()) / pooled)
    return d, float(stats.ttest_ind(a, c, equal_var=False).pvalue)

"""The virtual animal laboratory: assays with measurement error and group statistics.

**Assays** (:func:`apply_assays`). The model's mechanism readouts are noise-free states.
A laboratory measures them with a technique (``catalog/assays.toml``: Western blot, ELISA,
spine counts, microdialysis, MRS, metabolomics, LC-MS/MS bioanalysis), each with its own
coefficient of variation. Each animal's assayed value is

    assayed = model value x exp(sigma z - sigma^2 / 2),   sigma^2 = log(1 + CV^2)

(log-normal, mean 1, CV as catalogued), with ``z`` drawn from the animal's own random
stream (purpose key ``_ASSAY``, one stream per readout), so the same seed gives the same
numbers and a subset of animals keeps its values. With ``population.variability = false``
(every animal the typical animal) there is no measurement error either, as in the
behavioural tests.

Units, as a laboratory reports them:

- terminal tissue assays (``reference = "vehicle"``: Western blot, ELISA, metabolomics)
  of readouts whose contract unit is ``% of baseline`` become **% of the vehicle group's
  mean at the same time (and period)**, computed from the assayed values, when the design
  has an all-vehicle arm (unit ``"% of vehicle"``); without one they stay % of the
  animal's own pre-dose value;
- readouts in ``% of healthy control`` (synaptic proteins, spines) keep that reference:
  the lab's non-stressed control group, so a stress deficit stays visible in a stressed
  cohort;
- in vivo repeated techniques (microdialysis, MRS) stay % of the animal's own baseline.

**Microdialysis bins.** A dialysate sample is the mean concentration over its collection
interval (``bin``, 20 min). When every output time that is a positive multiple of 20 min
has its whole window [t - 20 min, t] covered by output times (time zero counts as covered
when no arm is dosed before it: the pre-dose baseline), ``glutamate.pfc`` at such a time
is the trapezoidal time-average of the model values over the window, and output times that
end no bin are NaN (no sample ends there). Otherwise (sparse output times) it is a point
sample at each output time. ``attrs["sampling"]`` says which. Output times every 20 min
give two-point bins; every 5 or 10 min gives finer averages.

**Statistics** (:func:`group_statistics`): per requested readout, period and output time,
n, mean, SD and SEM per arm (``lab_stats``); ``lab_tests``: a Welch t-test with two arms,
else a one-way ANOVA with Tukey HSD post hoc comparisons of every pair (adjusted p), and a
two-way ANOVA (Type II sums of squares, statsmodels OLS) wherever four arms form a 2 x 2
factorial (vehicle, A, B, A + B, e.g. NBQX pretreatment x ketamine). Animals whose
integration failed are left out. Tests need at least two animals per group and some
within-group variance (none with ``variability = false``); otherwise the row says why.
"""

from __future__ import annotations

import itertools
import warnings
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ketasim.catalog import Technique, catalog
from ketasim.population import rng_for

if TYPE_CHECKING:
    from ketasim.scenario import Arm, Scenario

__all__ = [
    "Technique",
    "apply_assays",
    "assay_table",
    "factorial_2x2",
    "group_statistics",
    "significance_vs",
    "technique_of",
    "vehicle_arm",
]

_ASSAY = 7  # random-stream purpose (population: 1-5, ratings 5, behaviour 6)
STATS_COLUMNS = ["readout", "unit", "period", "time_h", "arm", "n", "mean", "sd", "sem"]
TESTS_COLUMNS = ["readout", "unit", "period", "time_h", "test", "comparison", "statistic_name",
                 "statistic", "df", "p", "p_adjusted", "note"]
PCT_BASELINE = "% of baseline"
PCT_VEHICLE = "% of vehicle"


def assay_table() -> dict[str, Technique]:
    """The techniques of ``catalog/assays.toml`` by id (the packaged catalog)."""
    return catalog().assays


def technique_of(readout: str) -> Technique | None:
    """The technique measuring ``readout`` (``plasma.*`` patterns allowed), else None."""
    for tech in assay_table().values():
        for pattern in tech.readouts:
            if readout == pattern or (pattern.endswith(".*")
                                      and readout.startswith(pattern[:-1])):
                return tech
    return None


def _is_vehicle_arm(arm: Arm) -> bool:
    cat = catalog()
    return all(cat.drug(d.drug).role == "vehicle" or d.magnitude == 0 for d in arm.doses)


def vehicle_arm(sc: Scenario) -> str | None:
    """The first arm whose doses are all vehicle (or zero amounts), else None."""
    for arm in sc.arms:
        if _is_vehicle_arm(arm):
            return str(arm.name)
    return None


# ------------------------------------------------------------------------------ assays


def _lognormal_factor(seed: int, subjects: np.ndarray, shape: tuple[int, ...], readout: str,
                      cv: float) -> np.ndarray:
    """Mean-1 log-normal error factors with coefficient of variation ``cv``, one stream per
    (animal, readout)."""
    sigma = float(np.sqrt(np.log1p(cv**2)))
    key = zlib.crc32(readout.encode())
    z = np.empty((len(subjects), *shape))
    for k, s in enumerate(subjects):
        z[k] = rng_for(seed, int(s), _ASSAY, key).standard_normal(shape)
    return np.exp(sigma * z - 0.5 * sigma**2)


def _bin_plan(sc: Scenario, times: np.ndarray, bin_h: float) -> list[tuple[int, list[int]]] | None:
    """For each output time ending a bin: (its index, indices of the output times inside
    its window; -1 stands for the pre-dose baseline at time zero). None if the output
    times do not allow bins."""
    ends = [k for k, t in enumerate(times)
            if t > 0 and abs(t / bin_h - round(t / bin_h)) < 1e-6]
    if not ends:
        return None
    zero_ok = all(a.first_h() >= 0 for a in sc.arms)
    plan = []
    for k in ends:
        start = times[k] - bin_h
        inside = [j for j, t in enumerate(times) if start - 1e-9 <= t <= times[k] + 1e-9]
        if not any(abs(times[j] - start) < 1e-9 for j in inside):
            if abs(start) < 1e-9 and zero_ok:
                inside = [-1, *inside]
            else:
                return None
        plan.append((k, inside))
    return plan


def _binned(values: np.ndarray, baseline: np.ndarray, times: np.ndarray,
            plan: list[tuple[int, list[int]]], bin_h: float) -> np.ndarray:
    """Trapezoidal window means (subject, period, time); NaN where no bin ends."""
    out = np.full(values.shape, np.nan)
    for k, inside in plan:
        tt = np.array([0.0 if j < 0 else times[j] for j in inside])
        vv = np.stack([baseline if j < 0 else values[:, :, j] for j in inside], axis=-1)
        out[:, :, k] = np.trapezoid(vv, tt, axis=-1) / bin_h
    return out


def apply_assays(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    """Replace each assayed mechanism readout by what the laboratory measures (see the
    module docstring): technique error, units as reported, microdialysis bins."""
    subj = data["subject"].values
    times = np.asarray(data["time"].values, dtype=float)
    shape = (data.sizes["period"], data.sizes["time"])
    noisy = bool(sc.population.variability)
    vehicle = vehicle_arm(sc)
    ok = data["status"].values == "ok"
    arms = data["arm"].values
    new: dict[str, xr.DataArray] = {}
    wanted = set(getattr(sc.outputs, "readouts", ()) or ())
    for name in [str(v) for v in data.data_vars if str(v) in wanted]:
        da = data[name]
        tech = technique_of(name)
        if tech is None or da.dims != ("subject", "period", "time"):
            continue
        unit = da.attrs.get("unit", "")
        v = np.asarray(da.values, dtype=float).copy()
        base_raw = data[f"{name}@baseline"].values if f"{name}@baseline" in data else None
        attrs = dict(da.attrs, assay=tech.id, assay_cv=tech.cv.value)
        if tech.bin is not None:
            bin_h = tech.bin.to("h")
            plan = _bin_plan(sc, times, bin_h)
            if plan is not None:
                pre = (np.full(v.shape[:2], 100.0) if unit == PCT_BASELINE or base_raw is None
                       else base_raw)
                v = _binned(v, pre, times, plan, bin_h)
                attrs["sampling"] = f"{tech.bin.value:g}-{tech.bin.unit} bins ending at the time"
            else:
                attrs["sampling"] = "point samples (output times allow no whole bins)"
        if noisy:
            v = v * _lognormal_factor(sc.seed, subj, shape, name, tech.cv.value)
        if (unit == PCT_BASELINE and tech.reference == "vehicle" and vehicle is not None
                and base_raw is not None):
            v = _percent_of_vehicle(v, base_raw, arms, ok, vehicle)
            attrs["unit"] = PCT_VEHICLE
        new[name] = xr.DataArray(v, dims=da.dims, coords=da.coords, attrs=attrs)
    return data.assign(new)


def _percent_of_vehicle(v: np.ndarray, base_raw: np.ndarray, arms: np.ndarray, ok: np.ndarray,
                        vehicle: str) -> np.ndarray:
    """% of own baseline -> % of the vehicle group's mean at the same period and time,
    through each animal's absolute level (pre-dose value in % of healthy)."""
    absolute = v * base_raw[:, :, None] / 100.0
    out = np.full(v.shape, np.nan)
    for p in range(v.shape[1]):
        sel = (arms[:, p] == vehicle) & ok
        if not sel.any():
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmean(absolute[sel, p, :], axis=0)
            out[:, p, :] = 100.0 * absolute[:, p, :] / np.where(ref == 0, np.nan, ref)
    return out


# -------------------------------------------------------------------------- statistics


def _active(arm: Arm) -> frozenset[tuple[Any, ...]]:
    cat = catalog()
    return frozenset((d.drug, d.amount, d.route, tuple(d.times_h())) for d in arm.doses
                     if cat.drug(d.drug).role != "vehicle" and d.magnitude != 0)


def _label(parts: frozenset[tuple[Any, ...]]) -> str:
    cat = catalog()
    return " + ".join(cat.drugs[p[0]].name if p[0] in cat.drugs else str(p[0])
                      for p in sorted(parts, key=lambda p: (min(p[3], default=0.0), p[0])))


def factorial_2x2(sc: Scenario) -> dict[str, Any] | None:
    """The first four arms forming a 2 x 2 factorial: vehicle, A, B and A + B (A and B
    disjoint sets of active doses). Returns ``{"arms": {arm: (a_level, b_level)},
    "factors": (name_a, name_b)}`` with A the earlier (pretreatment) factor, else None."""
    doses = {a.name: _active(a) for a in sc.arms}
    names = [a.name for a in sc.arms]
    for quad in itertools.combinations(names, 4):
        empty = [n for n in quad if not doses[n]]
        if len(empty) != 1:
            continue
        rest = sorted((n for n in quad if doses[n]), key=lambda n: len(doses[n]))
        a, b, ab = rest
        if not doses[a] or not doses[b] or doses[a] & doses[b]:
            continue
        if doses[a] | doses[b] != doses[ab]:
            continue
        first = {n: min(min(p[3], default=0.0) for p in doses[n]) for n in (a, b)}
        if first[b] < first[a]:
            a, b = b, a
        return {"arms": {empty[0]: (0, 0), a: (1, 0), b: (0, 1), ab: (1, 1)},
                "factors": (_label(doses[a]), _label(doses[b]))}
    return None


def _stats_readouts(sc: Scenario, data: xr.Dataset) -> list[str]:
    return [r for r in sc.outputs.readouts
            if r in data and data[r].dims == ("subject", "period", "time")]


def _test_row(base: tuple[Any, ...], test: str, comparison: str, stat_name: str, stat: float,
              df: str, p: float = np.nan, p_adj: float = np.nan,
              note: str = "") -> tuple[Any, ...]:
    return (*base, test, comparison, stat_name, float(stat), df, float(p), float(p_adj), note)


def group_statistics(sc: Scenario, data: xr.Dataset) -> dict[str, pd.DataFrame]:
    """``lab_stats`` (n, mean, SD, SEM per readout, period, time and arm) and ``lab_tests``
    (t-test or ANOVA, Tukey HSD, two-way ANOVA for a 2 x 2 factorial); see the module
    docstring."""
    ok = data["status"].values == "ok"
    arm_of = data["arm"].values[ok]
    arm_names = [a.name for a in sc.arms]
    vehicle = vehicle_arm(sc)
    fact = factorial_2x2(sc)
    times = np.asarray(data["time"].values, dtype=float)
    stat_rows: list[tuple[Any, ...]] = []
    test_rows: list[tuple[Any, ...]] = []
    for r in _stats_readouts(sc, data):
        unit = str(data[r].attrs.get("unit", ""))
        vals = np.asarray(data[r].values, dtype=float)[ok]
        for p_idx, period in enumerate(data["period"].values):
            for k, t in enumerate(times):
                groups: dict[str, np.ndarray] = {}
                for arm in arm_names:
                    x = vals[arm_of[:, p_idx] == arm, p_idx, k]
                    x = x[np.isfinite(x)]
                    if x.size:
                        groups[arm] = x
                if not groups:
                    continue
                base = (r, unit, int(period), float(t))
                for arm, x in groups.items():
                    sd = float(np.std(x, ddof=1)) if x.size > 1 else np.nan
                    stat_rows.append((*base, arm, int(x.size), float(np.mean(x)), sd,
                                      sd / np.sqrt(x.size) if x.size > 1 else np.nan))
                with warnings.catch_warnings():  # near-constant groups: the note says so
                    warnings.simplefilter("ignore", RuntimeWarning)
                    test_rows += _tests(base, groups, vehicle, fact)
    return {"lab_stats": pd.DataFrame(stat_rows, columns=STATS_COLUMNS),
            "lab_tests": pd.DataFrame(test_rows, columns=TESTS_COLUMNS)}


def _degenerate(groups: dict[str, np.ndarray]) -> str:
    """Why no test can be made ("" if one can)."""
    if len(groups) < 2:
        return "one group"
    if min(x.size for x in groups.values()) < 2:
        return "a group has fewer than 2 animals"
    scale = max(1.0, max(float(np.abs(x).max()) for x in groups.values()))
    if all(np.ptp(x) <= 1e-12 * scale for x in groups.values()):
        return "no within-group variance (variability = false?)"
    return ""


def _pair(a: str, b: str, vehicle: str | None) -> tuple[str, str]:
    """Orientation of a comparison: the vehicle arm second."""
    return (b, a) if a == vehicle else (a, b)


def _tests(base: tuple[Any, ...], groups: dict[str, np.ndarray], vehicle: str | None,
           fact: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    names = list(groups)
    why = _degenerate(groups)
    if len(names) < 2:
        return []
    if len(names) == 2:
        a, b = _pair(names[1], names[0], vehicle)
        if why:
            return [_test_row(base, "Welch t-test", f"{a} vs {b}", "t", np.nan, "", note=why)]
        x, y = groups[a], groups[b]
        res = stats.ttest_ind(x, y, equal_var=False)
        vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
        dfw = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
        return [_test_row(base, "Welch t-test", f"{a} vs {b}", "t", float(res.statistic),
                          f"{dfw:.3g}", p=float(res.pvalue))]
    n_tot = sum(x.size for x in groups.values())
    df1 = f"{len(names) - 1}, {n_tot - len(names)}"
    if why:
        return [_test_row(base, "one-way ANOVA", "all arms", "F", np.nan, df1, note=why)]
    rows = []
    samples = [groups[n] for n in names]
    f = stats.f_oneway(*samples)
    rows.append(_test_row(base, "one-way ANOVA", "all arms", "F", float(f.statistic), df1,
                          p=float(f.pvalue)))
    tk = stats.tukey_hsd(*samples)
    for i, j in itertools.combinations(range(len(names)), 2):
        a, b = _pair(names[j], names[i], vehicle)
        ia, ib = names.index(a), names.index(b)
        diff = float(np.mean(groups[a]) - np.mean(groups[b]))
        rows.append(_test_row(base, "Tukey HSD", f"{a} vs {b}", "mean difference", diff,
                              f"{n_tot - len(names)}", p_adj=float(tk.pvalue[ia, ib])))
    if fact is not None and all(n in groups for n in fact["arms"]):
        rows += _two_way(base, groups, fact)
    return rows


def _two_way(base: tuple[Any, ...], groups: dict[str, np.ndarray],
             fact: dict[str, Any]) -> list[tuple[Any, ...]]:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    y, fa, fb = [], [], []
    for arm, (la, lb) in fact["arms"].items():
        y += list(groups[arm])
        fa += [la] * groups[arm].size
        fb += [lb] * groups[arm].size
    frame = pd.DataFrame({"y": y, "a": fa, "b": fb})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = anova_lm(smf.ols("y ~ C(a) * C(b)", data=frame).fit(), typ=2)
    name_a, name_b = fact["factors"]
    resid = int(table.loc["Residual", "df"])
    labels = {"C(a)": f"{name_a} (pretreatment)", "C(b)": f"{name_b} (treatment)",
              "C(a):C(b)": f"{name_a} x {name_b} (interaction)"}
    arms = ", ".join(fact["arms"])
    return [_test_row(base, "two-way ANOVA", label, "F", float(table.loc[term, "F"]),
                      f"{int(table.loc[term, 'df'])}, {resid}",
                      p=float(table.loc[term, "PR(>F)"]), note=f"2 x 2: {arms}")
            for term, label in labels.items()]


def significance_vs(tests: pd.DataFrame, readout: str, period: int, time_h: float,
                    control: str) -> dict[str, float]:
    """p of each arm against ``control`` at one readout, period and time: Tukey-adjusted
    where an ANOVA was made, the Welch p with two arms."""
    sel = tests[(tests["readout"] == readout) & (tests["period"] == period)
                & np.isclose(tests["time_h"], time_h)]
    out: dict[str, float] = {}
    suffix = f" vs {control}"
    for _, row in sel.iterrows():
        comp = str(row["comparison"])
        if row["test"] not in ("Tukey HSD", "Welch t-test") or not comp.endswith(suffix):
            continue
        p = row["p_adjusted"] if row["test"] == "Tukey HSD" else row["p"]
        if np.isfinite(p):
            out[comp[: -len(suffix)]] = float(p)
    return out


def stars(p: float) -> str:
    """Significance mark: * p < 0.05, ** < 0.01, *** < 0.001, "" otherwise."""
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""

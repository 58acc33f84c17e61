"""Measurement models: rating scales and rodent behaviour read off the mood drive.

Human ratings: each subject has a trait baseline MADRS (inclusion applied like a trial)
and HAM-D17. At time t the fractional improvement is

    r = (mood - mood_0) / (1 - mood_0)
    relief = relief_max * share * sign(r) * hill(|r|, relief_r50, relief_n)
    improvement = 1 - (1 - relief) * (1 - placebo(t))

where ``mood_0`` is the subject's mood drive before the first period (so carry-over into
period 2 shows), ``share`` the patient's share of symptoms that synaptic recovery can
relieve (logit-normal across patients). The two parts combine by independent action:
expectancy relieves a share of what synaptic recovery leaves, so they never add up to more
than the whole score. The placebo/expectancy term rises after each
period's first dose and wanes, scaled by the subject's expectancy and by the perceived
drug effect (sedation, dissociation: why midazolam is a stronger placebo than saline).
Scores get rater noise and day-to-day fluctuation. Rodent tests: FST immobility (share
of the 240 scored seconds, logistic in the mood drive) and NSF latency (exponential)
fall, sucrose preference rises linearly with the mood drive, with between-animal noise.
Random draws use each subject's own stream.

The constants come from catalog/population.toml (``ratings``, ``behaviour``); a dataset
variable ``constant:population.<section>.<name>`` (dims ``subject``) replaces one of them
subject by subject (a sensitivity sample: :func:`ketasim.experiments.run.simulate_columns`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ketasim.catalog import catalog
from ketasim.population import _pv, rng_for

if TYPE_CHECKING:  # the scenario contract sits above the experiments layer
    from ketasim.scenario import Scenario

_RATING, _BEHAVIOUR = 5, 6
FST_SCORED_S = 240.0  # last 4 min of a 6-min forced swim test
CONSTANT_PREFIX = "constant:"


def _c(data: xr.Dataset, section: str, name: str) -> Any:
    """Constant ``section.name``: the catalog value, or the per-subject values the dataset
    carries for it (a DataArray over ``subject``, without the subject coordinate)."""
    key = f"{CONSTANT_PREFIX}population.{section}.{name}"
    if key in data.data_vars:
        return xr.DataArray(np.asarray(data[key].values, float), dims="subject")
    return _pv(section, name)


def _each(v: Any, n: int) -> np.ndarray:
    """A constant as one value per subject (numpy, shape (n,))."""
    return np.broadcast_to(np.asarray(v, float), (n,))


def _noise(seed: int, subjects: np.ndarray, shape: tuple[int, ...], purpose: int,
           extra: int = 0) -> np.ndarray:
    out = np.empty((len(subjects), *shape))
    for k, s in enumerate(subjects):
        out[k] = rng_for(seed, int(s), purpose, extra).standard_normal(shape)
    return out


def _trait_madrs(seed: int, subjects: np.ndarray, minimum: float | None,
                 variability: bool, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    out = np.empty(len(subjects))
    for k, s in enumerate(subjects):
        rng = rng_for(seed, int(s), _RATING, 99)
        mean, sd = float(means[k]), float(sds[k])
        v = mean
        for _ in range(1000):  # screening: redraw until the inclusion criterion is met
            v = float(np.clip(rng.normal(mean, sd), 0, 60)) if variability else mean
            if minimum is None or v >= minimum:
                break
        out[k] = v
    return out


def _expectancy_course(sc: Scenario, data: xr.Dataset, times: np.ndarray, onset: np.ndarray,
                       decay: np.ndarray) -> xr.DataArray:
    """Time course (subject, period, time) of expectancy: each dose of the period's arm
    renews it (rise over ``onset``, wane over ``decay``, h, one value per subject); the
    strongest dose so far counts."""
    doses = {a.name: np.array(sorted({t for d in a.doses for t in d.times_h()}))
             for a in sc.arms}
    arms = data["arm"].values  # (subject, period)
    out = np.zeros((*arms.shape, times.size))
    for (on, de), rows in _groups(onset, decay).items():
        for name, at in doses.items():
            s = np.clip(times[None, :] - at[:, None], 0.0, None)  # (dose, time)
            k = np.where(times[None, :] >= at[:, None],
                         (1 - np.exp(-s / on)) * np.exp(-s / de), 0.0).max(axis=0)
            sel = np.zeros(arms.shape, bool)
            sel[rows] = arms[rows] == name
            out[sel] = k
    return xr.DataArray(out, dims=("subject", "period", "time"))


def _groups(*values: np.ndarray) -> dict[tuple[float, ...], np.ndarray]:
    """Subjects grouped by equal values (one group when the constants are the catalog's)."""
    keys = np.stack([np.asarray(v, float) for v in values], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return {tuple(float(x) for x in u): np.nonzero(inverse.ravel() == i)[0]
            for i, u in enumerate(uniq)}


def _synaptic_share(seed: int, subjects: np.ndarray, variability: bool,
                    median: Any = None, spread: Any = None) -> xr.DataArray:
    """Each patient's share of symptoms that synaptic recovery can relieve, (subject,):
    logit-normal around ``relief_share_median`` (spread ``relief_share_spread`` on the
    logit scale), so that some patients' depression hardly depends on the synaptic deficit
    ketamine repairs and others' mostly does (bimodal response)."""
    median = _pv("ratings", "relief_share_median") if median is None else median
    spread = _pv("ratings", "relief_share_spread") if spread is None else spread
    q = np.asarray(median, float)
    z = _noise(seed, subjects, (), _RATING, 4) if variability else np.zeros(len(subjects))
    logit = np.log(q / (1 - q)) + np.asarray(spread, float) * z
    return xr.DataArray(1 / (1 + np.exp(-logit)), dims="subject")


def _relief(mood: xr.DataArray, mood0: xr.DataArray, share: xr.DataArray,
            k: dict[str, Any] | None = None) -> xr.DataArray:
    """Fractional symptom improvement from the mood drive (any shape with ``subject``).

    ``r`` is the relative recovery of the mood drive from its level before the first
    period (0 = unchanged, 1 = healthy). Relief is a steep Hill step in ``r`` (signed: a
    fall of the mood drive below its baseline worsens symptoms the same way), scaled by
    the patient's share: symptoms lift once synaptic function has recovered past a
    threshold and return when it falls back below it, so that the benefit of one infusion
    holds for days and then ends within a few days.
    """
    r = (mood - mood0) / (1 - mood0).clip(min=0.05)
    if k is None:  # the catalog's constants
        k = {name: _pv("ratings", name) for name in ("relief_n", "relief_r50", "relief_max")}
    n, r50 = k["relief_n"], k["relief_r50"]
    a = abs(r)
    step = np.sign(r) * a ** n / (r50 ** n + a ** n)
    return k["relief_max"] * share * step


def human_scores(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    pop = sc.population
    subj = data["subject"].values
    n = len(subj)
    k = {name: _c(data, "ratings", name) for name in catalog().population["ratings"]}
    mood0 = data["mood@baseline"].isel(period=0)
    times = data["time"].values
    kin = _expectancy_course(sc, data, times, _each(k["placebo_onset"], n),
                             _each(k["placebo_decay"], n))
    perceived = data["perceived_effect"]  # model state: peak felt so far, fading
    expect = np.array(_each(k["placebo_mean"], n))
    if pop.variability:
        expect += _each(k["placebo_sd"], n) * _noise(sc.seed, subj, (), _RATING, 1)
    if sc.design.blinding == "open_label":
        expect *= _each(k["open_label_gain"], n)  # patients know they get the drug
    expect_da = xr.DataArray(expect, dims="subject")
    placebo = expect_da * (1 + k["placebo_active_gain"] * perceived) * kin
    share = _synaptic_share(sc.seed, subj, pop.variability, k["relief_share_median"],
                            k["relief_share_spread"])
    # independent action: expectancy relieves a share of the symptoms that synaptic
    # recovery leaves, so the two cannot add up to more than the whole score
    improvement = 1 - (1 - _relief(data["mood"], mood0, share, k)) * (1 - placebo)
    trait = _trait_madrs(sc.seed, subj, pop.madrs_min, pop.variability,
                         _each(k["madrs_mean"], n), _each(k["madrs_sd"], n))
    trait_da = xr.DataArray(trait, dims="subject")
    noise_sd = np.hypot(_each(k["rater_sd"], n), _each(k["fluctuation_sd"], n))
    shape = (data.sizes["period"], data.sizes["time"] + 1)
    sd = noise_sd[:, None, None] if pop.variability else 0.0
    hamd = _each(k["hamd_per_madrs"], n)
    eps = _noise(sc.seed, subj, shape, _RATING, 2) * sd
    eps_h = _noise(sc.seed, subj, shape, _RATING, 3) * sd * hamd[:, None, None]
    base_imp = _relief(data["mood@baseline"], mood0, share, k)
    out = {}
    for scale, trait_s, e in (("madrs", trait_da, eps),
                              ("hamd17", trait_da * xr.DataArray(hamd, dims="subject"), eps_h)):
        top = 60.0 if scale == "madrs" else 52.0
        base = (trait_s * (1 - base_imp) + xr.DataArray(e[:, :, 0], dims=("subject", "period")))
        score = trait_s * (1 - improvement) + xr.DataArray(e[:, :, 1:],
                                                           dims=("subject", "period", "time"))
        out[scale] = score.clip(0, top)
        out[f"{scale}@baseline"] = base.clip(0, top)
    return _endpoints(sc, data, out)


def _endpoints(sc: Scenario, data: xr.Dataset, s: dict[str, xr.DataArray]) -> xr.Dataset:
    primary = getattr(sc.outputs, "primary_scale", "madrs")
    thr = float(getattr(sc.outputs, "response_threshold", 50.0)) / 100.0
    remit = float(getattr(sc.outputs, "remission_madrs", 10.0))
    p, p0 = s[primary], s[f"{primary}@baseline"]
    response = (p <= (1 - thr) * p0).astype(float)
    rem_thr = remit if primary == "madrs" else 7.0
    remission = (p <= rem_thr).astype(float)
    data = data.assign({
        "madrs": s["madrs"].assign_attrs(unit="points"),
        "hamd17": s["hamd17"].assign_attrs(unit="points"),
        "madrs.change": (s["madrs"] - s["madrs@baseline"]).assign_attrs(unit="points"),
        "hamd17.change": (s["hamd17"] - s["hamd17@baseline"]).assign_attrs(unit="points"),
        "response": response.assign_attrs(unit="fraction"),
        "remission": remission.assign_attrs(unit="fraction"),
        "relapse_free": relapse_free(response, _treatment_end(sc, data)).assign_attrs(
            unit="fraction"),
    })
    return data


def _treatment_end(sc: Scenario, data: xr.DataArray | xr.Dataset) -> np.ndarray:
    """Index of the first rating at or after each (subject, period)'s last dose."""
    last = {a.name: max(max(d.times_h()) for d in a.doses) for a in sc.arms}
    times = data["time"].values
    arms = data["arm"].values
    return np.vectorize(lambda a: int(np.searchsorted(times, last[a])))(arms)


def relapse_free(response: xr.DataArray, start: np.ndarray | None = None) -> xr.DataArray:
    """Among responders at the end of treatment, 1 until relapse and 0 after; NaN for the
    others and before the end of treatment.

    ``start`` (subject, period) indexes the first rating at or after the last dose;
    relapse is no longer meeting the response criterion at two consecutive ratings.
    """
    r = response.values
    out = np.full(r.shape, np.nan)
    for idx in np.ndindex(r.shape[:-1]):
        row = r[idx]
        first = 0 if start is None else int(start[idx])
        if first >= row.size or row[first] < 0.5:
            continue
        out[idx][first:] = 1.0
        for k in range(first + 1, row.size - 1):
            if row[k] < 0.5 and row[k + 1] < 0.5:
                out[idx][k + 1:] = 0.0
                break
    return xr.DataArray(out, dims=response.dims, coords=response.coords)


def rodent_behaviour(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    subj = data["subject"].values
    mood = data["mood"]
    shape = (data.sizes["period"], data.sizes["time"])
    z = [_noise(sc.seed, subj, shape, _BEHAVIOUR, k) if sc.population.variability
         else np.zeros((len(subj), *shape)) for k in range(3)]
    dims = ("subject", "period", "time")
    k = {name: _c(data, "behaviour", name) for name in catalog().population["behaviour"]}
    fst0 = k[f"fst_healthy_{'mouse' if sc.species == 'mouse' else 'rat'}"]
    # share of the 240 scored seconds spent immobile: logistic in the mood drive, so it
    # saturates (never above 240 s) for deeply stressed animals
    logit0 = np.log(fst0 / (FST_SCORED_S - fst0))
    fst = FST_SCORED_S / (1 + np.exp(-(logit0 - k["fst_gain"] * (mood - 1)))) + \
        k["fst_sd"] * xr.DataArray(z[0], dims=dims)
    spt = k["spt_healthy"] - k["spt_gain"] * (1 - mood) + \
        k["spt_sd"] * xr.DataArray(z[1], dims=dims)
    nsf = k["nsf_healthy"] * np.exp(
        k["nsf_gain"] * (1 - mood) + k["nsf_sd"] * xr.DataArray(z[2], dims=dims))
    assert isinstance(fst, xr.DataArray) and isinstance(nsf, xr.DataArray)
    return data.assign({
        "fst.immobility": fst.clip(0, 240).assign_attrs(unit="s"),
        "sucrose_preference": spt.clip(0, 100).assign_attrs(unit="%"),
        "nsf.latency": nsf.clip(0, 600).assign_attrs(unit="s"),
    })


def apply(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    """Add the measurement readouts the species has (scores or behaviour)."""
    if sc.species == "human":
        return human_scores(sc, data)
    return rodent_behaviour(sc, data)

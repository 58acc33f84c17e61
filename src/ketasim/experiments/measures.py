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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ketasim.population import _pv, rng_for

if TYPE_CHECKING:  # the scenario contract sits above the experiments layer
    from ketasim.scenario import Scenario

_RATING, _BEHAVIOUR = 5, 6
FST_SCORED_S = 240.0  # last 4 min of a 6-min forced swim test


def _noise(seed: int, subjects: np.ndarray, shape: tuple[int, ...], purpose: int,
           extra: int = 0) -> np.ndarray:
    out = np.empty((len(subjects), *shape))
    for k, s in enumerate(subjects):
        out[k] = rng_for(seed, int(s), purpose, extra).standard_normal(shape)
    return out


def _trait_madrs(seed: int, subjects: np.ndarray, minimum: float | None,
                 variability: bool) -> np.ndarray:
    mean, sd = _pv("ratings", "madrs_mean"), _pv("ratings", "madrs_sd")
    out = np.empty(len(subjects))
    for k, s in enumerate(subjects):
        rng = rng_for(seed, int(s), _RATING, 99)
        v = mean
        for _ in range(1000):  # screening: redraw until the inclusion criterion is met
            v = float(np.clip(rng.normal(mean, sd), 0, 60)) if variability else mean
            if minimum is None or v >= minimum:
                break
        out[k] = v
    return out


def _expectancy_course(sc: Scenario, data: xr.Dataset, times: np.ndarray, onset: float,
                       decay: float) -> xr.DataArray:
    """Time course (subject, period, time) of expectancy: each dose of the period's arm
    renews it (rise over ``onset``, wane over ``decay``); the strongest dose so far counts."""
    doses = {a.name: np.array(sorted({t for d in a.doses for t in d.times_h()}))
             for a in sc.arms}
    arms = data["arm"].values  # (subject, period)
    out = np.zeros((*arms.shape, times.size))
    for name, at in doses.items():
        s = np.clip(times[None, :] - at[:, None], 0.0, None)  # (dose, time)
        k = np.where(times[None, :] >= at[:, None],
                     (1 - np.exp(-s / onset)) * np.exp(-s / decay), 0.0).max(axis=0)
        out[arms == name] = k
    return xr.DataArray(out, dims=("subject", "period", "time"))


def _synaptic_share(seed: int, subjects: np.ndarray, variability: bool) -> xr.DataArray:
    """Each patient's share of symptoms that synaptic recovery can relieve, (subject,):
    logit-normal around ``relief_share_median`` (spread ``relief_share_spread`` on the
    logit scale), so that some patients' depression hardly depends on the synaptic deficit
    ketamine repairs and others' mostly does (bimodal response)."""
    q = _pv("ratings", "relief_share_median")
    z = _noise(seed, subjects, (), _RATING, 4) if variability else np.zeros(len(subjects))
    logit = np.log(q / (1 - q)) + _pv("ratings", "relief_share_spread") * z
    return xr.DataArray(1 / (1 + np.exp(-logit)), dims="subject")


def _relief(mood: xr.DataArray, mood0: xr.DataArray, share: xr.DataArray) -> xr.DataArray:
    """Fractional symptom improvement from the mood drive (any shape with ``subject``).

    ``r`` is the relative recovery of the mood drive from its level before the first
    period (0 = unchanged, 1 = healthy). Relief is a steep Hill step in ``r`` (signed: a
    fall of the mood drive below its baseline worsens symptoms the same way), scaled by
    the patient's share: symptoms lift once synaptic function has recovered past a
    threshold and return when it falls back below it, so that the benefit of one infusion
    holds for days and then ends within a few days.
    """
    r = (mood - mood0) / (1 - mood0).clip(min=0.05)
    n, r50 = _pv("ratings", "relief_n"), _pv("ratings", "relief_r50")
    a = abs(r)
    step = np.sign(r) * a ** n / (r50 ** n + a ** n)
    return _pv("ratings", "relief_max") * share * step


def human_scores(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    pop = sc.population
    subj = data["subject"].values
    mood0 = data["mood@baseline"].isel(period=0)
    times = data["time"].values
    onset, decay = _pv("ratings", "placebo_onset"), _pv("ratings", "placebo_decay")
    kin = _expectancy_course(sc, data, times, onset, decay)
    perceived = data["perceived_effect"]  # model state: peak felt so far, fading
    expect = np.full(len(subj), _pv("ratings", "placebo_mean"))
    if pop.variability:
        expect += _pv("ratings", "placebo_sd") * _noise(sc.seed, subj, (), _RATING, 1)
    if sc.design.blinding == "open_label":
        expect *= _pv("ratings", "open_label_gain")  # patients know they get the drug
    expect_da = xr.DataArray(expect, dims="subject")
    placebo = expect_da * (1 + _pv("ratings", "placebo_active_gain") * perceived) * \
        kin
    share = _synaptic_share(sc.seed, subj, pop.variability)
    # independent action: expectancy relieves a share of the symptoms that synaptic
    # recovery leaves, so the two cannot add up to more than the whole score
    improvement = 1 - (1 - _relief(data["mood"], mood0, share)) * (1 - placebo)
    trait = _trait_madrs(sc.seed, subj, pop.madrs_min, pop.variability)
    trait_da = xr.DataArray(trait, dims="subject")
    noise_sd = float(np.hypot(_pv("ratings", "rater_sd"), _pv("ratings", "fluctuation_sd")))
    shape = (data.sizes["period"], data.sizes["time"] + 1)
    sd = noise_sd if pop.variability else 0.0
    eps = _noise(sc.seed, subj, shape, _RATING, 2) * sd
    eps_h = _noise(sc.seed, subj, shape, _RATING, 3) * sd * _pv("ratings", "hamd_per_madrs")
    base_imp = _relief(data["mood@baseline"], mood0, share)
    out = {}
    for scale, trait_s, e in (("madrs", trait_da, eps),
                              ("hamd17", trait_da * _pv("ratings", "hamd_per_madrs"), eps_h)):
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
    fst0 = _pv("behaviour", f"fst_healthy_{'mouse' if sc.species == 'mouse' else 'rat'}")
    # share of the 240 scored seconds spent immobile: logistic in the mood drive, so it
    # saturates (never above 240 s) for deeply stressed animals
    logit0 = np.log(fst0 / (FST_SCORED_S - fst0))
    fst = FST_SCORED_S / (1 + np.exp(-(logit0 - _pv("behaviour", "fst_gain") * (mood - 1)))) + \
        _pv("behaviour", "fst_sd") * xr.DataArray(z[0], dims=dims)
    spt = _pv("behaviour", "spt_healthy") - _pv("behaviour", "spt_gain") * (1 - mood) + \
        _pv("behaviour", "spt_sd") * xr.DataArray(z[1], dims=dims)
    nsf = _pv("behaviour", "nsf_healthy") * np.exp(
        _pv("behaviour", "nsf_gain") * (1 - mood) + _pv("behaviour", "nsf_sd")
        * xr.DataArray(z[2], dims=dims))
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

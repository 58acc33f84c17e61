"""The rating model's symptom map: a Hill step in the relative recovery of the mood drive,
scaled by each patient's synaptic share (logit-normal), checked against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ketasim.experiments.measures import _relief, _synaptic_share
from ketasim.population import _pv


def _mood(r: list[float], mood0: float = 0.6) -> tuple[xr.DataArray, xr.DataArray]:
    """Mood drives whose relative recovery from ``mood0`` is ``r`` (one subject, times)."""
    m0 = xr.DataArray([mood0], dims="subject")
    mood = xr.DataArray([[mood0 + x * (1 - mood0) for x in r]], dims=("subject", "time"))
    return mood, m0


def test_relief_is_the_signed_hill_step_of_relative_recovery() -> None:
    r50, n, top = (_pv("ratings", k) for k in ("relief_r50", "relief_n", "relief_max"))
    share = xr.DataArray([0.5], dims="subject")
    rs = [0.0, r50, 2 * r50, -r50, 1.0]
    got = _relief(*_mood(rs), share).values[0]
    want = [top * 0.5 * np.sign(x) * abs(x) ** n / (r50 ** n + abs(x) ** n) for x in rs]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[0] == 0.0  # no change of the mood drive, no relief
    assert got[1] == pytest.approx(top * 0.5 / 2)  # half the step at r50
    assert got[3] == pytest.approx(-got[1])  # a fall below baseline worsens symmetrically


def test_relief_is_steep_around_the_threshold() -> None:
    """Half the threshold gives almost nothing, twice it almost the whole step: benefit holds
    while synaptic function stays recovered and ends within days once it falls back."""
    r50 = _pv("ratings", "relief_r50")
    share = xr.DataArray([1.0], dims="subject")
    low, high = _relief(*_mood([r50 / 2, 2 * r50]), share).values[0] / _pv("ratings",
                                                                          "relief_max")
    assert low < 0.02
    assert high > 0.98


def test_synaptic_share_is_logit_normal_around_its_median() -> None:
    subjects = np.arange(4000)
    share = _synaptic_share(7, subjects, True).values
    q, s = _pv("ratings", "relief_share_median"), _pv("ratings", "relief_share_spread")
    logit = np.log(share / (1 - share))
    assert np.median(share) == pytest.approx(q, abs=0.02)
    assert logit.std() == pytest.approx(s, rel=0.05)
    assert ((share > 0) & (share < 1)).all()


def test_synaptic_share_belongs_to_the_subject() -> None:
    """Each subject's own stream: a subset or another order gives the same shares; without
    variability every patient has the median share."""
    full = _synaptic_share(3, np.arange(50), True).values
    part = _synaptic_share(3, np.array([40, 7, 12]), True).values
    np.testing.assert_array_equal(part, full[[40, 7, 12]])
    assert not np.allclose(full, _synaptic_share(4, np.arange(50), True).values)
    typical = _synaptic_share(3, np.arange(5), False).values
    np.testing.assert_allclose(typical, _pv("ratings", "relief_share_median"))


def test_one_infusion_holds_for_a_week_then_ends() -> None:
    """A typical patient's simulated mood drive after one 0.5 mg/kg infusion, through the
    symptom map: past the threshold the relief holds while the mood drive decays (day 7
    keeps nearly all of day 1), then ends once it falls below it (day 14). A linear map
    of the same mood drive keeps about half at day 7 and 7 % at day 14."""
    import ketasim as ks

    sc = ks.load_scenario({
        "name": "typical single infusion", "species": "human", "seed": 5,
        "population": {"size": 1, "condition": "trd", "variability": False},
        "design": {"type": "single_group", "follow_up": "14 d"},
        "arms": [{"name": "ketamine", "doses": [{
            "drug": "ketamine", "amount": "0.5 mg/kg", "route": "iv_infusion",
            "duration": "40 min", "at": ["0 h"]}]}],
        "outputs": {"times": ["1 d", "7 d", "14 d"], "readouts": ["mood"]}})
    data = ks.run(sc).data
    mood = data["mood"].isel(period=0)
    mood0 = data["mood@baseline"].isel(period=0)
    relief = _relief(mood, mood0, xr.DataArray([1.0], dims="subject")).values[0]
    linear = ((mood - mood0) / (1 - mood0)).values[0]
    assert relief[0] > 0.5 * _pv("ratings", "relief_max")  # past the threshold at 24 h
    assert relief[1] / relief[0] > 0.9
    assert relief[2] / relief[0] < 0.05
    assert linear[1] / linear[0] < 0.7  # the mood drive itself has decayed by day 7

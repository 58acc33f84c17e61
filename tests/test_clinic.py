"""Clinical measurement of vital signs, CADSS and plasma BDNF (issue 16, item 7).

A saline arm must read the spread of the measurement errors catalogued in
catalog/clinical_measures.toml (not "0 +- 0"),.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import ketasim as ks
from ketasim.experiments import clinic

N = 2000
TIMES = np.array([0.67, 4.0, 24.0])


def _zeros(name: str) -> xr.Dataset:
    """A saline-like dataset: every true value at rest (change 0, ratio 100 %)."""
    rest = 100.0 if name == "bdnf.plasma" else 0.0
    v = np.full((N, 1, TIMES.size), rest)
    return xr.Dataset({name: (("subject", "period", "time"), v)},
                      coords={"subject": np.arange(N), "period": [1], "time": TIMES})


SC = SimpleNamespace(seed=11, population=SimpleNamespace(variability=True))


@pytest.mark.parametrize("name", ["sbp.change", "heart_rate.change", "bdnf.plasma"])
def test_saline_arm_sd_is_the_catalog_measurement_sd(name: str) -> None:
    m = clinic.measurement_table()[name]
    v = clinic.apply(SC, _zeros(name))[name].values[:, 0, 0]
    x = np.log(v / 100.0) if m.kind == "assay_ratio" else v
    s2, sigma2 = float(np.var(x, ddof=1)), m.saline_sd() ** 2
    # the sample variance of N normal values: (N-1) s^2 / sigma^2 ~ chi2(N-1)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], N - 1) * sigma2 / (N - 1)
    assert lo < s2 < hi, (name, s2, sigma2)
    assert abs(float(np.mean(x))) < 4 * m.saline_sd() / np.sqrt(N)


def test_saline_cadss_is_a_rectified_rating_error() -> None:
    m = clinic.measurement_table()["cadss"]
    v = clinic.apply(SC, _zeros("cadss"))["cadss"].values[:, 0, :].ravel()
    sd = float(m.error.value)
    assert v.min() >= 0.0 and np.mean(v == 0.0) == pytest.approx(0.5, abs=0.02)
    mean = sd / np.sqrt(2 * np.pi)  # E[max(0, Z sd)]
    assert float(np.mean(v)) == pytest.approx(mean, abs=4 * sd / np.sqrt(v.size))
    assert float(np.std(v, ddof=1)) == pytest.approx(m.saline_sd(), rel=0.05)


def test_every_measurement_is_sourced() -> None:
    for m in clinic.measurement_table().values():
        assert m.error.source and m.error.tag and m.error.value > 0


def _trial(n: int, variability: bool, arms: dict[str, str]) -> Any:
    return ks.load_scenario({
        "name": "vitals", "species": "human", "seed": 5,
        "population": {"size": n, "condition": "trd", "variability": variability},
        "design": {"type": "parallel", "follow_up": "1 d"},
        "arms": [{"name": a, "doses": [{"drug": d, "amount": "0.5 mg/kg" if d != "saline"
                                        else "0 mg/kg", "route": "iv_infusion",
                                        "at": ["0 h"], "duration": "40 min"}]}
                 for a, d in arms.items()],
        "outputs": {"times": ["40 min", "4 h"],
                    "readouts": ["cadss", "sbp.change", "heart_rate.change", "bdnf.plasma"]}})


def test_a_saline_arm_no_longer_reads_zero_and_the_typical_patient_is_exact() -> None:
    noisy = ks.run(_trial(30, True, {"saline": "saline"})).data
    exact = ks.run(_trial(2, False, {"saline": "saline"})).data
    for r in ("cadss", "sbp.change", "heart_rate.change", "bdnf.plasma"):
        assert float(np.std(noisy[r].values)) > 0.1, r
        assert float(np.std(exact[r].values)) < 1e-9, r

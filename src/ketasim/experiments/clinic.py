"""Clinical measurement of the human readouts the model gives noise-free: vital signs,
CADSS and plasma BDNF (``catalog/clinical_measures.toml``).

Per readout kind (shapes: values (subject, period, time), baselines (subject, period)):

- ``reading_difference`` (``sbp.change``, ``heart_rate.change``): every reading carries
  N(0, sd); the change is reading(t) - reading(period baseline), so the error of a change
  has SD sqrt(2) sd and a saline arm reads that spread.
- ``rating`` (``cadss``): additive N(0, sd) points per rating, floored at 0, capped at top.
- ``assay_ratio`` (``bdnf.plasma``, % of baseline): each sample x exp(sigma z),
  sigma^2 = log(1 + cv^2), so log(readout / true ratio) ~ N(0, 2 sigma^2).

Errors come from each subject's own stream (purpose :data:`_CLINIC`, one stream per
readout), so the same seed gives the same readings and a subset of subjects keeps its
values; with ``population.variability = false`` nothing is added (the typical patient,
measured exactly). Between-subject variability of the responses themselves lives in the
model's subject parameters (PK), not here.
"""

from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ketasim.catalog.schema import Sourced
from ketasim.population import rng_for

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

__all__ = ["Measurement", "apply", "measurement_table"]

_CLINIC = 8  # random-stream purpose (population 1-5, behaviour 6, assays 7)
KINDS = ("reading_difference", "rating", "assay_ratio")


@dataclass(frozen=True)
class Measurement:
    """How one human readout is measured (``catalog/clinical_measures.toml``)."""

    readout: str
    kind: str
    error: Sourced  # sd (readout unit) or cv (fraction, assay_ratio)
    top: float | None = None

    def saline_sd(self) -> float:
        """SD of this readout in a subject whose true value never moves (a saline arm):
        sqrt(2) sd for a reading difference, the rectified normal's SD for a rating, and
        for an assay ratio the SD of log(readout / 100)."""
        e = float(self.error.value)
        if self.kind == "reading_difference":
            return float(np.sqrt(2.0) * e)
        if self.kind == "rating":
            return float(e * np.sqrt(0.5 - 1.0 / (2.0 * np.pi)))
        return float(np.sqrt(2.0 * np.log1p(e**2)))


@lru_cache(maxsize=1)
def measurement_table() -> dict[str, Measurement]:
    """The measurement models by readout name (validated on first use)."""
    text = resources.files("ketasim.catalog").joinpath("clinical_measures.toml").read_text(
        "utf-8")
    out: dict[str, Measurement] = {}
    for name, m in tomllib.loads(text).items():
        kind = m.get("kind")
        if kind not in KINDS:
            raise ValueError(f"catalog/clinical_measures.toml: {name}.kind: {kind!r} is not "
                             f"one of {', '.join(KINDS)}")
        err = Sourced.model_validate(m["cv" if kind == "assay_ratio" else "sd"])
        out[name] = Measurement(name, kind, err, m.get("top"))
    return out


def _normal(seed: int, subjects: np.ndarray, shape: tuple[int, ...], readout: str
            ) -> np.ndarray:
    """Standard normal draws (subject, *shape), one stream per (subject, readout)."""
    key = zlib.crc32(readout.encode())
    out = np.empty((len(subjects), *shape))
    for k, s in enumerate(subjects):
        out[k] = rng_for(seed, int(s), _CLINIC, key).standard_normal(shape)
    return out


def measured(m: Measurement, values: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Readings of ``values`` (subject, period, time) with errors ``z`` (subject, period,
    1 + time): ``z[..., 0]`` belongs to the period's baseline reading or sample."""
    e = float(m.error.value)
    if m.kind == "reading_difference":
        return values + e * (z[..., 1:] - z[..., :1])
    if m.kind == "rating":
        return np.clip(values + e * z[..., 1:], 0.0, m.top if m.top is not None else np.inf)
    sigma = float(np.sqrt(np.log1p(e**2)))
    return values * np.exp(sigma * (z[..., 1:] - z[..., :1]))


def apply(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    """Replace each measured human readout of ``data`` by what the clinic reads."""
    if not bool(sc.population.variability):
        return data
    subj = data["subject"].values
    shape = (data.sizes["period"], data.sizes["time"] + 1)
    new: dict[str, xr.DataArray] = {}
    for name, m in measurement_table().items():
        if name not in data or data[name].dims != ("subject", "period", "time"):
            continue
        da = data[name]
        v = measured(m, np.asarray(da.values, dtype=float), _normal(sc.seed, subj, shape, name))
        new[name] = xr.DataArray(v, dims=da.dims, coords=da.coords,
                                 attrs=dict(da.attrs, measurement=m.kind,
                                            measurement_error=float(m.error.value)))
    return data.assign(new)

"""Export one scenario subject as a PEtab v1 parameter-estimation problem.

A PEtab problem (https://petab.readthedocs.io, format version 1) is a folder of files that
pyPESTO, AMICI, COPASI (basico), Data2Dynamics and others load:

- ``model.xml``: the SBML model of :mod:`ketasim.io.sbml` (states as parameters with rate
  rules, doses as events whose amounts are the parameters ``dose_<k>_amount``); initial
  values are the model's own initial expressions (initial assignments), so a changed
  parameter also changes the initial state, as it does in ketasim;
- ``conditions.tsv``: the subject's dose schedule as the condition named after the cohort
  (every dose amount, nmol) and, where the scenario has a drug-free burn-in in a stressed
  condition, the pre-equilibration condition ``burn_in`` (every dose amount 0): PEtab's
  pre-equilibration (simulate to steady state before the first measurement condition) is
  ketasim's 150-day drug-free run-in, so the burn-in is not baked in as a numeric state;
- ``observables.tsv``: each readout as the observable ``obs_<readout>`` whose formula is
  the SBML readout (``readout_<name>``), normal noise with the standard deviation given per
  measurement;
- ``measurements.tsv``: the readouts simulated by ketasim (reference engine) for that
  subject at the scenario's output times (SBML time; ketasim time = SBML time + offset,
  see ``time_offset`` in the yaml file's ``ketasim`` entry), or a supplied table;
- ``parameters.tsv``: every base model parameter at the subject's value, fixed
  (``estimate`` 0), except the ones named in ``estimate`` (bounds, log10 scale);
- ``problem.yaml``: the PEtab yaml file that ties them together.

Readouts that ketasim re-expresses as "% of baseline" are exported as the raw model
readout (the ratio to a subject's own pre-dose value is not an SBML quantity).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketasim.engine import reference
from ketasim.engine.base import OK
from ketasim.errors import ArgumentError
from ketasim.experiments.run import PreparedCohort
from ketasim.io.sbml import export_sbml, readout_id, subject_setup
from ketasim.scenario import load_scenario

BURN_IN = "burn_in"
NOISE_REL = 0.05  # default noise sd: 5 % of the observable's largest simulated |value|
DEFAULT_FOLD = 10.0  # default bounds of an estimated parameter: value / 10 .. value * 10
MEASUREMENT_COLUMNS = ("observableId", "simulationConditionId", "time", "measurement")


@dataclass(frozen=True)
class PetabExport:
    """What :func:`export_petab` wrote: the yaml file, the folder, the ids."""

    yaml: Path
    folder: Path
    condition: str
    preequilibration: str | None
    observables: dict[str, str]  # ketasim readout -> observableId
    estimated: list[str]
    time_offset: float  # ketasim time (h) = SBML/PEtab time + time_offset
    n_measurements: int


def observable_id(readout: str) -> str:
    """PEtab observable id of a ketasim readout (``plasma.ketamine`` ->
    ``obs_plasma__ketamine``)."""
    return "obs_" + readout.replace(".", "__")


def condition_id(name: str) -> str:
    """A cohort name as a PEtab condition id (letters, digits and ``_``)."""
    sid = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return sid if re.match(r"^[A-Za-z_]", sid) else f"c_{sid}"


def needs_burn_in(s: PreparedCohort) -> bool:
    """True when the subject's drug-free state is not the model's initial state: some input
    (the stress of a depressed population) is non-zero before the first event, and ketasim
    integrates a burn-in (:func:`ketasim.experiments.run.burn_in`)."""
    inp = s.protocol.inputs_at(-np.inf, s.model.input_names)
    return bool(np.any(inp))


def _readouts(s: PreparedCohort, wanted: Sequence[str] | None, sc: Any) -> list[str]:
    have = list(s.model.spec.readouts)
    if wanted is None:
        chosen = [r for r in sc.outputs.readouts if r in have]
        if not chosen:
            raise ArgumentError("readouts", f"the scenario's readouts {list(sc.outputs.readouts)}"
                                " have no model readout (rating scales and laboratory assays "
                                f"are not SBML quantities); name some of {have[:8]} ...")
        return chosen
    bad = [r for r in wanted if r not in have]
    if bad or not wanted:
        raise ArgumentError("readouts", f"{bad or list(wanted)} are not model readouts of this "
                            f"cohort; choose from {have}")
    return list(dict.fromkeys(wanted))


def simulate_measurements(s: PreparedCohort, readouts: Sequence[str], condition: str,
                          preequilibration: str | None, noise_rel: float = NOISE_REL,
                          rtol: float = 1e-8, atol: float = 1e-10) -> pd.DataFrame:
    """The subject's readouts at the cohort's output times, integrated by ketasim's
    reference engine, as a PEtab measurement table (time in SBML time: hours after the
    integration start). Noise-free values; ``noiseParameters`` is the standard deviation,
    ``noise_rel`` times the observable's largest |value| (1 where that is 0)."""
    tr = reference.simulate(s.model, s.P, s.y0, s.protocol, s.t_out, s.t_start,
                            rtol=rtol, atol=atol)
    if tr.status[0] != OK:
        from ketasim.errors import SimulationError

        raise SimulationError(f"the exported subject failed to integrate: {tr.message[0]}")
    rows: list[dict[str, Any]] = []
    for r in readouts:
        vals = []
        for k, t in enumerate(s.t_out):
            inp = s.protocol.inputs_at(t, s.model.input_names)
            ro = s.model.readouts(t, tr.y[:, :, k].T, s.P, inp)
            vals.append(float(np.asarray(ro[r]).reshape(-1)[0]))
        scale = max(abs(v) for v in vals)
        sd = noise_rel * scale if scale > 0 else 1.0
        for t, v in zip(s.t_out, vals, strict=True):
            row = {"observableId": observable_id(r), "simulationConditionId": condition,
                   "time": float(t - s.t_start), "measurement": v, "noiseParameters": sd}
            if preequilibration:
                row["preequilibrationConditionId"] = preequilibration
            rows.append(row)
    return pd.DataFrame(rows)


def _supplied(table: pd.DataFrame | str | Path, observables: Mapping[str, str],
              condition: str, pre: str | None) -> pd.DataFrame:
    df = table if isinstance(table, pd.DataFrame) else pd.read_csv(table, sep="\t")
    missing = [c for c in MEASUREMENT_COLUMNS if c not in df.columns]
    if missing:
        raise ArgumentError("measurements", f"the table lacks the PEtab columns {missing}")
    df = df.copy()
    unknown = sorted(set(df["observableId"]) - set(observables.values()))
    if unknown:
        raise ArgumentError("measurements", f"observableId {unknown} are not exported; "
                            f"observables: {sorted(observables.values())}")
    other = sorted(set(df["simulationConditionId"].astype(str)) - {condition})
    if other:
        raise ArgumentError("measurements", f"simulationConditionId {other}: the exported "
                            f"condition is {condition!r}")
    times = pd.to_numeric(df["time"], errors="coerce")
    if times.isna().any() or (times < 0).any():
        raise ArgumentError("measurements", "time must be numbers >= 0 (hours of SBML time)")
    if "noiseParameters" not in df.columns:
        raise ArgumentError("measurements", "the table needs noiseParameters (the noise sd)")
    if pre and "preequilibrationConditionId" not in df.columns:
        df["preequilibrationConditionId"] = pre
    return df


def _bounds(name: str, value: float, given: Mapping[str, tuple[float, float]]
            ) -> tuple[float, float]:
    if name in given:
        lo, hi = (float(x) for x in given[name])
    else:
        if value <= 0:
            raise ArgumentError("bounds", f"{name} has the value {value!r}: give its bounds "
                                "(no default range around a value <= 0)")
        lo, hi = value / DEFAULT_FOLD, value * DEFAULT_FOLD
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and lo <= value <= hi):
        raise ArgumentError("bounds", f"{name}: [{lo!r}, {hi!r}] must be finite, "
                            f"increasing and contain its value {value!r}")
    return lo, hi


def parameter_table(s: PreparedCohort, estimate: Sequence[str],
                    bounds: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    """Every base parameter of the model at the subject's value; the ``estimate`` ones with
    bounds (``bounds``, default value/10..value*10) on log10 scale where their lower bound
    is positive, the others fixed on linear scale."""
    names = list(s.model.spec.parameters)
    unknown = [p for p in estimate if p not in names]
    if unknown:
        raise ArgumentError("estimate", f"{unknown} are not base parameters of this model; "
                            "see docs/model.md")
    extra = sorted(set(bounds) - set(estimate))
    if extra:
        raise ArgumentError("bounds", f"{extra} are not estimated")
    rows = []
    for i, name in enumerate(names):
        value = float(s.P[i, 0])
        par = s.model.spec.parameters[name]
        if name in estimate:
            lo, hi = _bounds(name, value, bounds)
            scale = "log10" if lo > 0 else "lin"
        else:
            lo, hi, scale = value, value, "lin"
        rows.append({"parameterId": name, "parameterName": name, "parameterScale": scale,
                     "lowerBound": lo, "upperBound": hi, "nominalValue": value,
                     "estimate": int(name in estimate), "unit": par.unit, "source": par.source})
    return pd.DataFrame(rows)


def export_petab(scenario: Any, out: str | Path, *, subject: int = 0, cohort: int | str = 0,
                 estimate: Sequence[str] = (), bounds: Mapping[str, tuple[float, float]]
                 | None = None, readouts: Sequence[str] | None = None,
                 measurements: pd.DataFrame | str | Path | None = None,
                 noise_rel: float = NOISE_REL, overwrite: bool = False) -> PetabExport:
    """Write a PEtab v1 problem for one subject of a scenario into the folder ``out``.

    ``estimate``: base parameter names to estimate (bounds from ``bounds`` by name, default
    value/10..value*10); ``readouts``: model readouts to observe (default: the scenario's
    readouts that are model readouts); ``measurements``: a PEtab measurement table (a
    DataFrame or a TSV path) to use instead of ketasim's simulation; ``noise_rel``: the
    simulated data's noise sd as a fraction of each observable's largest value. The folder
    is written whole or not at all (files go to a temporary folder first).
    """
    import petab.v1 as petab

    target = Path(out)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ArgumentError("out", f"{target} exists and is not empty; use overwrite=True")
    if not (math.isfinite(noise_rel) and noise_rel > 0):
        raise ArgumentError("noise_rel", f"{noise_rel!r} must be a number > 0")
    sc = load_scenario(scenario)
    s = subject_setup(sc, subject, cohort)
    chosen = _readouts(s, readouts, sc)
    observables = {r: observable_id(r) for r in chosen}
    params = parameter_table(s, list(estimate), dict(bounds or {}))
    cond = condition_id(s.cohort.name)
    pre = BURN_IN if needs_burn_in(s) else None

    tmp = Path(tempfile.mkdtemp(prefix=".petab-", dir=target.parent if target.parent.exists()
                                else None))
    try:
        names = list(s.model.spec.parameters)
        info = export_sbml(s.model.spec, s.protocol, tmp / "model.xml", subject=0,
                           parameters={k: float(s.P[i, 0]) for i, k in enumerate(names)},
                           start_time=s.t_start, model_id=condition_id(
                               f"ketasim_{sc.species}_{s.cohort.name}"),
                           description=f"{sc.name} -- cohort {s.cohort.name!r}, subject "
                           f"{int(s.cohort.subjects[0])}, species {sc.species}",
                           derived_rules=True)
        doses = info.dose_parameters
        amounts = {d: float(np.atleast_1d(e.amount)[0])
                   for d, e in zip(doses, s.protocol.events, strict=True)}
        conds = [{"conditionId": cond, "conditionName": s.cohort.name, **amounts}]
        if pre:  # no dose and no signal while the model settles (events may fire then)
            quiet = {d: 0.0 for d in doses} | _signals_at_baseline(s)
            conds.append({"conditionId": pre, "conditionName": "drug-free burn-in "
                          "(steady state in the population's condition)", **quiet})
        cond_df = pd.DataFrame(conds).set_index("conditionId")
        obs_df = pd.DataFrame([
            {"observableId": oid, "observableName": r, "observableFormula": readout_id(r),
             "observableTransformation": "lin", "noiseFormula": f"noiseParameter1_{oid}",
             "noiseDistribution": "normal"} for r, oid in observables.items()
        ]).set_index("observableId")
        if measurements is None:
            meas = simulate_measurements(s, chosen, cond, pre, noise_rel)
        else:
            meas = _supplied(measurements, observables, cond, pre)
        par_df = params.set_index("parameterId")
        par_df = par_df.drop(index=[d for d in doses if d in par_df.index])
        petab.write_condition_df(cond_df, tmp / "conditions.tsv")
        petab.write_observable_df(obs_df, tmp / "observables.tsv")
        petab.write_measurement_df(meas, tmp / "measurements.tsv")
        petab.write_parameter_df(par_df, tmp / "parameters.tsv")
        _write_yaml(tmp / "problem.yaml", info.time_offset, sc.name)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PetabExport(target / "problem.yaml", target, cond, pre, observables,
                       list(estimate), info.time_offset, len(meas))


def _signals_at_baseline(s: PreparedCohort) -> dict[str, float]:
    """The SBML signal-value parameters (``signal_<input>_<j>_value``, numbered as the
    exporter numbers them: by start time per input) set to the input's baseline."""
    out: dict[str, float] = {}
    base = s.protocol.inputs_at(-np.inf, s.model.input_names)
    for i, name in enumerate(s.model.input_names):
        mine = [g for g in s.protocol.signals if g.name == name]
        for j in range(len(mine)):
            out[f"signal_{name}_{j}_value"] = float(np.atleast_1d(base[i])[0])
    return out


def _write_yaml(path: Path, offset: float, name: str) -> None:
    """The PEtab v1 yaml file; ``ketasim`` records the time offset and the scenario (extra
    keys are allowed by the format)."""
    import yaml

    doc = {
        "format_version": 1,
        "parameter_file": "parameters.tsv",
        "problems": [{"sbml_files": ["model.xml"], "condition_files": ["conditions.tsv"],
                      "measurement_files": ["measurements.tsv"],
                      "observable_files": ["observables.tsv"]}],
        "ketasim": {"scenario": name, "time_offset_h": offset,
                    "time": "ketasim time (h) = PEtab time + time_offset_h"},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

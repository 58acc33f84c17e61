"""Write calibration/synthetic/measurements.tsv: scenario.toml simulated by ketasim with
the parameter values TRUE (the catalog's esketamine clearance x 1.5 and central volume x
0.7 for the mouse), sampled at the scenario's output times, with 5 % normal noise
(seed 7). tests/test_calibrate.py recovers TRUE from this file.

    python3 calibration/synthetic/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ketasim.analysis.calibrate import BatchedObjective, FitParameter
from ketasim.io.petab import observable_id
from ketasim.scenario import load_scenario

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenario.toml"
FACTORS = {"esketamine_cl_ref": 1.5, "esketamine_v1_ref": 0.7}
NOISE_CV = 0.05
SEED = 7


def true_values() -> dict[str, float]:
    """TRUE: the catalog's values times FACTORS (read from the model, not typed in)."""
    from ketasim.analysis.calibrate import _first_subject
    from ketasim.experiments.run import prepare_cohort

    sc = load_scenario(SCENARIO)
    s = prepare_cohort(sc, _first_subject(sc))
    names = list(s.model.spec.parameters)
    return {k: float(s.P[names.index(k), 0]) * f for k, f in FACTORS.items()}


def main() -> None:
    sc = load_scenario(SCENARIO)
    truth = true_values()
    rows = [{"observableId": observable_id(r), "simulationConditionId": "esketamine_ip",
             "time": float(t), "measurement": 1.0, "noiseParameters": 1.0}
            for r in sc.outputs.readouts for t in sc.output_times_h]
    template = pd.DataFrame(rows)
    obj = BatchedObjective(template, {"esketamine_ip": SCENARIO},
                           [FitParameter(k, v / 10, v * 10) for k, v in truth.items()],
                           engine="reference", rtol=1e-9, atol=1e-11)
    vals, ok = obj.simulate(np.array([list(truth.values())]))["esketamine_ip"]
    assert ok.all()
    clean = vals[0]
    rng = np.random.default_rng(SEED)
    template["measurement"] = clean * (1 + NOISE_CV * rng.standard_normal(clean.size))
    template["noiseParameters"] = NOISE_CV * np.abs(clean)
    template.to_csv(HERE / "measurements.tsv", sep="\t", index=False)
    print(f"wrote {HERE / 'measurements.tsv'}: {len(template)} rows; TRUE = {truth}")


if __name__ == "__main__":
    main()

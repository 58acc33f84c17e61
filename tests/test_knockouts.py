"""Knockouts: the drug-free run-in reaches each genotype's own steady state, and every
knockout acts only through the receptors (model parameters) it removes.

A knockout that shifts the drug-free steady state (pyramidal GluN2B: resting NMDA
signalling lost; GluA2: Ca2+-permeable AMPA receptors) must be burnt in before dosing,
as a stress load is; otherwise the vehicle group drifts during the experiment (before
this test: vehicle pyramidal-knockout mice went from 139 s to 5 s immobility in 24 h).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ketasim as ks
from ketasim.experiments import run as run_mod
from ketasim.model.system import build_model
from ketasim.population import KNOCKOUT_PARAMS


def _mice(knockouts: list[str], condition: str = "naive") -> dict[str, Any]:
    return {
        "name": "knockout", "species": "mouse", "seed": 3,
        "population": {"size": 2, "condition": condition, "variability": False,
                       "knockouts": knockouts},
        "design": {"type": "parallel", "follow_up": "7 d"},
        "arms": [{"name": "vehicle", "doses": [{"drug": "saline", "amount": "0 mg/kg",
                                                "route": "ip", "at": ["0 h"]}]}],
        "outputs": {"times": ["30 min", "24 h", "7 d"],
                    "readouts": ["mood", "synaptic_function", "stress_load"]},
    }


@pytest.mark.parametrize("ko", sorted(KNOCKOUT_PARAMS))
def test_vehicle_knockout_mice_do_not_drift(ko: str) -> None:
    data = ks.run(ks.load_scenario(_mice([ko]))).data
    for r in ("mood", "synaptic_function"):
        v = data[r].values[0, 0, :]
        base = data[f"{r}@baseline"].values[0, 0]
        # at rest from the first reading to the last (7 days), within solver tolerance
        assert np.allclose(v, base, rtol=1e-3, atol=1e-3), (ko, r, base, v)


def test_drift_check_flags_only_a_shifted_steady_state() -> None:
    model = build_model("mouse", ("esketamine",), (("esketamine", "ip"),))
    names = list(model.spec.parameters)
    base = model.complete(model.base_parameters()[:, None])
    inp = np.zeros((len(model.input_names), 1))
    y0 = model.initial(base, inp)
    assert not run_mod.at_rest_drift(model, base, y0, inp).any()  # wild type, healthy
    for ko, shifts in (("glun2b_pyramidal", True), ("glua2", True),
                       ("glun2b_interneuron", False), ("glun2d", False)):
        B = model.base_parameters()[:, None].copy()
        B[names.index(KNOCKOUT_PARAMS[ko])] = 1.0
        P = model.complete(B)
        assert bool(run_mod.at_rest_drift(model, P, model.initial(P, inp), inp)[0]) is shifts


def test_each_knockout_switch_enters_only_its_own_receptors() -> None:
    """The switch of a knockout appears only in the derived receptor parameters of the
    cells it removes them from (docs/model.md, Hypotheses and knockouts)."""
    spec = build_model("mouse", ("esketamine",), (("esketamine", "ip"),)).spec
    own = {"ko_glun2b_interneuron": {"F_int_2b"}, "ko_glun2b_pyramidal": {"F_pyr_2b"},
           "ko_glun2d": {"F_int_2d"}, "ko_glua2": {"ampa_cap", "ca_per_ampa"}}
    exprs = {**{n: d.expr for n, d in spec.derived.items()},
             **{n: a.expr for n, a in spec.assignments.items()},
             **{n: s.rate for n, s in spec.states.items()}}
    for switch, users in own.items():
        found = {n for n, e in exprs.items() if switch in e}
        assert found == users, (switch, found)

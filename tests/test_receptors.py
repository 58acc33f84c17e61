"""Receptor layer against its closed-form steady state at constant unbound concentration.

At constant C and channel use o, one compound's block of a class obeys
b / (1 - b) = C o / (IC50_native (1 - trap + trap o)), IC50_native = IC50 x factor, where the
factor is the compound's own ``native_potency`` when the catalog gives one (HNK, MK-801:
measured or calibrated in native tissue) and the mechanism-wide factor otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from ketasim.catalog import catalog
from ketasim.engine.reference import simulate
from ketasim.model import receptors
from ketasim.model.compile import compile_model
from ketasim.model.params import mechanism_table
from ketasim.model.spec import ModelSpec
from ketasim.protocol import Protocol


def _steady_block(cid: str, conc_um: float) -> tuple[float, float]:
    """Simulated interneuron GluN2A block after 5 h at constant C, and the closed form."""
    m = ModelSpec()
    m.param(f"{cid}_Cs", conc_um, "uM", "test")
    m.param("interneuron", 1.0, "1", "test: baseline firing")
    m.param("pyramidal", 1.0, "1", "test: baseline firing")
    receptors.add_nmda(m, catalog(), [cid])
    cm = compile_model(m)
    P = cm.complete(cm.base_parameters()[:, None])
    tr = simulate(cm, P, cm.initial(P), Protocol(1, events=[]), np.array([5.0]), 0.0,
                  rtol=1e-10, atol=1e-12)
    assert (tr.status == "ok").all()
    b_sim = float(tr.y[0, cm.state_index(f"b_{cid}_int_2a"), -1])
    nm = catalog().drugs[cid].pd.nmda
    assert nm is not None
    mt = mechanism_table()["receptors"]
    factor = (nm.native_potency.value if nm.native_potency is not None
              else mt["native_potency"].value)
    o = nm.use_dependence.value * mt["u_int"].value + 1 - nm.use_dependence.value
    trap = nm.trapping.value
    x = conc_um * o / (nm.ic50_glun2a.value * factor * (1 - trap + trap * o))
    return b_sim, x / (1 + x)


@pytest.mark.parametrize("cid, conc", [("esketamine", 1.0), ("arketamine", 5.0),
                                       ("hnk_2r6r", 10.0), ("mk801", 0.01)])
def test_steady_block_matches_closed_form(cid: str, conc: float) -> None:
    b_sim, b_exact = _steady_block(cid, conc)
    assert b_sim == pytest.approx(b_exact, rel=1e-5)


def test_hnk_does_not_block_nmda_at_antidepressant_concentrations() -> None:
    # Lumsden 2019 PNAS: about 8-10 uM (2R,6R)-HNK, no NMDA block in native neurons
    b, _ = _steady_block("hnk_2r6r", 10.0)
    assert b < 0.04

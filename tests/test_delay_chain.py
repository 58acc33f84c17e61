"""The SSRI adaptation cascade against its closed form (Erlang CDF of a step input)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gamma

from ketasim.engine.reference import simulate
from ketasim.model.compile import compile_model
from ketasim.model.signalling import SSRI_STAGES, delay_chain
from ketasim.model.spec import ModelSpec
from ketasim.protocol import Protocol


@pytest.mark.parametrize("stages", [1, SSRI_STAGES])
def test_step_response_is_the_erlang_cdf(stages: int) -> None:
    tau = 504.0
    m = ModelSpec()
    m.param("occ", 1.0, "1", "test: SERT occupancy held at 1 from t = 0")
    m.param("tau_x", tau, "h", "test")
    delay_chain(m, "x", "occ", "tau_x", stages, "test chain")
    cm = compile_model(m)
    P = cm.complete(cm.base_parameters()[:, None])
    t = np.array([24.0, 168.0, 336.0, 672.0])
    tr = simulate(cm, P, cm.initial(P), Protocol(1, events=[]), t, 0.0, rtol=1e-10,
                  atol=1e-12)
    assert (tr.status == "ok").all()
    got = tr.y[0, cm.state_index("x"), :]
    np.testing.assert_allclose(got, gamma.cdf(t, stages, scale=tau / stages), rtol=1e-6,
                               atol=1e-9)

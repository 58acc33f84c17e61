"""The numba engine (``ketasim.engine.fast``) against the reference integrator.

Default run: a small synthetic model that uses every construct of the model language
(hill, pos, exp, log, sqrt, maximum/minimum, an input, explicit time, boluses, infusions,
a stiff fast/slow pair), so that the code generator, the symbolic Jacobian and the
integrator are checked in seconds. The full ketamine models take about two minutes each
to compile the first time (numba caches the machine code afterwards), so the scenario
tests are marked ``slow``: ``python -m pytest -m slow tests/test_engine_fast.py``.

Agreement criterion everywhere: |fast - reference| <= 1e-4 |reference| or <= 1e-9.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from ketasim.engine import fast, reference  # noqa: E402
from ketasim.model.compile import compile_model  # noqa: E402
from ketasim.model.spec import ModelSpec  # noqa: E402
from ketasim.protocol import DoseEvent, Protocol, Signal  # noqa: E402

REL, ABS = 1e-4, 1e-9


def assert_close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, what
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN pattern differs"
    ok = np.isnan(want) | (np.abs(got - want) <= np.maximum(REL * np.abs(want), ABS))
    if not ok.all():
        idx = np.argwhere(~ok)[0]
        raise AssertionError(f"{what}: {int((~ok).sum())} values differ, first at {idx}: "
                             f"{got[tuple(idx)]!r} vs reference {want[tuple(idx)]!r}")


# ------------------------------------------------------------------ synthetic model


def synthetic() -> ModelSpec:
    m = ModelSpec()
    m.param("ka", 2.0, "1/h", "test")
    m.param("ke", 0.3, "1/h", "test")
    m.param("V", 40.0, "L", "test")
    m.param("ec50", 0.5, "uM", "test")
    m.param("n_h", 1.7, "1", "test")
    m.param("kfast", 800.0, "1/h", "test")
    m.param("kslow", 0.02, "1/h", "test")
    m.param("amp", 0.1, "1", "test")
    m.derive("kel", "ke * sqrt(V / 40.0)", "1/h")
    m.input("stress", "1")
    m.state("depot", "nmol", "- ka * depot")
    m.state("central", "nmol", "ka * depot - kel * central")
    m.assign("conc", "central / V", "uM")
    m.assign("occ", "hill(pos(conc), ec50, n_h)", "1")
    m.assign("drive", "pos(occ - 0.2) + 0.05 * log(1 + conc) + amp * exp(-t / 50.0)", "1")
    m.state("fast_x", "1", "kfast * (maximum(drive, 0.1 * stress) - fast_x)",
            initial="maximum(amp, 0.1 * stress)")
    m.state("slow_y", "1", "kslow * (1 + minimum(fast_x, 0.8) - slow_y) - 0.01 * stress * slow_y",
            initial="1")
    m.readout("conc", "1000 * conc", "nM")
    m.readout("effect", "100 * slow_y", "%")
    m.readout("x", "fast_x", "1")
    return m


@functools.cache
def _synthetic_model() -> Any:
    return compile_model(synthetic())


def _synthetic_case(n: int = 5) -> tuple[Any, np.ndarray, np.ndarray, Protocol, np.ndarray]:
    cm = _synthetic_model()
    rng = np.random.default_rng(1)
    eta = rng.lognormal(0.0, 0.3, (cm.base_parameters().size, n))
    eta[cm.param_index("n_h")] = 1.0  # x ** n is not differentiable at 0 for n < 1
    base = cm.base_parameters()[:, None] * eta
    P = cm.complete(base)
    stress = rng.uniform(0.0, 1.0, n)
    prot = Protocol(n, baseline_inputs={"stress": stress})
    amount = rng.uniform(50.0, 150.0, n)
    prot.events += [DoseEvent(1.0, "depot", amount), DoseEvent(30.0, "central", amount, 0.75),
                    DoseEvent(30.0, "depot", 0.5 * amount)]
    prot.signals.append(Signal("stress", 10.0, 40.0, np.full(n, 2.0)))
    y0 = cm.initial(P, prot.inputs_at(-np.inf, cm.input_names))
    t_out = np.array([0.0, 0.5, 1.0, 1.2, 5.0, 10.0, 30.0, 30.5, 30.75, 48.0, 100.0, 200.0])
    return cm, P, y0, prot, t_out


def test_synthetic_against_reference() -> None:
    cm, P, y0, prot, t_out = _synthetic_case()
    ref = reference.simulate(cm, P, y0, prot, t_out, 0.0, rtol=1e-10, atol=1e-12)
    assert (ref.status == "ok").all() and np.isfinite(ref.y).all()
    for method in fast.TABLEAUS:
        got = fast.simulate(cm, P, y0, prot, t_out, 0.0, rtol=1e-9, atol=1e-12, method=method)
        assert (got.status == "ok").all(), got.message
        assert_close(got.y, ref.y, method)
        for k, t in enumerate(t_out):  # and every readout at every output time
            inp = prot.inputs_at(t, cm.input_names)
            a = cm.readouts(t, got.y[:, :, k].T, P, inp)
            b = cm.readouts(t, ref.y[:, :, k].T, P, inp)
            for r in a:
                assert_close(a[r], b[r], f"{method} {r} at t={t}")


def test_synthetic_start_after_zero_and_outputs_before_start() -> None:
    cm, P, y0, prot, t_out = _synthetic_case(3)
    ref = reference.simulate(cm, P, y0, prot, t_out, 5.0, rtol=1e-10, atol=1e-12)
    got = fast.simulate(cm, P, y0, prot, t_out, 5.0, rtol=1e-9, atol=1e-12)
    assert np.isnan(got.y[:, :, t_out < 5.0]).all()
    assert_close(got.y, ref.y)


def test_symbolic_jacobian_matches_finite_differences() -> None:
    cm, P, y0, _, _ = _synthetic_case(1)
    fm = fast.compile_fast(cm)
    st = fm.structure
    n = cm.n_states
    y = y0[:, 0] + 0.3
    p = np.ascontiguousarray(P[:, 0])
    u = np.array([0.7])
    jv, dfdt = np.zeros(st.nnz), np.zeros(n)
    fm.module._jac(2.0, y, p, u, jv, dfdt)
    dense = np.zeros((n, n))
    for k in range(n):
        for jj in range(st.rowptr[k], st.rowptr[k + 1]):
            dense[k, st.cols[jj]] = jv[jj]
    f0, f1, r = np.zeros(n), np.zeros(n), np.zeros(n)
    fm.module._rhs(2.0, y, p, u, r, f0)
    for j in range(n):
        h = 1e-7 * max(1.0, abs(y[j]))
        yp = y.copy()
        yp[j] += h
        fm.module._rhs(2.0, yp, p, u, r, f1)
        np.testing.assert_allclose(dense[:, j], (f1 - f0) / h, rtol=1e-4, atol=1e-4)
    fm.module._rhs(2.0 + 1e-6, y, p, u, r, f1)
    np.testing.assert_allclose(dfdt, (f1 - f0) / 1e-6, rtol=1e-4, atol=1e-6)


def test_failed_subject_is_flagged_not_silent() -> None:
    cm, P, y0, prot, t_out = _synthetic_case(4)
    P = P.copy()
    P[cm.param_index("kfast"), 2] = np.nan  # subject 2 cannot be integrated
    good = fast.simulate(cm, P[:, [0]], y0[:, [0]], Protocol(
        1, [DoseEvent(e.time, e.state, e.amount[:1], e.duration) for e in prot.events],
        [Signal(s.name, s.start, s.end, s.value[:1]) for s in prot.signals],
        {"stress": prot.baseline_inputs["stress"][:1]}), t_out, 0.0)
    tr = fast.simulate(cm, P, y0, prot, t_out, 0.0)
    assert list(tr.status) == ["ok", "ok", "failed", "ok"]
    assert tr.message[2] and "h:" in tr.message[2]
    assert np.isnan(tr.y[2]).all()
    np.testing.assert_array_equal(tr.y[0], good.y[0])  # neighbours are unaffected
    few = fast.simulate(cm, P[:, :2], y0[:, :2], Protocol(2), t_out, 0.0, max_steps=3)
    assert (few.status == "failed").all()
    assert all("too many steps" in m for m in few.message)


def test_serial_and_parallel_give_identical_numbers() -> None:
    cm, P, y0, prot, t_out = _synthetic_case(37)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fast.simulate(cm, P, y0, prot, t_out, 0.0)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = fast.simulate(cm, P, y0, prot, t_out, 0.0)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.y, many.y)
    again = fast.simulate(cm, P, y0, prot, t_out, 0.0)
    np.testing.assert_array_equal(again.y, many.y)


def test_unknown_method_is_refused() -> None:
    cm, P, y0, prot, t_out = _synthetic_case(1)
    with pytest.raises(ValueError, match="method must be one of"):
        fast.simulate(cm, P, y0, prot, t_out, 0.0, method="euler")


# ------------------------------------------------------------ scenarios (full model)


def _scenario(base: dict[str, Any], n: int, method: str, rtol: float,
              atol: float) -> Any:
    import ketasim

    d = {k: v for k, v in base.items()}
    d["population"] = {**d.get("population", {}), "size": n}
    d["engine"] = {"method": method, "rtol": rtol, "atol": atol}
    return ketasim.load_scenario(d)


def _example(name: str) -> dict[str, Any]:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.toml"
    return tomllib.loads(path.read_text())


def _scenarios() -> dict[str, tuple[dict[str, Any], int]]:
    """name -> (scenario dict, index of the cohort to integrate)."""
    import ketasim

    default = ketasim.default_scenario().as_dict()
    single = {**default, "design": {"type": "parallel", "follow_up": "7 d"},
              "arms": [a for a in default["arms"] if a["name"] == "ketamine"]}
    return {
        "single_infusion_human": (single, 0),
        "repeated_infusions_human": (_example("repeated_infusions"), 0),
        "crossover_human": (default, 1),
        "mouse_ip_nbqx_pretreatment": (_example("maeng2008_nbqx"), 3),
        "rat_cus_icv_rapamycin": (_example("rat_cus_rapamycin"), 2),
    }


def cohort_values(base: dict[str, Any], cohort: int, method: str, n: int = 2,
                  rtol: float = 1e-8, atol: float = 1e-10) -> dict[str, Any]:
    """Readouts of one cohort exactly as experiments.run computes them."""
    from ketasim.experiments import run as runner
    from ketasim.population import draw_subjects

    sc = _scenario(base, n, method, rtol, atol)
    group = runner.cohorts(sc)[cohort]
    subjects = draw_subjects(sc, group.subjects)
    return runner.simulate_cohort(sc, group, subjects)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_scenarios()))
def test_scenario_readouts_match_reference(name: str) -> None:
    base, cohort = _scenarios()[name]
    ref = cohort_values(base, cohort, "reference", rtol=1e-10, atol=1e-12)
    got = cohort_values(base, cohort, "fast", rtol=1e-8, atol=1e-10)
    assert (ref["status"] == "ok").all() and (got["status"] == "ok").all()
    assert set(got["values"]) == set(ref["values"])
    for r, v in ref["values"].items():
        assert_close(got["values"][r], v, f"{name}: {r}")


@pytest.mark.slow
def test_scenario_failures_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    import ketasim

    base, _ = _scenarios()["single_infusion_human"]
    sc = _scenario(base, 3, "fast", 1e-6, 1e-9)
    monkeypatch.setattr(fast, "simulate", functools.partial(fast.simulate, max_steps=5))
    res = ketasim.run(sc)
    assert res.manifest["solver_status"] == {"failed": 3}
    assert all("too many steps" in str(m) for m in res.data["message"].values)


@pytest.mark.slow
def test_scenario_threads_and_seed_reproducible() -> None:
    base, cohort = _scenarios()["single_infusion_human"]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cohort_values(base, cohort, "fast", n=6, rtol=1e-6, atol=1e-9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = cohort_values(base, cohort, "fast", n=6, rtol=1e-6, atol=1e-9)
    finally:
        numba.set_num_threads(before)
    for r, v in one["values"].items():
        np.testing.assert_array_equal(v, many["values"][r], err_msg=r)

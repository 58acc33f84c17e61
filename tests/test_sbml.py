"""SBML export: structure, loud failures, the CLI, and libRoadRunner against ketasim.

The cross-engine test exports one subject of several scenarios (its parameters, its state
after the drug-free burn-in, its dose schedule as events), simulates the SBML with
libRoadRunner (CVODE) and compares every model readout at every output time with
ketasim's reference integrator: |rr - ketasim| <= 1e-4 |ketasim| or <= 1e-9.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

libsbml = pytest.importorskip("libsbml")

from ketasim.engine import reference  # noqa: E402
from ketasim.errors import SBMLExportError  # noqa: E402
from ketasim.io.sbml import (  # noqa: E402
    export_sbml,
    readout_id,
    subject_setup,
    to_l3,
)
from ketasim.model.compile import compile_model  # noqa: E402
from ketasim.model.spec import ModelSpec  # noqa: E402
from ketasim.protocol import DoseEvent, Protocol, Signal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REL, ABS = 1e-4, 1e-9


def _example(name: str, n: int = 2) -> dict[str, Any]:
    d = tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text())
    d["population"]["size"] = n
    return d


def _default(n: int = 1) -> dict[str, Any]:
    import ketasim

    d = ketasim.default_scenario().as_dict()
    d["population"]["size"] = n
    return d


def tiny() -> ModelSpec:
    m = ModelSpec()
    m.param("k", 0.5, "1/h", "Smith 2000, table 2", tag="literature")
    m.param("V", 10.0, "L", "assumed")
    m.derive("kv", "k / V", "1/(h L)")
    m.input("stress", "1")
    m.state("a", "nmol", "- k * a + stress", initial="0")
    m.state("b", "1", "hill(a / V, 2.0, 1.5) - maximum(b, 0.1) + exp(-t)", initial="1")
    m.readout("conc.a", "a / V", "nM")
    return m


# ------------------------------------------------------------------------- structure


def test_export_structure_units_annotations_and_events(tmp_path: Path) -> None:
    spec = tiny()
    prot = Protocol(1, baseline_inputs={"stress": np.array([0.2])})
    prot.events += [DoseEvent(1.0, "a", np.array([5.0])), DoseEvent(2.0, "a", np.array([4.0]), 0.5)]
    prot.signals.append(Signal("stress", 3.0, 4.0, np.array([1.0])))
    info = export_sbml(spec, prot, tmp_path / "m.xml", start_time=0.5)
    doc = libsbml.readSBMLFromFile(str(tmp_path / "m.xml"))
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    model = doc.getModel()
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    assert model.getNumRules() == 2 + 1  # two rate rules, one readout, no assignments
    assert sum(model.getRule(i).isRate() for i in range(model.getNumRules())) == 2
    assert model.getTimeUnits() == "hour"
    k = model.getParameter("k")
    assert k.getConstant() and k.getValue() == 0.5
    ann = k.getAnnotationString()
    assert "Smith 2000, table 2" in ann and "literature" in ann and "1/h" in ann
    assert "Smith 2000" in k.getNotesString()
    assert model.getInitialAssignment("kv") is not None
    assert model.getParameter(readout_id("conc.a")).getName() == "conc.a"
    # bolus at 1 h, infusion on at 2 h and off at 2.5 h, signal on at 3 h and off at 4 h
    assert model.getNumEvents() == 5
    triggers = sorted(libsbml.formulaToL3String(model.getEvent(i).getTrigger().getMath())
                      for i in range(model.getNumEvents()))
    assert triggers[0] == "time >= 0.5"  # 1 h in ketasim time is 0.5 h in SBML time
    assert info.time_offset == 0.5 and info.state_ids == ["a", "b"]
    assert len(info.dose_parameters) == 2


def test_formula_translation() -> None:
    assert to_l3("maximum(a, 0)", "x") == "piecewise(a, a >= 0.0, 0.0)"
    assert to_l3("log(t)", "x", time_offset=2.0) == "ln((time + 2.0))"
    assert to_l3("hill(x, k, n)", "x") == "((x ^ n) / ((k ^ n) + (x ^ n)))"


@pytest.mark.parametrize("expr", ["a < b", "sin(a)", "a if b else c", "[a]"])
def test_inexpressible_formulas_fail_loudly(expr: str) -> None:
    with pytest.raises(SBMLExportError):
        to_l3(expr, "owner")


def test_inexpressible_protocols_fail_loudly(tmp_path: Path) -> None:
    spec = tiny()
    bad_state = Protocol(1, [DoseEvent(1.0, "nowhere", np.array([1.0]))])
    with pytest.raises(SBMLExportError, match="not a state"):
        export_sbml(spec, bad_state, tmp_path / "m.xml")
    overlap = Protocol(1, signals=[Signal("stress", 0.0, 5.0, np.array([1.0])),
                                   Signal("stress", 4.0, 6.0, np.array([2.0]))])
    with pytest.raises(SBMLExportError, match="overlap"):
        export_sbml(spec, overlap, tmp_path / "m.xml")
    with pytest.raises(SBMLExportError, match="not finite"):
        export_sbml(spec, Protocol(1, [DoseEvent(1.0, "a", np.array([np.nan]))]),
                    tmp_path / "m.xml")
    with pytest.raises(SBMLExportError, match="before the start time"):
        export_sbml(spec, Protocol(1, [DoseEvent(1.0, "a", np.array([1.0]))]),
                    tmp_path / "m.xml", start_time=2.0)
    with pytest.raises(SBMLExportError, match="not a base parameter"):
        export_sbml(spec, Protocol(1), tmp_path / "m.xml", parameters={"nope": 1.0})
    assert not (tmp_path / "m.xml").exists()


def test_cli_export_sbml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from ketasim.cli import app

    runner = CliRunner()
    out = tmp_path / "model.xml"
    path = ROOT / "examples" / "maeng2008_nbqx.toml"
    res = runner.invoke(app, ["export-sbml", str(path), "-o", str(out),
                              "--cohort", "NBQX + ketamine"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and out.exists()
    doc = libsbml.readSBMLFromFile(str(out))
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    labels = {doc.getModel().getParameter(i).getAnnotationString()
              for i in range(doc.getModel().getNumParameters())}
    assert any("NBQX + ketamine:nbqx" in a for a in labels)
    again = runner.invoke(app, ["export-sbml", str(path), "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, ["export-sbml", str(path), "-o", str(tmp_path / "b.xml"),
                              "--cohort", "9"])
    assert bad.exit_code == 2
    assert len(bad.output.strip().splitlines()) == 1 and "cohort" in bad.output
    assert not (tmp_path / "b.xml").exists()


# ------------------------------------------------------------- against libRoadRunner


def _repeated() -> dict[str, Any]:
    """Six infusions over 12 days, followed to day 14 (the example follows to day 40)."""
    d = _example("repeated_infusions")
    d["design"]["follow_up"] = "14 d"
    d["outputs"]["times"] = ["4 h", "1 d", "2 d", "4 d", "7 d", "9 d", "11 d", "12 d", "14 d"]
    return d


CASES = {
    "single_infusion_human": (lambda: _default(), 0),  # period 1 of the crossover: ketamine
    "crossover_human_second_sequence": (lambda: _default(2), 1),
    "repeated_infusions_human": (_repeated, 0),
    "mouse_ip_nbqx_pretreatment": (lambda: _example("maeng2008_nbqx"), 3),
    "rat_cus_icv_rapamycin": (lambda: _example("rat_cus_rapamycin"), 2),
}


# minutes per case since the recalibrated cascade (RoadRunner's CVODE at rtol 1e-10 takes
# about 6 min for the single infusion on 2 cores): run with -m slow
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_roadrunner_agrees_with_ketasim(name: str, tmp_path: Path) -> None:
    roadrunner = pytest.importorskip("roadrunner")
    make, cohort = CASES[name]
    s = subject_setup(make(), 0, cohort)
    names = list(s.model.spec.parameters)
    info = export_sbml(s.model.spec, s.protocol, tmp_path / "m.xml",
                       parameters={k: float(s.P[i, 0]) for i, k in enumerate(names)},
                       initial_state=s.y0[:, 0], start_time=s.t_start)
    ks = reference.simulate(s.model, s.P, s.y0, s.protocol, s.t_out, s.t_start,
                            rtol=1e-9, atol=1e-11)
    assert (ks.status == "ok").all(), ks.message
    rr = roadrunner.RoadRunner(str(tmp_path / "m.xml"))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    rr.integrator.setValue("maximum_num_steps", 1_000_000)
    rr.timeCourseSelections = ["time", *info.readout_ids.values()]
    res = np.asarray(rr.simulate(times=np.concatenate([[0.0], s.t_out - s.t_start])))
    np.testing.assert_allclose(res[1:, 0] + info.time_offset, s.t_out, rtol=1e-12, atol=1e-9)
    assert len(info.readout_ids) == len(s.model.readout_names)
    bad = []
    for k, t in enumerate(s.t_out):
        inp = s.protocol.inputs_at(t, s.model.input_names)
        want = s.model.readouts(t, ks.y[:, :, k].T, s.P, inp)
        for j, r in enumerate(info.readout_ids):
            a, b = res[k + 1, j + 1], float(np.asarray(want[r]).reshape(-1)[0])
            if not abs(a - b) <= max(REL * abs(b), ABS):
                bad.append(f"{r} at t={t:.4g} h: roadrunner {a!r}, ketasim {b!r}")
    assert not bad, f"{len(bad)} disagreements: " + "; ".join(bad[:5])


def test_exported_model_matches_compiled_model(tmp_path: Path) -> None:
    """The tiny model: RoadRunner vs ketasim with its own initial assignments and events."""
    roadrunner = pytest.importorskip("roadrunner")
    spec = tiny()
    cm = compile_model(spec)
    P = cm.complete(cm.base_parameters()[:, None])
    prot = Protocol(1, baseline_inputs={"stress": np.array([0.2])})
    prot.events += [DoseEvent(1.0, "a", np.array([5.0])), DoseEvent(2.0, "a", np.array([4.0]), 0.5)]
    prot.signals.append(Signal("stress", 3.0, 4.0, np.array([1.0])))
    info = export_sbml(spec, prot, tmp_path / "m.xml")
    t = np.array([0.5, 1.5, 2.25, 3.5, 6.0])
    y0 = cm.initial(P, prot.inputs_at(0.0, cm.input_names))
    ks = reference.simulate(cm, P, y0, prot, t, 0.0, rtol=1e-10, atol=1e-12)
    rr = roadrunner.RoadRunner(str(tmp_path / "m.xml"))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    rr.timeCourseSelections = ["time", *info.state_ids]
    res = np.asarray(rr.simulate(times=np.concatenate([[0.0], t])))
    np.testing.assert_allclose(res[1:, 1:].T, ks.y[0], rtol=1e-6, atol=1e-9)

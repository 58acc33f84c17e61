"""The scenario contract: examples load, defaults fill, and every bad input is one line."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ketasim.catalog import catalog
from ketasim.errors import ScenarioError
from ketasim.scenario import Scenario, default_scenario, load_scenario

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))
EXPECTED_EXAMPLES = {
    "seed_crossover", "repeated_infusions", "dose_finding", "midazolam_controlled",
    "rat_cus_rapamycin", "mouse_nbqx_hnk", "esketamine_nasal",
}


def _infusion(drug: str = "ketamine", amount: str = "0.5 mg/kg", **extra: Any) -> dict:
    dose = {"drug": drug, "amount": amount, "route": "iv_infusion", "duration": "40 min",
            "at": ["0 h"]}
    dose.update(extra)
    return dose


def _human() -> dict[str, Any]:
    """A valid human crossover, as a dict."""
    return {
        "name": "test crossover",
        "species": "human",
        "seed": 1,
        "population": {"size": 20, "condition": "trd"},
        "design": {"type": "crossover", "washout": "14 d", "period_length": "7 d"},
        "arms": [
            {"name": "ketamine", "doses": [_infusion()]},
            {"name": "saline", "doses": [_infusion("saline", "0 mg/kg")]},
        ],
        "outputs": {"times": ["40 min", "230 min", "1 d", "7 d"],
                    "readouts": ["plasma.ketamine", "madrs", "response"]},
    }


def _rat() -> dict[str, Any]:
    """A valid rat parallel experiment, as a dict."""
    ip = {"drug": "ketamine", "amount": "10 mg/kg", "route": "ip", "at": ["0 h"]}
    return {
        "name": "test rats",
        "species": "rat",
        "population": {"size": 10, "condition": "cus"},
        "arms": [{"name": "ketamine", "doses": [ip]}],
        "outputs": {"times": ["1 h", "24 h"], "readouts": ["fst.immobility"]},
    }


def _raises(data: dict[str, Any], path: str) -> ScenarioError:
    """Assert ``data`` is rejected with one ScenarioError line that names ``path``."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(data)
    err = info.value
    text = str(err)
    assert type(err) is ScenarioError
    assert "\n" not in text and "\r" not in text
    assert text.startswith(path + ":"), text
    assert "pydantic" not in text.lower() and "validation error" not in text.lower()
    assert err.__cause__ is None and err.__suppress_context__
    return err


# ----------------------------------------------------------------------- good scenarios


def test_all_examples_present() -> None:
    assert {p.stem for p in EXAMPLES} >= EXPECTED_EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_and_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    assert load_scenario(str(path)) == scenario
    again = load_scenario(scenario.as_dict())
    assert again == scenario
    assert again.as_dict() == scenario.as_dict()
    json.dumps(scenario.as_dict())


def test_default_scenario_is_the_seed_crossover() -> None:
    # the seed's crossover with 14-day periods (part 1 of the default study set; the
    # six-infusion course is part 2, ketasim.analysis.table1)
    s = default_scenario()
    assert s.design.type == "crossover" and len(s.arms) == 2
    assert s.population.size == 100 and s.population.condition == "trd"
    assert s.follow_up_h == 14 * 24.0
    assert s.period_starts_h == [0.0, 28 * 24.0]  # 14 d period + 14 d washout
    assert {2.0, 4.0, 24.0, 48.0, 168.0} <= set(s.output_times_h)
    dose = s.arm("ketamine").doses[0]
    assert (dose.basis, dose.magnitude) == ("mass_per_kg", pytest.approx(500.0))
    assert dose.duration_h == pytest.approx(2 / 3)
    assert dose.times_h() == [0.0]


def test_round_trip_of_a_dict() -> None:
    data = _human()
    s = load_scenario(data)
    assert load_scenario(s.as_dict()) == s
    assert data == _human()  # the input is not modified


def test_defaults_are_filled() -> None:
    d = load_scenario(_human()).as_dict()
    assert d["model"]["hypotheses"] == {"disinhibition": 1.0, "rest_block_eef2": 0.5,
                                        "hnk_ampa": 1.0}
    assert d["engine"] == {"method": "auto", "rtol": 1e-6, "atol": 1e-9}
    assert d["outputs"]["response_threshold"] == 50.0
    assert d["outputs"]["remission_madrs"] == 10.0
    assert d["outputs"]["primary_scale"] == "madrs"
    minimal = {"name": "m", "species": "human", "arms": [{"name": "k", "doses": [_infusion()]}]}
    m = load_scenario(minimal)
    assert m.design.type == "parallel" and m.design.follow_up == "7 d"
    assert m.outputs.times[0] == "40 min" and m.population.condition == "trd"


def test_crossover_defaults() -> None:
    data = _human()
    data["design"] = {"type": "crossover"}
    s = load_scenario(data)
    assert (s.design.washout, s.design.period_length) == ("14 d", "7 d")
    assert (s.design.washout_h, s.design.period_length_h) == (336.0, 168.0)


def test_every_count_expands() -> None:
    data = _human()
    data["design"] = {"type": "single_group", "follow_up": "14 d"}
    data["arms"] = [{"name": "k", "doses": [_infusion(at=None, every="2 d", count=6)]}]
    dose = load_scenario(data).arms[0].doses[0]
    assert dose.start == "0 h"
    assert dose.times_h() == [0.0, 48.0, 96.0, 144.0, 192.0, 240.0]
    data["arms"][0]["doses"][0].update(start="-1 h", count=3)
    assert load_scenario(data).arms[0].doses[0].times_h() == [-1.0, 47.0, 95.0]


def test_at_accepts_one_string_and_negative_times() -> None:
    data = _human()
    data["arms"][0]["doses"] = [
        {"drug": "ketamine", "amount": "0.1 mg/kg", "route": "iv_bolus", "at": "-30 min"},
        _infusion(),
    ]
    s = load_scenario(data)
    assert s.arms[0].doses[0].times_h() == [-0.5]
    assert s.arms[0].first_h() == -0.5


def test_drug_name_is_resolved_to_its_id() -> None:
    data = _human()
    data["arms"][0]["doses"][0]["drug"] = " Ketamine "
    assert load_scenario(data).arms[0].doses[0].drug == "ketamine"
    aliases = [a for a, drug_id in catalog().aliases.items() if drug_id == "ketamine"]
    if aliases:
        data["arms"][0]["doses"][0]["drug"] = aliases[0]
        assert load_scenario(data).arms[0].doses[0].drug == "ketamine"


def test_extensions_accepted() -> None:
    data = _human()
    data["population"].update(
        weight_kg={"mean": 80, "sd": 15}, age={"mean": 45, "sd": 12}, female_fraction=0.6,
        bdnf_val66met={"val_val": 0.7, "val_met": 0.27, "met_met": 0.03},
        cyp2b6_poor_fraction=0.05, family_history_aud_fraction=0.3, knockouts=["glun2d"],
        variability=False, inclusion={"madrs_min": 22},
    )
    data["model"] = {"hypotheses": {"rest_block_eef2": 0.0},
                     "parameters": {"kp_uu_scale": 1.2}}
    data["engine"] = {"method": "batched", "rtol": 1e-5}
    data["outputs"].update(response_threshold="50 %", primary_scale="hamd17")
    s = load_scenario(data)
    assert s.model.hypotheses.disinhibition == 1.0
    assert s.model.hypotheses.rest_block_eef2 == 0.0
    assert s.model.parameters == {"kp_uu_scale": 1.2}
    assert s.outputs.response_threshold == 50.0
    assert load_scenario(s.as_dict()) == s


def test_large_population_needs_confirmation() -> None:
    data = _human()
    data["population"].update(size=200_000, confirm_large=True)
    assert load_scenario(data).population.size == 200_000


def test_stressed_rodents_get_a_default_stress_schedule() -> None:
    s = load_scenario(_rat())
    assert s.population.stress is not None
    assert (s.population.stress.start, s.population.stress.end) == ("-21 d", "0 d")
    assert (s.population.stress.start_h, s.population.stress.end_h) == (-504.0, 0.0)


def test_local_route_absolute_dose() -> None:
    data = _rat()
    data["arms"][0]["doses"].insert(
        0, {"drug": "rapamycin", "amount": "0.2 nmol", "route": "icv", "at": ["-30 min"]})
    dose = load_scenario(data).arms[0].doses[0]
    assert (dose.basis, dose.magnitude) == ("moles", pytest.approx(0.2))


def test_models_are_frozen() -> None:
    s = load_scenario(_human())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.seed = 3  # type: ignore[misc]


# ------------------------------------------------------------------------ bad scenarios


Mutate = Callable[[dict[str, Any]], Any]


def _dose0(d: dict[str, Any]) -> dict[str, Any]:
    return d["arms"][0]["doses"][0]


def _set_crossover_one_arm(d: dict[str, Any]) -> None:
    d["arms"] = d["arms"][:1]


def _overlap(d: dict[str, Any]) -> None:
    d["arms"][0]["doses"].append(_infusion(at=["20 min"]))


def _self_overlap(d: dict[str, Any]) -> None:
    d["arms"][0]["doses"][0].update(at=None, every="20 min", count=3)


def _bad_route(d: dict[str, Any]) -> None:
    _dose0(d).update(route="ip")
    del _dose0(d)["duration"]


def _late_output(d: dict[str, Any]) -> None:
    d["design"] = {"type": "parallel", "follow_up": "2 d"}
    d["outputs"]["times"] = ["1 d", "3 d"]


BAD: list[tuple[str, Mutate, str]] = [
    ("unknown drug", lambda d: _dose0(d).update(drug="ketamin"), "arms[0].doses[0].drug"),
    ("unknown route for the drug", _bad_route, "arms[0].doses[0].route"),
    ("route not a route", lambda d: _dose0(d).update(route="iv"), "arms[0].doses[0].route"),
    ("dose without units", lambda d: _dose0(d).update(amount="0.5"), "arms[0].doses[0].amount"),
    ("dose as a number", lambda d: _dose0(d).update(amount=0.5), "arms[0].doses[0].amount"),
    ("dose in kg", lambda d: _dose0(d).update(amount="0.5 kg"), "arms[0].doses[0].amount"),
    ("dose rate", lambda d: _dose0(d).update(amount="0.5 mg/kg/h"), "arms[0].doses[0].amount"),
    ("negative amount", lambda d: _dose0(d).update(amount="-0.5 mg/kg"),
     "arms[0].doses[0].amount"),
    ("missing amount", lambda d: _dose0(d).pop("amount"), "arms[0].doses[0].amount"),
    ("infusion without duration", lambda d: _dose0(d).pop("duration"),
     "arms[0].doses[0].duration"),
    ("duration on a bolus", lambda d: _dose0(d).update(route="iv_bolus"),
     "arms[0].doses[0].duration"),
    ("duration without units", lambda d: _dose0(d).update(duration="40"),
     "arms[0].doses[0].duration"),
    ("zero duration", lambda d: _dose0(d).update(duration="0 min"),
     "arms[0].doses[0].duration"),
    ("no times", lambda d: _dose0(d).pop("at"), "arms[0].doses[0].at"),
    ("at and every", lambda d: _dose0(d).update(every="2 d", count=2),
     "arms[0].doses[0].every"),
    ("every without count", lambda d: _dose0(d).update(at=None, every="2 d"),
     "arms[0].doses[0].count"),
    ("count 0", lambda d: _dose0(d).update(at=None, every="2 d", count=0),
     "arms[0].doses[0].count"),
    ("count 1001", lambda d: _dose0(d).update(at=None, every="1 h", count=1001),
     "arms[0].doses[0].count"),
    ("every 0", lambda d: _dose0(d).update(at=None, every="0 h", count=2),
     "arms[0].doses[0].every"),
    ("empty doses", lambda d: d["arms"][0].update(doses=[]), "arms[0].doses"),
    ("no arms", lambda d: d.update(arms=[]), "arms"),
    ("duplicate arm names", lambda d: d["arms"][1].update(name="ketamine"), "arms[1].name"),
    ("population size 0", lambda d: d["population"].update(size=0), "population.size"),
    ("population size not a number", lambda d: d["population"].update(size="many"),
     "population.size"),
    ("size 200000 without confirm_large", lambda d: d["population"].update(size=200_000),
     "population.size"),
    ("unknown readout", lambda d: d["outputs"]["readouts"].append("plasma.coffee"),
     "outputs.readouts[3]"),
    ("rodent readout in humans", lambda d: d["outputs"]["readouts"].append("fst.immobility"),
     "outputs.readouts[3]"),
    ("unknown top-level key", lambda d: d.update(nmae="x"), "scenario"),
    ("unknown population key", lambda d: d["population"].update(sizee=3), "population"),
    ("unknown dose key", lambda d: _dose0(d).update(dur="40 min"), "arms[0].doses[0]"),
    ("table is not a table", lambda d: d.update(population=5), "population"),
    ("unknown species", lambda d: d.update(species="dog"), "species"),
    ("negative seed", lambda d: d.update(seed=-1), "seed"),
    ("crossover with one arm", _set_crossover_one_arm, "design.type"),
    ("single group with two arms", lambda d: d["design"].update(
        type="single_group", washout=None, period_length=None), "design.type"),
    ("washout on a parallel design", lambda d: d["design"].update(type="parallel"),
     "design.washout"),
    ("washout shorter than infusion", lambda d: d["design"].update(washout="30 min"),
     "design.washout"),
    ("overlapping infusions", _overlap, "arms[0].doses[1].at[0]"),
    ("overlapping repeated infusions", _self_overlap, "arms[0].doses[0].every"),
    ("response_threshold 150", lambda d: d["outputs"].update(response_threshold=150),
     "outputs.response_threshold"),
    ("response_threshold text", lambda d: d["outputs"].update(response_threshold="half"),
     "outputs.response_threshold"),
    ("output time beyond the period", lambda d: d["outputs"]["times"].append("10 d"),
     "outputs.times[4]"),
    ("output time beyond follow-up", _late_output, "outputs.times[1]"),
    ("negative output time", lambda d: d["outputs"]["times"].append("-1 h"),
     "outputs.times[4]"),
    ("human condition", lambda d: d["population"].update(condition="cus"),
     "population.condition"),
    ("stress in humans", lambda d: d["population"].update(stress={}), "population.stress"),
    ("unknown hypothesis", lambda d: d.update(model={"hypotheses": {"hnk_nmda": 1.0}}),
     "model.hypotheses"),
    ("hypothesis weight 1.5", lambda d: d.update(model={"hypotheses": {"disinhibition": 1.5}}),
     "model.hypotheses.disinhibition"),
    ("parameter not a number", lambda d: d.update(model={"parameters": {"x": "big"}}),
     "model.parameters.x"),
    ("parameter not finite", lambda d: d.update(model={"parameters": {"x": float("nan")}}),
     "model.parameters.x"),
    ("unknown knockout", lambda d: d["population"].update(knockouts=["glun1"]),
     "population.knockouts[0]"),
    ("bdnf fractions not summing to 1", lambda d: d["population"].update(
        bdnf_val66met={"val_val": 0.7, "val_met": 0.2, "met_met": 0.03}),
     "population.bdnf_val66met"),
    ("weight sd negative", lambda d: d["population"].update(weight_kg={"mean": 80, "sd": -1}),
     "population.weight_kg.sd"),
    ("female fraction 1.2", lambda d: d["population"].update(female_fraction=1.2),
     "population.female_fraction"),
    ("inclusion madrs 70", lambda d: d["population"].update(inclusion={"madrs_min": 70}),
     "population.inclusion.madrs_min"),
    ("unknown engine", lambda d: d.update(engine={"method": "euler"}), "engine.method"),
    ("remission 61", lambda d: d["outputs"].update(remission_madrs=61),
     "outputs.remission_madrs"),
    # amounts and times that are not finite numbers with units
    ("dose without a number", lambda d: _dose0(d).update(amount="mg/kg"),
     "arms[0].doses[0].amount"),
    ("dose nan", lambda d: _dose0(d).update(amount="nan mg/kg"), "arms[0].doses[0].amount"),
    ("dose overflowing to inf", lambda d: _dose0(d).update(amount="1e999 mg/kg"),
     "arms[0].doses[0].amount"),
    ("dose per litre", lambda d: _dose0(d).update(amount="0.5 mg/L"), "arms[0].doses[0].amount"),
    ("output time nan", lambda d: d["outputs"]["times"].append("nan h"), "outputs.times[4]"),
    ("output time without a number", lambda d: d["outputs"]["times"].append("h"),
     "outputs.times[4]"),
    ("period length inf", lambda d: d["design"].update(period_length="inf d"),
     "design.period_length"),
    ("output time in kg", lambda d: d["outputs"]["times"].append("40 kg"), "outputs.times[4]"),
    # negative amounts or times where they are not allowed
    ("negative duration", lambda d: _dose0(d).update(duration="-40 min"),
     "arms[0].doses[0].duration"),
    ("negative every", lambda d: _dose0(d).update(at=None, every="-2 d", count=3),
     "arms[0].doses[0].every"),
    ("negative washout", lambda d: d["design"].update(washout="-14 d"), "design.washout"),
    ("unknown blinding", lambda d: d["design"].update(blinding="single_blind"),
     "design.blinding"),
    ("negative period length", lambda d: d["design"].update(period_length="-7 d"),
     "design.period_length"),
    ("negative follow-up", lambda d: d.update(design={"type": "parallel", "follow_up": "-1 d"}),
     "design.follow_up"),
    ("negative population size", lambda d: d["population"].update(size=-5), "population.size"),
    ("fractional population size", lambda d: d["population"].update(size=20.5),
     "population.size"),
    # designs and regimens
    ("crossover with three arms", lambda d: d["arms"].append(
        {"name": "midazolam", "doses": [_infusion("midazolam", "0.045 mg/kg")]}), "design.type"),
    ("washout as long as the infusion", lambda d: d["design"].update(washout="40 min"),
     "design.washout"),
    ("washout shorter than a pretreatment", lambda d: (d["design"].update(washout="1 h"),
     d["arms"][0]["doses"].insert(0, {"drug": "midazolam", "amount": "1 mg",
                                      "route": "iv_bolus", "at": ["-2 h"]})), "design.washout"),
    ("infusion listed twice at the same time", lambda d: _dose0(d).update(at=["0 h", "0 h"]),
     "arms[0].doses[0].at[0]"),
    ("repeat interval shorter than the infusion", lambda d: (
        d.update(design={"type": "single_group", "follow_up": "14 d"}), d.update(arms=[
            {"name": "course", "doses": [_infusion(at=None, every="30 min", count=6)]}])),
     "arms[0].doses[0].every"),
    ("dose after the crossover period", lambda d: d["arms"][0]["doses"].append(
        _infusion(at=["8 d"])), "arms[0].doses[1].at[0]"),
    ("response_threshold 0", lambda d: d["outputs"].update(response_threshold=0),
     "outputs.response_threshold"),
    ("response_threshold negative", lambda d: d["outputs"].update(response_threshold=-10),
     "outputs.response_threshold"),
    ("response_threshold 120 %", lambda d: d["outputs"].update(response_threshold="120 %"),
     "outputs.response_threshold"),
    ("remission negative", lambda d: d["outputs"].update(remission_madrs=-1),
     "outputs.remission_madrs"),
    ("remission hamd17 53", lambda d: d["outputs"].update(remission_hamd17=53),
     "outputs.remission_hamd17"),
    # hypotheses and knockouts
    ("hypothesis weight negative", lambda d: d.update(model={"hypotheses": {"hnk_ampa": -0.1}}),
     "model.hypotheses.hnk_ampa"),
    ("hypothesis weight not a number", lambda d: d.update(
        model={"hypotheses": {"hnk_ampa": "high"}}), "model.hypotheses.hnk_ampa"),
    ("hypotheses not a table", lambda d: d.update(model={"hypotheses": ["disinhibition"]}),
     "model.hypotheses"),
    ("knockouts in the model table", lambda d: d.update(model={"knockouts": ["glua2"]}),
     "model"),
    ("knockouts not a list", lambda d: d["population"].update(knockouts="glua2"),
     "population.knockouts"),
    ("knockout listed twice", lambda d: d["population"].update(knockouts=["glua2", "glua2"]),
     "population.knockouts[1]"),
    ("unknown drug as a number", lambda d: _dose0(d).update(drug=5), "arms[0].doses[0].drug"),
    ("metabolite dosed", lambda d: _dose0(d).update(drug="dhnk"), "arms[0].doses[0].drug"),
    ("arms not a list", lambda d: d.update(arms={"name": "x"}), "arms"),
    ("arm without doses key", lambda d: d["arms"][0].pop("doses"), "arms[0].doses"),
    ("no readouts", lambda d: d["outputs"].update(readouts=[]), "outputs.readouts"),
    ("readout typo", lambda d: d["outputs"].update(readouts=["madr"]), "outputs.readouts[0]"),
]


@pytest.mark.parametrize(("mutate", "path"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_human_scenario(mutate: Mutate, path: str) -> None:
    data = copy.deepcopy(_human())
    mutate(data)
    _raises(data, path)


BAD_RAT: list[tuple[str, Mutate, str]] = [
    ("icv dose in mg/kg", lambda d: d["arms"][0]["doses"].insert(0, {
        "drug": "rapamycin", "amount": "0.2 mg/kg", "route": "icv", "at": ["-30 min"]}),
     "arms[0].doses[0].amount"),
    ("stress end before start", lambda d: d["population"].update(
        stress={"start": "-21 d", "end": "-30 d"}), "population.stress.end"),
    ("naive rodents with a stress schedule", lambda d: d["population"].update(
        condition="naive", stress={"start": "-21 d", "end": "0 d"}), "population.stress"),
    ("human condition in rats", lambda d: d["population"].update(condition="trd"),
     "population.condition"),
    ("inclusion in rats", lambda d: d["population"].update(inclusion={"madrs_min": 20}),
     "population.inclusion"),
    ("human readout in rats", lambda d: d["outputs"].update(readouts=["madrs"]),
     "outputs.readouts[0]"),
    ("icv dose in ug/kg", lambda d: d["arms"][0]["doses"].insert(0, {
        "drug": "rapamycin", "amount": "2 ug/kg", "route": "icv", "at": ["-30 min"]}),
     "arms[0].doses[0].amount"),
    ("icv dose in nmol/kg", lambda d: d["arms"][0]["doses"].insert(0, {
        "drug": "rapamycin", "amount": "2 nmol/kg", "route": "icv", "at": ["-30 min"]}),
     "arms[0].doses[0].amount"),
    ("intracortical dose in mg/kg", lambda d: _dose0(d).update(
        route="intracortical", amount="1 mg/kg"), "arms[0].doses[0].amount"),
    ("negative icv dose", lambda d: d["arms"][0]["doses"].insert(0, {
        "drug": "rapamycin", "amount": "-0.2 nmol", "route": "icv", "at": ["-30 min"]}),
     "arms[0].doses[0].amount"),
    ("intranasal ketamine in a rat (not in the catalog)", lambda d: _dose0(d).update(
        route="intranasal"), "arms[0].doses[0].route"),
    ("icv ketamine given a duration", lambda d: _dose0(d).update(route="icv", amount="1 ug",
                                                                 duration="1 min"),
     "arms[0].doses[0].duration"),
    ("group of one animal", lambda d: d["population"].update(size=1), "population.size"),
    ("stress ending when it starts", lambda d: d["population"].update(
        stress={"start": "-21 d", "end": "-21 d"}), "population.stress.end"),
    ("stress end without units", lambda d: d["population"].update(
        stress={"start": "-21 d", "end": "0"}), "population.stress.end"),
    ("unknown stress key", lambda d: d["population"].update(
        stress={"begin": "-21 d", "end": "0 d"}), "population.stress"),
    ("clinical outcome in rats", lambda d: d["outputs"].update(readouts=["response"]),
     "outputs.readouts[0]"),
]


def _mouse() -> dict[str, Any]:
    """A valid mouse parallel experiment (two groups), as a dict."""
    ip = {"drug": "ketamine", "amount": "10 mg/kg", "route": "ip", "at": ["0 h"]}
    veh = {"drug": "saline", "amount": "0 mg/kg", "route": "ip", "at": ["0 h"]}
    return {
        "name": "test mice",
        "species": "mouse",
        "population": {"size": 8, "condition": "naive"},
        "arms": [{"name": "ketamine", "doses": [ip]}, {"name": "vehicle", "doses": [veh]}],
        "outputs": {"times": ["30 min", "24 h"], "readouts": ["fst.immobility"]},
    }


BAD_MOUSE: list[tuple[str, Mutate, str]] = [
    ("intranasal ketamine in a mouse (not in the catalog)", lambda d: _dose0(d).update(
        route="intranasal"), "arms[0].doses[0].route"),
    ("intranasal esketamine in a mouse (not in the catalog)", lambda d: _dose0(d).update(
        drug="esketamine", route="intranasal"), "arms[0].doses[0].route"),
    ("icv rapamycin in mg/kg", lambda d: d["arms"][0]["doses"].insert(0, {
        "drug": "rapamycin", "amount": "0.2 mg/kg", "route": "icv", "at": ["-30 min"]}),
     "arms[0].doses[0].amount"),
    ("group of one mouse", lambda d: d["population"].update(size=1), "population.size"),
    ("stress schedule ending before it starts", lambda d: d["population"].update(
        condition="social_defeat", stress={"start": "-10 d", "end": "-12 d"}),
     "population.stress.end"),
    ("unknown knockout in a mouse", lambda d: d["population"].update(knockouts=["glun3a"]),
     "population.knockouts[0]"),
]


@pytest.mark.parametrize(("mutate", "path"), [b[1:] for b in BAD_RAT],
                         ids=[b[0] for b in BAD_RAT])
def test_bad_rat_scenario(mutate: Mutate, path: str) -> None:
    data = copy.deepcopy(_rat())
    mutate(data)
    _raises(data, path)


@pytest.mark.parametrize(("mutate", "path"), [b[1:] for b in BAD_MOUSE],
                         ids=[b[0] for b in BAD_MOUSE])
def test_bad_mouse_scenario(mutate: Mutate, path: str) -> None:
    data = copy.deepcopy(_mouse())
    mutate(data)
    _raises(data, path)


def test_valid_bases_for_the_bad_cases() -> None:
    """The bad cases start from valid scenarios, so each rejection is the mutation's."""
    for base in (_human, _rat, _mouse):
        load_scenario(base())


# every bad case, with the valid scenario it mutates (tests/test_cli.py runs them as files)
ALL_BAD: list[tuple[str, Callable[[], dict[str, Any]], Mutate, str]] = (
    [(name, _human, m, p) for name, m, p in BAD]
    + [(name, _rat, m, p) for name, m, p in BAD_RAT]
    + [(name, _mouse, m, p) for name, m, p in BAD_MOUSE]
)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else
                                     "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}"
                               for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"no TOML for {v!r}")


def _toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML text (every table inline; None values left out)."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in data.items()
                   if v is not None)


def test_to_toml_round_trips() -> None:
    import tomllib

    for base in (_human, _rat, _mouse):
        data = base()
        assert tomllib.loads(to_toml(data)) == data


def test_contract_message_for_a_wrong_dimension() -> None:
    data = _human()
    _dose0(data)["amount"] = "0.5 kg"
    err = _raises(data, "arms[0].doses[0].amount")
    assert str(err) == (
        'arms[0].doses[0].amount: "0.5 kg" is not a dose; use mg/kg, mg, ug/kg or nmol'
    )


def test_messages_say_what_is_allowed() -> None:
    data = _human()
    _dose0(data)["drug"] = "ketamin"
    assert "esketamine" in str(_raises(data, "arms[0].doses[0].drug"))
    data = _human()
    _bad_route(data)
    assert "iv_infusion" in str(_raises(data, "arms[0].doses[0].route"))
    data = _human()
    data["population"]["sizee"] = 3
    text = str(_raises(data, "population"))
    assert "sizee" in text and "size" in text and "condition" in text
    data = _rat()
    data["population"]["stress"] = {"start": "-21 d", "end": "-30 d"}
    assert "ends before it starts" in str(_raises(data, "population.stress.end"))


def test_non_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text('{"name": "x", "species": "human"}')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text and "TOML" in text


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")
    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ScenarioError) as info:
        load_scenario(binary)
    assert str(binary) in str(info.value) and "\n" not in str(info.value)


def test_bad_toml_file_content(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nspecies = "human"\n[population]\nsize = 0\n')
    _ = path
    with pytest.raises(ScenarioError, match=r"^population\.size: 0 "):
        load_scenario(path)


def test_source_of_the_wrong_type() -> None:
    with pytest.raises(ValueError, match="source"):
        load_scenario(42)  # type: ignore[arg-type]

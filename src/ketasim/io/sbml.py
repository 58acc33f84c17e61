"""Export a model and its dosing to SBML Level 3 Version 2 (python-libsbml).

The SBML document carries the whole model, one subject's parameter values and one dose
schedule, so that any SBML tool (libRoadRunner, COPASI, tellurium) reproduces ketasim:

- every **state** is a non-constant ``parameter`` driven by a ``rateRule`` (amounts and
  fractions are not all concentrations in a compartment, so species would add a volume
  semantics the model does not have); one nominal compartment ``default`` is declared;
- **parameters** are constant ``parameter``s; the unit is recorded in a ``ketasim``
  annotation and in the notes, together with the source, its tag and any note;
- **derived parameters** are constant parameters with an ``initialAssignment``;
- **assignments** and **readouts** are ``assignmentRule``s (readout ids are
  ``readout_<name>`` with ``.`` written as ``__``; the SBML ``name`` is the ketasim name);
- **inputs** (``stress``) are non-constant parameters set by events;
- **dosing**: a bolus is an event at its time that adds ``dose_<k>_amount`` to the target
  state; an infusion is a rate parameter ``dose_<k>_rate`` added to the target's rate rule,
  switched on (``dose_<k>_amount / dose_<k>_duration``) and off by two events. Dose amounts
  are parameters so that a tool can change them per subject.

Time is in hours; SBML time 0 is ketasim time ``start_time`` (usually the end of the
drug-free burn-in, shortly before the first dose), where the exported initial values
hold, so a simulation starts at 0 as most SBML tools assume. The offset is written in the
notes and in the model annotation (``time_offset``): ketasim time = SBML time + offset.
Anything that cannot be expressed (an unknown function, a dose into an unknown state,
overlapping signals on one input, an identifier SBML does not allow, a non-finite value)
raises :class:`SBMLExportError` instead of writing a model that would differ.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ketasim.errors import ArgumentError, SBMLExportError
from ketasim.experiments.run import Cohort, PreparedCohort, cohorts, prepare_cohort
from ketasim.model.compile import expand
from ketasim.model.spec import ModelSpec
from ketasim.protocol import DoseEvent, Protocol, Signal
from ketasim.scenario import load_scenario

NS_URI = "https://github.com/ketasim/ketasim/sbml-annotation"
NS_PREFIX = "ketasim"
_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"time", "avogadro", "pi", "exponentiale", "true", "false", "infinity",
             "notanumber", "inf", "nan", "default", "e"}


def _libsbml() -> Any:
    try:
        import libsbml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SBMLExportError("SBML export needs python-libsbml: pip install "
                              "'ketasim[sbml]'") from exc
    return libsbml


# ------------------------------------------------------------------------------- math


def readout_id(name: str) -> str:
    """SBML id of readout ``name`` (``plasma.ketamine`` -> ``readout_plasma__ketamine``)."""
    return "readout_" + name.replace(".", "__")


def _num(v: float) -> str:
    if not math.isfinite(v):
        raise SBMLExportError(f"cannot write the non-finite number {v!r} in SBML")
    return repr(float(v))


def to_l3(expr: str, owner: str, time_offset: float = 0.0) -> str:
    """A ketasim expression as an SBML L3 infix formula; ketasim's ``t`` is SBML
    ``time + time_offset``."""
    try:
        tree = ast.parse(expand(expr), mode="eval").body
    except SyntaxError as exc:
        raise SBMLExportError(f"{owner}: cannot parse {expr!r}") from exc
    clock = f"(time + {_num(time_offset)})" if time_offset else "time"
    return _l3(tree, owner, expr, clock)


def _l3(node: ast.expr, owner: str, expr: str, clock: str) -> str:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise SBMLExportError(f"{owner}: constant {node.value!r} in {expr!r}")
        return _num(float(node.value))
    if isinstance(node, ast.Name):
        return clock if node.id == "t" else node.id
    if isinstance(node, ast.UnaryOp):
        inner = _l3(node.operand, owner, expr, clock)
        if isinstance(node.op, ast.USub):
            return f"(-{inner})"
        if isinstance(node.op, ast.UAdd):
            return inner
    if isinstance(node, ast.BinOp):
        ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}
        for kind, sym in ops.items():
            if isinstance(node.op, kind):
                left, right = _l3(node.left, owner, expr, clock), _l3(node.right, owner, expr,
                                                                      clock)
                return f"({left} {sym} {right})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn, args = node.func.id, [_l3(a, owner, expr, clock) for a in node.args]
        if fn in ("exp", "sqrt") and len(args) == 1:
            return f"{fn}({args[0]})"
        if fn == "log" and len(args) == 1:
            return f"ln({args[0]})"
        if fn in ("maximum", "minimum") and len(args) == 2:
            cmp = ">=" if fn == "maximum" else "<="
            return f"piecewise({args[0]}, {args[0]} {cmp} {args[1]}, {args[1]})"
    raise SBMLExportError(f"{owner}: cannot express {ast.unparse(node)!r} (in {expr!r}) "
                          "in SBML")


# ----------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportInfo:
    """What was written: ids of states, readouts and doses; ketasim time of SBML time 0."""

    path: Path
    time_offset: float  # ketasim time (h) = SBML time + time_offset
    state_ids: list[str]
    readout_ids: dict[str, str]  # ketasim readout name -> SBML id
    dose_parameters: list[str]


def _check_id(sid: str, what: str, taken: set[str]) -> str:
    if not _SID.match(sid) or sid.lower() in _RESERVED:
        raise SBMLExportError(f"{what} {sid!r} is not a valid SBML identifier "
                              "(letters, digits, _; not a reserved word)")
    if sid in taken:
        raise SBMLExportError(f"{what} {sid!r} clashes with another SBML identifier")
    taken.add(sid)
    return sid


def _notes(libsbml: Any, elem: Any, lines: Iterable[str]) -> None:
    body = "".join(f"<p>{escape(x)}</p>" for x in lines if x)
    if body and elem.setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml">{body}</body>') \
            != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SBMLExportError(f"cannot write the notes of {elem.getId()!r}")


def _annotate(libsbml: Any, elem: Any, element: str, **attrs: str) -> None:
    text = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items() if v != "")
    xml = (f'<annotation><{NS_PREFIX}:{element} xmlns:{NS_PREFIX}="{NS_URI}" {text}/>'
           "</annotation>")
    if elem.setAnnotation(xml) != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SBMLExportError(f"cannot write the annotation of {elem.getId()!r}")


def _math(libsbml: Any, formula: str, owner: str) -> Any:
    node = libsbml.parseL3Formula(formula)
    if node is None:
        raise SBMLExportError(f"{owner}: libSBML cannot parse {formula!r}: "
                              f"{libsbml.getLastParseL3Error()}")
    return node


def _ok(code: int, what: str) -> None:
    if code != 0:  # LIBSBML_OPERATION_SUCCESS
        raise SBMLExportError(f"libSBML refused {what} (code {code})")


def _value(v: Any, subject: int, what: str) -> float:
    arr = np.atleast_1d(np.asarray(v, dtype=float))
    x = float(arr[subject] if arr.size > 1 else arr[0])
    if not math.isfinite(x):
        raise SBMLExportError(f"{what} is not finite ({x!r})")
    return x


def export_sbml(spec: ModelSpec, protocol_events: Protocol | Sequence[DoseEvent | Signal],
                path: str | Path, *, subject: int = 0,
                parameters: dict[str, float] | None = None,
                initial_state: dict[str, float] | Sequence[float] | np.ndarray | None = None,
                inputs: dict[str, float] | None = None, start_time: float | None = None,
                model_id: str = "ketasim_model", description: str = "",
                derived_rules: bool = False) -> ExportInfo:
    """Write ``spec`` and the dosing of ``protocol_events`` as SBML L3v2 to ``path``.

    ``protocol_events`` is a :class:`Protocol` (per-subject amounts: ``subject`` picks one)
    or a list of :class:`DoseEvent` and :class:`Signal`. ``parameters`` overrides base
    parameter values by name; ``initial_state`` gives numeric initial values (by name or in
    state order), otherwise the spec's initial expressions become initial assignments;
    ``inputs`` are the baseline input values (default: the protocol's baseline, else 0);
    ``start_time`` (ketasim h) becomes SBML time 0 (default 0). ``derived_rules`` writes
    derived parameters as assignment rules instead of initial assignments, so that a tool
    that changes a base parameter without re-evaluating initial assignments (libRoadRunner's
    ``setValue`` + ``reset``, as pyPESTO's RoadRunner objective does) still sees them change.
    Raises :class:`SBMLExportError` on anything SBML cannot express here.
    """
    libsbml = _libsbml()
    spec.check()
    off = float(start_time) if start_time is not None else 0.0
    if not math.isfinite(off):
        raise SBMLExportError(f"start_time {start_time!r} is not finite")
    if isinstance(protocol_events, Protocol):
        events = list(protocol_events.events)
        signals = list(protocol_events.signals)
        base_inputs = {k: _value(v, subject, f"baseline input {k}")
                       for k, v in protocol_events.baseline_inputs.items()}
    else:
        events = [e for e in protocol_events if isinstance(e, DoseEvent)]
        signals = [s for s in protocol_events if isinstance(s, Signal)]
        other = [x for x in protocol_events if not isinstance(x, DoseEvent | Signal)]
        if other:
            raise SBMLExportError(f"cannot export protocol item {other[0]!r}")
        base_inputs = {}
    base_inputs.update(inputs or {})
    unknown = set(base_inputs) - set(spec.inputs)
    if unknown:
        raise SBMLExportError(f"inputs {sorted(unknown)} are not inputs of the model")
    params = {k: p.value for k, p in spec.parameters.items()}
    for pname, v in (parameters or {}).items():
        if pname not in params:
            raise SBMLExportError(f"parameter {pname!r} is not a base parameter of the model")
        params[pname] = float(v)

    states = list(spec.states)
    init: dict[str, float] | None = None
    if initial_state is not None:
        if isinstance(initial_state, dict):
            missing = set(states) - set(initial_state)
            if missing:
                raise SBMLExportError(f"initial_state lacks {sorted(missing)[:5]}")
            init = {s: float(initial_state[s]) for s in states}
        else:
            vals = np.asarray(initial_state, dtype=float).reshape(-1)
            if vals.size != len(states):
                raise SBMLExportError(f"initial_state has {vals.size} values for "
                                      f"{len(states)} states")
            init = dict(zip(states, vals.tolist(), strict=True))

    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    taken: set[str] = set()
    _ok(model.setId(_check_id(model_id, "model id", taken)), "the model id")
    model.setName(description or model_id)
    hour = model.createUnitDefinition()
    hour.setId(_check_id("hour", "unit", taken))
    u = hour.createUnit()
    u.setKind(libsbml.UNIT_KIND_SECOND)
    u.setExponent(1)
    u.setScale(0)
    u.setMultiplier(3600.0)
    model.setTimeUnits("hour")
    comp = model.createCompartment()
    comp.setId(_check_id("default_compartment", "compartment", taken))
    comp.setConstant(True)
    comp.setSize(1.0)
    comp.setSpatialDimensions(3)
    _notes(libsbml, model, [
        description,
        "Exported by ketasim (https://github.com/ketasim/ketasim). Time unit: hour. "
        "States are parameters with rate rules; units and sources are in each "
        "element's notes and ketasim annotation.",
        f"SBML time 0 is ketasim time {off!r} h (ketasim time = SBML time + {off!r}); "
        "the initial values are the state there, so simulate from SBML time 0.",
    ])
    _annotate(libsbml, model, "model", time_offset=repr(off), time_unit="h")

    def new_param(sid: str, value: float | None, constant: bool, what: str) -> Any:
        p = model.createParameter()
        _ok(p.setId(_check_id(sid, what, taken)), f"{what} id {sid!r}")
        p.setConstant(constant)
        if value is not None:
            if not math.isfinite(value):
                raise SBMLExportError(f"{what} {sid!r} has the non-finite value {value!r}")
            p.setValue(float(value))
        return p

    for name, par in spec.parameters.items():
        p = new_param(name, params[name], True, "parameter")
        _notes(libsbml, p, [f"unit: {par.unit}", f"source: {par.source}", f"tag: {par.tag}",
                            f"note: {par.note}" if par.note else ""])
        _annotate(libsbml, p, "parameter", unit=par.unit, source=par.source, tag=par.tag,
                  group=par.group)
    for name in spec.inputs:
        p = new_param(name, base_inputs.get(name, 0.0), False, "input")
        _notes(libsbml, p, [f"exogenous input, unit: {spec.inputs[name]}"])
        _annotate(libsbml, p, "input", unit=spec.inputs[name])
    for name, d in spec.derived.items():
        p = new_param(name, None, not derived_rules, "derived parameter")
        ia = model.createAssignmentRule() if derived_rules else model.createInitialAssignment()
        if derived_rules:
            ia.setVariable(name)
        else:
            ia.setSymbol(name)
        _ok(ia.setMath(_math(libsbml, to_l3(d.expr, name, off), name)), f"the math of {name}")
        _notes(libsbml, p, [f"unit: {d.unit}", d.doc])
        _annotate(libsbml, p, "derived", unit=d.unit)

    # dose parameters and the rate terms infusions add to their targets
    extra_rate: dict[str, list[str]] = {s: [] for s in states}
    dose_params: list[str] = []
    dosing: list[tuple[float, str, str]] = []  # (time, target id, formula assigned)
    for k, e in enumerate(events):
        if e.state not in spec.states:
            raise SBMLExportError(f"dose {e.label or k} goes into {e.state!r}, which is not a "
                                  "state of the model")
        amount = _value(e.amount, subject, f"amount of dose {e.label or k}")
        if not math.isfinite(e.time) or not math.isfinite(e.duration) or e.duration < 0:
            raise SBMLExportError(f"dose {e.label or k} has time {e.time!r} and duration "
                                  f"{e.duration!r}")
        amt = new_param(f"dose_{k}_amount", amount, True, "dose amount")
        _notes(libsbml, amt, [f"{e.label}: amount into {e.state} (nmol) at {e.time!r} h"
                              + (f" over {e.duration!r} h" if e.duration else "")])
        _annotate(libsbml, amt, "dose", unit="nmol", label=e.label, state=e.state,
                  time=repr(e.time), duration=repr(e.duration))
        dose_params.append(amt.getId())
        if e.duration == 0:
            dosing.append((e.time, e.state, f"{e.state} + dose_{k}_amount"))
        else:
            dur = new_param(f"dose_{k}_duration", e.duration, True, "dose duration")
            _annotate(libsbml, dur, "dose", unit="h")
            new_param(f"dose_{k}_rate", 0.0, False, "infusion rate")
            extra_rate[e.state].append(f"dose_{k}_rate")
            dosing.append((e.time, f"dose_{k}_rate", f"dose_{k}_amount / dose_{k}_duration"))
            dosing.append((e.end, f"dose_{k}_rate", "0"))
    for name in spec.inputs:
        mine = sorted((s for s in signals if s.name == name), key=lambda s: s.start)
        for s0, s1 in itertools.pairwise(mine):
            if s1.start < s0.end:
                raise SBMLExportError(f"signals on input {name!r} overlap ({s0.start}-"
                                      f"{s0.end} and {s1.start}-{s1.end} h)")
        for j, sig in enumerate(mine):
            val = new_param(f"signal_{name}_{j}_value", _value(sig.value, subject,
                                                               f"signal {name}"), True,
                            "signal value")
            _annotate(libsbml, val, "signal", unit=spec.inputs[name], start=repr(sig.start),
                      end=repr(sig.end))
            dosing.append((sig.start, name, val.getId()))
            if math.isfinite(sig.end):
                dosing.append((sig.end, name, _num(base_inputs.get(name, 0.0))))
    unknown_signals = {s.name for s in signals} - set(spec.inputs)
    if unknown_signals:
        raise SBMLExportError(f"signals on {sorted(unknown_signals)}, which are not inputs")

    for name, st in spec.states.items():
        p = new_param(name, init[name] if init is not None else None, False, "state")
        _notes(libsbml, p, [f"unit: {st.unit}", st.doc])
        _annotate(libsbml, p, "state", unit=st.unit, group=st.group)
        if init is None:
            ia = model.createInitialAssignment()
            ia.setSymbol(name)
            _ok(ia.setMath(_math(libsbml, to_l3(st.initial, f"{name} (initial)", off), name)),
                f"the initial value of {name}")
    for name, a in spec.assignments.items():
        p = new_param(name, None, False, "assignment")
        _notes(libsbml, p, [f"unit: {a.unit}", a.doc])
        _annotate(libsbml, p, "assignment", unit=a.unit)
        rule = model.createAssignmentRule()
        rule.setVariable(name)
        _ok(rule.setMath(_math(libsbml, to_l3(a.expr, name, off), name)), f"the math of {name}")
    readouts: dict[str, str] = {}
    for name, r in spec.readouts.items():
        sid = readout_id(name)
        p = new_param(sid, None, False, "readout")
        p.setName(name)
        _notes(libsbml, p, [f"ketasim readout {name}, unit: {r.unit}", r.doc])
        _annotate(libsbml, p, "readout", name=name, unit=r.unit)
        rule = model.createAssignmentRule()
        rule.setVariable(sid)
        _ok(rule.setMath(_math(libsbml, to_l3(r.expr, name, off), name)), f"the math of {name}")
        readouts[name] = sid
    for name, st in spec.states.items():
        formula = to_l3(st.rate, name, off)
        if extra_rate[name]:
            formula = f"{formula} + {' + '.join(extra_rate[name])}"
        rule = model.createRateRule()
        rule.setVariable(name)
        _ok(rule.setMath(_math(libsbml, formula, name)), f"the rate of {name}")

    # events: one per (time, target); several assignments at one time share an event
    grouped: dict[float, list[tuple[str, str]]] = {}
    for t, target, formula in dosing:
        grouped.setdefault(float(t), []).append((target, formula))
    for q, (t, assigns) in enumerate(sorted(grouped.items())):
        targets = [a for a, _ in assigns]
        merged: dict[str, str] = {}
        for target, formula in assigns:  # two boluses into one state at one time: add up
            if target in merged:
                if not formula.startswith(f"{target} + "):
                    raise SBMLExportError(f"two events set {target!r} at {t!r} h")
                formula = f"{merged[target]} + {formula[len(target) + 3:]}"
            merged[target] = formula
        del targets
        ev = model.createEvent()
        ev.setId(_check_id(f"event_{q}", "event", taken))
        ev.setUseValuesFromTriggerTime(True)
        trig = ev.createTrigger()
        trig.setInitialValue(False)  # an event at the start time fires at the start
        trig.setPersistent(True)
        when = t - off
        if when < 0:
            raise SBMLExportError(f"an event at {t!r} h is before the start time {off!r} h")
        _ok(trig.setMath(_math(libsbml, f"time >= {_num(when)}", ev.getId())), "a trigger")
        for target, formula in merged.items():
            ea = ev.createEventAssignment()
            ea.setVariable(target)
            _ok(ea.setMath(_math(libsbml, formula, ev.getId())), "an event assignment")

    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.checkConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        raise SBMLExportError("libSBML finds the exported model invalid: "
                              + "; ".join(e.getMessage().strip() for e in errors[:3]))
    out = Path(path)
    if not libsbml.writeSBMLToFile(doc, str(out)):
        raise SBMLExportError(f"cannot write {out}")
    return ExportInfo(out, off, states, readouts, dose_params)


# ------------------------------------------------------------------------ from scenarios


def subject_setup(scenario: Any, subject: int = 0, cohort: int | str = 0) -> PreparedCohort:
    """One subject of one cohort (a name, or an index into the scenario's cohorts),
    prepared exactly as a run prepares it (:func:`ketasim.experiments.run.prepare_cohort`:
    the same parameter overrides, checked by name, and the same burn-in)."""
    sc = load_scenario(scenario)
    groups = cohorts(sc)
    if isinstance(cohort, str):
        named = [g for g in groups if g.name == cohort]
        if not named:
            raise ArgumentError("cohort", f"{cohort!r} is not a cohort; cohorts: "
                                f"{[g.name for g in groups]}")
        group = named[0]
    else:
        if not 0 <= cohort < len(groups):
            raise ArgumentError("cohort", f"{cohort} is not a name or an index in "
                                f"[0, {len(groups)}); cohorts: {[g.name for g in groups]}")
        group = groups[cohort]
    if not 0 <= subject < len(group.subjects):
        raise ArgumentError("subject", f"{subject} is not in [0, {len(group.subjects)})")
    one = Cohort(group.name, group.subjects[subject:subject + 1], group.arms, group.offsets)
    return prepare_cohort(sc, one)


def export_scenario(scenario: Any, path: str | Path, subject: int = 0,
                    cohort: int | str = 0) -> ExportInfo:
    """Export one subject of a scenario (the first cohort's first subject by default).

    The model, parameters and protocol are built like :mod:`ketasim.experiments.run`; the
    initial values are the subject's state after the drug-free burn-in, at ``start_time``.
    """
    sc = load_scenario(scenario)
    s = subject_setup(sc, subject, cohort)
    names = list(s.model.spec.parameters)
    desc = (f"{sc.name} -- cohort {s.cohort.name!r}, subject "
            f"{int(s.cohort.subjects[0])}, species {sc.species}")
    sid = re.sub(r"[^A-Za-z0-9_]", "_", f"ketasim_{sc.species}_{s.cohort.name}")
    return export_sbml(s.model.spec, s.protocol, path, subject=0,
                       parameters={k: float(s.P[i, 0]) for i, k in enumerate(names)},
                       initial_state=s.y0[:, 0], start_time=s.t_start, model_id=sid,
                       description=desc)

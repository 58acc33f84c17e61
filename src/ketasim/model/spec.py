"""A small model language: named states, parameters and equations as expression strings.

The same definition is compiled to a NumPy right-hand side (vectorised over subjects),
exported to SBML and rendered into docs/model.md, so there is one source of truth.

Expressions are Python syntax over state, parameter and assignment names, with the
functions ``exp, log, sqrt, hill(x, k, n) = x^n / (k^n + x^n), pos(x) = max(x, 0),
spos(x) = x/2 (1 + x/sqrt(x^2 + 1e-4)) (a smooth pos),
maximum, minimum``. Units are documented per symbol, not checked symbolically; the
tests check the model against analytic solutions and conservation laws instead.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

FUNCTIONS = ("exp", "log", "sqrt", "hill", "pos", "spos", "maximum", "minimum")


@dataclass(frozen=True)
class Parameter:
    """A model constant with its unit and source (citation and tag, or how calibrated)."""

    name: str
    value: float
    unit: str
    source: str
    tag: str = "assumed"
    note: str = ""
    group: str = ""
    origin: str = ""  # dotted catalog name it comes from (mechanism.structure.tau_spine)


@dataclass(frozen=True)
class State:
    """A state variable: ``rate`` is d(state)/dt as an expression, ``initial`` its value at
    the start of the burn-in (an expression of parameters)."""

    name: str
    unit: str
    rate: str
    initial: str = "0"
    doc: str = ""
    group: str = ""


@dataclass(frozen=True)
class Assignment:
    """An algebraic quantity computed from states, parameters and earlier assignments."""

    name: str
    expr: str
    unit: str
    doc: str = ""
    group: str = ""


@dataclass
class ModelSpec:
    """States, parameters, derived parameters, assignments and readouts of one model.

    ``derived`` are functions of parameters only (computed once per subject);
    ``assignments`` may use states (computed at every right-hand-side call);
    ``readouts`` map public readout names (``plasma.ketamine``) to expressions.
    ``inputs`` names the exogenous signals the engine supplies (``stress``): each is read
    in expressions as an ordinary symbol and set piecewise-constant by the protocol.
    """

    states: dict[str, State] = field(default_factory=dict)
    parameters: dict[str, Parameter] = field(default_factory=dict)
    derived: dict[str, Assignment] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    readouts: dict[str, Assignment] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # name -> unit

    # -- building -----------------------------------------------------------------------
    def param(self, name: str, value: float, unit: str, source: str, tag: str = "assumed",
              note: str = "", group: str = "", origin: str = "") -> str:
        if name in self.parameters:
            raise ValueError(f"parameter {name!r} defined twice")
        self.parameters[name] = Parameter(name, float(value), unit, source, tag, note, group,
                                          origin)
        return name

    def state(self, name: str, unit: str, rate: str, initial: str = "0", doc: str = "",
              group: str = "") -> str:
        if name in self.states:
            raise ValueError(f"state {name!r} defined twice")
        self.states[name] = State(name, unit, rate, initial, doc, group)
        return name

    def add_rate(self, name: str, term: str) -> None:
        """Add ``term`` to the rate of state ``name`` (a flux from another block)."""
        s = self.states[name]
        self.states[name] = State(s.name, s.unit, f"{s.rate} + ({term})", s.initial, s.doc,
                                  s.group)

    def derive(self, name: str, expr: str, unit: str, doc: str = "", group: str = "") -> str:
        if name in self.derived:
            raise ValueError(f"derived parameter {name!r} defined twice")
        self.derived[name] = Assignment(name, expr, unit, doc, group)
        return name

    def assign(self, name: str, expr: str, unit: str, doc: str = "", group: str = "") -> str:
        if name in self.assignments:
            raise ValueError(f"assignment {name!r} defined twice")
        self.assignments[name] = Assignment(name, expr, unit, doc, group)
        return name

    def readout(self, name: str, expr: str, unit: str, doc: str = "") -> None:
        self.readouts[name] = Assignment(name, expr, unit, doc)

    def input(self, name: str, unit: str) -> str:
        self.inputs[name] = unit
        return name

    # -- inspection ---------------------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        return list(self.states)

    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameters)

    def check(self) -> None:
        """Every symbol is defined before use and every function is known; ValueError if not."""
        known = set(self.parameters) | set(self.inputs)
        for a in self.derived.values():
            _check_expr(a.name, a.expr, known)
            known.add(a.name)
        known |= set(self.states)
        known.add("t")
        for a in self.assignments.values():
            _check_expr(a.name, a.expr, known)
            known.add(a.name)
        for s in self.states.values():
            _check_expr(s.name, s.rate, known)
            _check_expr(f"{s.name} (initial)", s.initial,
                        set(self.parameters) | set(self.derived) | set(self.inputs))
        for r in self.readouts.values():
            _check_expr(r.name, r.expr, known)


def symbols(expr: str) -> set[str]:
    """Names used in ``expr`` (functions excluded)."""
    tree = ast.parse(expr, mode="eval")
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            out.add(node.id)
    return out


_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd,
)


def _check_expr(owner: str, expr: str, known: set[str]) -> None:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{owner}: cannot parse {expr!r}") from exc
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"{owner}: {type(node).__name__} not allowed in {expr!r}")
        if isinstance(node, ast.Call) and (
                not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS):
            raise ValueError(f"{owner}: unknown function in {expr!r}")
    for name in symbols(expr):
        if name not in known:
            raise ValueError(f"{owner}: {name!r} used before it is defined in {expr!r}")

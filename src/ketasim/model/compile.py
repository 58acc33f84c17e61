"""Compile a :class:`ModelSpec` into NumPy functions vectorised over subjects.

Arrays are laid out state-major: ``y`` has shape ``(n_states, n_subjects)`` (or
``(n_states,)`` for one subject), parameters ``P`` shape ``(n_params + n_derived, ...)``.
The generated source is kept on the compiled object (``.source``) so it can be read,
and so that other back ends (numba) can compile the same text.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ketasim.model.spec import ModelSpec

# smooth positive part: switches that sit exactly at a drug-free equilibrium (feedbacks that
# act only above baseline, running peaks) must be differentiable there, or implicit solvers
# with finite-difference Jacobians stall on the kink
SPOS_EPS = 0.01


class _Expand(ast.NodeTransformer):
    """Inline the helper functions so every back end sees plain arithmetic."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        assert isinstance(node.func, ast.Name)
        name, args = node.func.id, node.args
        if name == "hill":
            x, k, n = args
            xn = ast.BinOp(x, ast.Pow(), n)
            return ast.BinOp(xn, ast.Div(), ast.BinOp(ast.BinOp(k, ast.Pow(), n), ast.Add(), xn))
        if name == "pos":
            return ast.Call(ast.Name("maximum", ast.Load()), [args[0], ast.Constant(0.0)], [])
        if name == "spos":  # smooth pos: x/2 (1 + x / sqrt(x^2 + e^2)); 0 at 0 and at -inf
            x = args[0]
            root = ast.Call(ast.Name("sqrt", ast.Load()),
                            [ast.BinOp(ast.BinOp(x, ast.Mult(), x), ast.Add(),
                                       ast.Constant(SPOS_EPS ** 2))], [])
            step = ast.BinOp(ast.Constant(1.0), ast.Add(), ast.BinOp(x, ast.Div(), root))
            return ast.BinOp(ast.BinOp(ast.Constant(0.5), ast.Mult(), x), ast.Mult(), step)
        return node


def expand(expr: str) -> str:
    """``expr`` with hill(), pos() and spos() written out."""
    tree = _Expand().visit(ast.parse(expr, mode="eval"))
    return ast.unparse(ast.fix_missing_locations(tree))


@dataclass
class CompiledModel:
    """Callable form of a model; names index the arrays (never positions in user code)."""

    spec: ModelSpec
    state_names: list[str]
    param_names: list[str]  # base parameters followed by derived ones
    input_names: list[str]
    readout_names: list[str]
    source: str
    _ns: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    def state_index(self, name: str) -> int:
        return self.state_names.index(name)

    def param_index(self, name: str) -> int:
        return self.param_names.index(name)

    def base_parameters(self) -> np.ndarray:
        """Typical values of the base parameters, shape (n_base,)."""
        return np.array([p.value for p in self.spec.parameters.values()], dtype=float)

    def complete(self, base: np.ndarray) -> np.ndarray:
        """Append derived parameters: (n_base, ...) -> (n_base + n_derived, ...)."""
        fn: Callable[[np.ndarray], np.ndarray] = self._ns["_derive"]
        return fn(np.asarray(base, dtype=float))

    def initial(self, P: np.ndarray, inp: np.ndarray | None = None) -> np.ndarray:
        """Initial states, shape (n_states, ...); ``inp`` are the inputs at the start."""
        fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = self._ns["_initial"]
        if inp is None:
            inp = np.zeros((len(self.input_names), *np.shape(P[0])))
        return fn(P, inp)

    def rhs(self, t: float, y: np.ndarray, P: np.ndarray, inp: np.ndarray,
            rate_in: np.ndarray | float = 0.0) -> np.ndarray:
        """d(y)/dt; ``rate_in`` adds zero-order inputs (infusions), same shape as ``y``."""
        fn: Callable[..., np.ndarray] = self._ns["_rhs"]
        return fn(t, y, P, inp) + rate_in

    def readouts(self, t: np.ndarray | float, y: np.ndarray, P: np.ndarray,
                 inp: np.ndarray) -> dict[str, np.ndarray]:
        fn: Callable[..., tuple[np.ndarray, ...]] = self._ns["_readouts"]
        vals = fn(t, y, P, inp)
        return dict(zip(self.readout_names, vals, strict=True))


def _lines_unpack(names: list[str], array: str, indent: str = "    ") -> list[str]:
    return [f"{indent}{n} = {array}[{i}]" for i, n in enumerate(names)]


def compile_model(spec: ModelSpec) -> CompiledModel:
    """Generate and exec the NumPy source for ``spec`` (checked first)."""
    spec.check()
    base = list(spec.parameters)
    derived = list(spec.derived)
    states = list(spec.states)
    inputs = list(spec.inputs)
    readouts = list(spec.readouts)
    src: list[str] = []

    src.append("def _derive(B):")
    src += _lines_unpack(base, "B")
    for d in derived:
        src.append(f"    {d} = {expand(spec.derived[d].expr)} + 0.0 * B[0]")
    src.append(f"    return np.concatenate([B, np.stack([{', '.join(derived)}])])"
               if derived else "    return B")

    src.append("def _initial(P, inp):")
    src += _lines_unpack(base + derived, "P")
    src += _lines_unpack(inputs, "inp")
    src.append(f"    out = np.empty(({len(states)},) + np.shape(P[0]))")
    for i, s in enumerate(states):
        src.append(f"    out[{i}] = {expand(spec.states[s].initial)} + 0.0 * P[0]")
    src.append("    return out")

    body: list[str] = []
    body += _lines_unpack(base + derived, "P")
    body += _lines_unpack(inputs, "inp")
    body += _lines_unpack(states, "y")
    for a in spec.assignments.values():
        body.append(f"    {a.name} = {expand(a.expr)}")

    src.append("def _rhs(t, y, P, inp):")
    src += body
    src.append("    dy = np.empty_like(y)")
    for i, s in enumerate(states):
        src.append(f"    dy[{i}] = {expand(spec.states[s].rate)}")
    src.append("    return dy")

    src.append("def _readouts(t, y, P, inp):")
    src += body
    outs = [f"({expand(spec.readouts[r].expr)}) + 0.0 * y[0]" for r in readouts]
    src.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")

    source = "\n".join(src) + "\n"
    ns: dict[str, Any] = {
        "np": np, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
        "maximum": np.maximum, "minimum": np.minimum,
    }
    exec(compile(source, "<ketasim-model>", "exec"), ns)
    return CompiledModel(spec, states, base + derived, inputs, readouts, source, ns)

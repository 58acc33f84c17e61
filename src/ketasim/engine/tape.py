"""Model functions as tapes: straight-line three-address code the fast engine interprets.

:mod:`ketasim.engine.fast` writes the model's right-hand side and its analytic sparse
Jacobian as Python functions; this module turns their bodies into *tapes*, integer
instruction arrays over a register file, so that one compiled interpreter
(:mod:`ketasim.engine.kernel`, compiled once per installation, whatever the model) runs
every model. On the way it

- folds constants (``x ** 1.0`` is ``x``, ``x ** 2.0`` is ``x * x``);
- merges common subexpressions (the Jacobian re-reads the assignments the right-hand side
  computes, and differentiating ``exp``/``hill`` repeats the function's own value);
- hoists everything that depends on parameters and constants only into a *prelude* run
  once per subject (``k ** n`` of every Hill function, ``1 - theta``, ...);
- drops what no output reads, and allocates registers by liveness (a value's register
  is reused after its last read).

An instruction is a row ``(op, dst, a, b, c, e)`` of an int64 array; ``op`` is one of the
opcodes below, ``dst`` a register, ``a``..``e`` registers or, for loads, constants and
stores, indices into the named array. Register 0 holds ``t``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# opcodes (kernel.py dispatches on these numbers)
CONST, LOADY, LOADP, LOADU, LOADR, ADD, SUB, MUL, DIV, POW, NEG, EXP, LOG, SQRT, MAX, MIN, \
    DPOW, SELGE, SELLE, STORE0, STORE1 = range(21)
T_REG = 0

_BIN = {ast.Add: ADD, ast.Sub: SUB, ast.Mult: MUL, ast.Div: DIV, ast.Pow: POW}
_FUN1 = {"exp": EXP, "log": LOG, "sqrt": SQRT}
_FUN2 = {"max": MAX, "min": MIN, "_dpow": DPOW}
_LOADS = {"y": LOADY, "p": LOADP, "u": LOADU, "r": LOADR}
_PURE_FOLD: dict[int, Callable[[float, float], float]] = {
    ADD: lambda a, b: a + b, SUB: lambda a, b: a - b, MUL: lambda a, b: a * b,
    MAX: max, MIN: min}


@dataclass
class Program:
    """The tapes of one model: ``prelude`` (parameters only), ``rhs`` (writes f to output
    0), ``jac`` (Jacobian values in LU-pattern order to output 0, df/dt to output 1);
    ``consts`` the constant pool; ``n_regs`` the register file's size."""

    prelude: np.ndarray  # (m, 6) int64
    rhs: np.ndarray
    jac: np.ndarray
    consts: np.ndarray  # float64
    n_regs: int

    @property
    def sizes(self) -> dict[str, int]:
        return {"prelude": len(self.prelude), "rhs": len(self.rhs), "jac": len(self.jac),
                "registers": self.n_regs}


class _Builder:
    """SSA emission with constant folding, CSE and parameter-only hoisting."""

    def __init__(self) -> None:
        self.consts: list[float] = []
        self.const_ix: dict[float, int] = {}
        self.code: list[tuple[int, int, tuple[int, ...]]] = []  # (op, vreg, args)
        self.invariant: list[bool] = [False]  # vreg 0 is t
        self.value: dict[int, float] = {}  # vregs known to be constants
        self.memo: dict[tuple[int, tuple[int, ...]], int] = {}

    def emit(self, op: int, args: tuple[int, ...], invariant: bool) -> int:
        key = (op, args)
        if key in self.memo:
            return self.memo[key]
        v = len(self.invariant)
        self.invariant.append(invariant)
        self.code.append((op, v, args))
        self.memo[key] = v
        return v

    def const(self, x: float) -> int:
        x = float(x)
        if x not in self.const_ix:
            self.const_ix[x] = len(self.consts)
            self.consts.append(x)
        v = self.emit(CONST, (self.const_ix[x],), True)
        self.value[v] = x
        return v

    def load(self, array: str, index: int) -> int:
        return self.emit(_LOADS[array], (index,), array == "p")

    def op(self, op: int, *args: int) -> int:
        vals = [self.value.get(a) for a in args]
        if all(v is not None for v in vals) and op in _PURE_FOLD:
            return self.const(_PURE_FOLD[op](*vals))  # type: ignore[arg-type]
        if op == POW and vals[1] == 1.0:
            return args[0]
        if op == POW and vals[1] == 2.0:
            return self.op(MUL, args[0], args[0])
        if op == MUL and vals[0] == 1.0:
            return args[1]
        if op == MUL and vals[1] == 1.0:
            return args[0]
        inv = all(self.invariant[a] for a in args)
        return self.emit(op, args, inv)


def _expr(b: _Builder, node: ast.expr, names: dict[str, int]) -> int:
    if isinstance(node, ast.Constant):
        return b.const(float(node.value))  # type: ignore[arg-type]
    if isinstance(node, ast.Name):
        if node.id == "t":
            return T_REG
        return names[node.id]
    if isinstance(node, ast.Subscript):
        assert isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)
        return b.load(node.value.id, int(node.slice.value))  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp):
        x = _expr(b, node.operand, names)
        if isinstance(node.op, ast.UAdd):
            return x
        if x in b.value:
            return b.const(-b.value[x])
        return b.op(NEG, x)
    if isinstance(node, ast.BinOp):
        return b.op(_BIN[type(node.op)], _expr(b, node.left, names),
                    _expr(b, node.right, names))
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        args = [_expr(b, a, names) for a in node.args]
        fn = node.func.id
        if fn in _FUN1:
            return b.op(_FUN1[fn], *args)
        return b.op(_FUN2[fn], *args)
    if isinstance(node, ast.IfExp):
        test = node.test
        assert isinstance(test, ast.Compare) and len(test.ops) == 1
        op = SELGE if isinstance(test.ops[0], ast.GtE) else SELLE
        a, c = _expr(b, test.left, names), _expr(b, test.comparators[0], names)
        return b.op(op, a, c, _expr(b, node.body, names), _expr(b, node.orelse, names))
    raise ValueError(f"tape: cannot compile {ast.dump(node)}")


def _body(b: _Builder, fn: ast.FunctionDef, outs: dict[str, int]
          ) -> list[tuple[int, int, int]]:
    """Emit one function body; return its stores (output, slot, vreg)."""
    names: dict[str, int] = {}
    stores: list[tuple[int, int, int]] = []
    for st in fn.body:
        if isinstance(st, (ast.Return, ast.Expr)):
            continue
        assert isinstance(st, ast.Assign) and len(st.targets) == 1
        target = st.targets[0]
        v = _expr(b, st.value, names)
        if isinstance(target, ast.Name):
            names[target.id] = v
        else:
            assert isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
            assert isinstance(target.slice, ast.Constant)
            stores.append((outs[target.value.id], int(target.slice.value), v))  # type: ignore[arg-type]
    return stores


def _live(code: list[tuple[int, int, tuple[int, ...]]], roots: set[int]) -> list[int]:
    """Indices of instructions that the roots need (dead code dropped), in order."""
    need = set(roots)
    keep = []
    for k in range(len(code) - 1, -1, -1):
        op, v, args = code[k]
        if v in need:
            keep.append(k)
            if op not in (CONST, LOADY, LOADP, LOADU, LOADR):
                need.update(args)
    return keep[::-1]


def _allocate(code: list[tuple[int, int, tuple[int, ...]]], order: list[int],
              stores: list[tuple[int, int, int]], pinned: dict[int, int], first_free: int
              ) -> tuple[np.ndarray, int]:
    """Linear-scan registers for instructions ``order``; ``pinned`` vreg -> register."""
    last: dict[int, int] = {}
    for pos, k in enumerate(order):
        op, _, args = code[k]
        if op not in (CONST, LOADY, LOADP, LOADU, LOADR):
            for a in args:
                last[a] = pos
    end = len(order)
    for _, _, v in stores:
        last[v] = end
    reg = dict(pinned)
    reg[T_REG] = T_REG
    free: list[int] = []
    top = first_free
    rows = []
    for pos, k in enumerate(order):
        op, v, args = code[k]
        is_load = op in (CONST, LOADY, LOADP, LOADU, LOADR)
        src = list(args) if is_load else [reg[a] for a in args]
        if not is_load:
            for a in set(args):
                if last.get(a) == pos and a not in pinned and a != T_REG:
                    free.append(reg[a])
        if free:
            r = free.pop()
        else:
            r = top
            top += 1
        reg[v] = r
        rows.append((op, r, *src, *([0] * (4 - len(src)))))
        if v not in last:  # never read (cannot happen after _live unless stored)
            pass
    for out, slot, v in stores:
        rows.append((STORE0 if out == 0 else STORE1, slot, reg[v], 0, 0, 0))
    return np.array(rows, dtype=np.int64).reshape(-1, 6), top


def build(source: str) -> Program:
    """Tapes of the ``_rhs`` and ``_jac`` functions defined in ``source`` (the fast
    engine's generated Python: ``_rhs(t, y, p, u, r, dy)`` and ``_jac(t, y, p, u, jv,
    dfdt)``)."""
    mod = ast.parse(source)
    fns = {f.name: f for f in mod.body if isinstance(f, ast.FunctionDef)}
    b = _Builder()
    rhs_st = _body(b, fns["_rhs"], {"dy": 0})
    jac_st = _body(b, fns["_jac"], {"jv": 0, "dfdt": 1})
    # the prelude: every invariant value that a variant instruction (or a store) reads
    roots_r = {v for _, _, v in rhs_st}
    roots_j = {v for _, _, v in jac_st}
    order_r = _live(b.code, roots_r)
    order_j = _live(b.code, roots_j)
    inv_needed: set[int] = set()
    for order, stores in ((order_r, rhs_st), (order_j, jac_st)):
        for k in order:
            op, v, args = b.code[k]
            if not b.invariant[v] and op not in (LOADY, LOADU, LOADR):
                inv_needed.update(a for a in args if a != T_REG and b.invariant[a])
        inv_needed.update(v for _, _, v in stores if b.invariant[v])
    order_p = _live(b.code, inv_needed)
    pinned: dict[int, int] = {}
    rows_p = []
    for k in order_p:
        op, v, args = b.code[k]
        is_load = op in (CONST, LOADP)
        src = list(args) if is_load else [pinned[a] for a in args]
        pinned[v] = len(pinned) + 1
        rows_p.append((op, pinned[v], *src, *([0] * (4 - len(src)))))
    prelude = np.array(rows_p, dtype=np.int64).reshape(-1, 6)
    base = len(pinned) + 1

    def variant(order: list[int]) -> list[int]:
        return [k for k in order if not b.invariant[b.code[k][1]]]

    rhs, top_r = _allocate(b.code, variant(order_r), rhs_st, pinned, base)
    jac, top_j = _allocate(b.code, variant(order_j), jac_st, pinned, base)
    consts = np.array(b.consts or [0.0], dtype=float)
    return Program(prelude, rhs, jac, consts, max(top_r, top_j, base))


def evaluate(prog: np.ndarray, consts: np.ndarray, regs: np.ndarray, t: float,
             y: np.ndarray, p: np.ndarray, u: np.ndarray, r: np.ndarray,
             out0: np.ndarray, out1: np.ndarray) -> None:
    """Run a tape in Python on one subject (a slow oracle for tests; the kernel is the
    fast one)."""
    regs[T_REG] = t
    arrays = {LOADY: y, LOADP: p, LOADU: u, LOADR: r}
    for op, d, a, b, c, e in prog.tolist():
        if op == CONST:
            regs[d] = consts[a]
        elif op in arrays:
            regs[d] = arrays[op][a]
        elif op == STORE0:
            out0[d] = regs[a]
        elif op == STORE1:
            out1[d] = regs[a]
        elif op in (SELGE, SELLE):
            hit = regs[a] >= regs[b] if op == SELGE else regs[a] <= regs[b]
            regs[d] = regs[c] if hit else regs[e]
        elif op == NEG:
            regs[d] = -regs[a]
        elif op in (EXP, LOG, SQRT):
            regs[d] = {EXP: math.exp, LOG: math.log, SQRT: math.sqrt}[op](regs[a])
        elif op == DPOW:
            x, n = regs[a], regs[b]
            regs[d] = 1.0 if n == 1.0 else (0.0 if x == 0.0 else n * x ** (n - 1.0))
        elif op == POW:
            regs[d] = regs[a] ** regs[b]
        elif op == DIV:
            regs[d] = regs[a] / regs[b]
        else:
            regs[d] = _PURE_FOLD[op](regs[a], regs[b])

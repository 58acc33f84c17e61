"""Generate the model documentation (docs/model.md) from the model definition itself.

Everything in the document is read from a :class:`~ketasim.model.spec.ModelSpec`: the
equations (each rate expression converted from its Python syntax tree to LaTeX), the
cascade diagram (a Mermaid flowchart whose edges are the state-to-state dependencies of the
rate equations), the parameter tables (value, unit, tag and source of every constant, as
loaded from the catalog data files) and the hypothesis switches and knockouts (with the
equations they enter). Nothing is written by hand, so the document cannot drift from the
code: tests/test_docs.py regenerates it and compares.

    python -m ketasim.io.docs > docs/model.md
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from ketasim.model import circuit, outcomes, pk, receptors, signalling, structure
from ketasim.model.spec import Assignment, ModelSpec, State, symbols

LAYERS: tuple[tuple[str, ModuleType], ...] = (
    ("Pharmacokinetics", pk),
    ("Receptors", receptors),
    ("Circuit", circuit),
    ("Signalling", signalling),
    ("Structure and disease state", structure),
    ("Outcomes", outcomes),
)

HUMAN_COMPOUNDS = ("esketamine", "arketamine")
HUMAN_ROUTES = (("esketamine", "iv_infusion"), ("arketamine", "iv_infusion"))
MOUSE_COMPOUNDS = ("esketamine", "arketamine", "nbqx", "rapamycin", "hnk_2r6r", "ana12",
                   "nifedipine", "bdnf_antibody", "midazolam", "escitalopram", "memantine",
                   "mk801")
MOUSE_ROUTES = tuple((c, "icv" if c == "bdnf_antibody" else "ip") for c in MOUSE_COMPOUNDS)

REGENERATE = "python -m ketasim.io.docs > docs/model.md"

# -- expressions as LaTeX ---------------------------------------------------------------------
_ATOM, _POW, _FRAC, _MUL, _ADD = 5, 4, 3, 2, 1
_NUMBER = re.compile(r"^(-?[\d.]+)e([+-]?\d+)$")


def tex_symbol(name: str) -> str:
    """A model symbol as LaTeX: single letters in italics, longer names upright."""
    if len(name) == 1:
        return name
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def _tex_number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"unsupported constant {value!r}")
    v = float(value)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    text = f"{v:.6g}"
    m = _NUMBER.match(text)
    if m:
        return rf"{m.group(1)} \times 10^{{{int(m.group(2))}}}"
    return text


def _wrap(text: str, prec: int, need: int) -> str:
    return rf"\left({text}\right)" if prec < need else text


def _tex(node: ast.AST) -> tuple[str, int]:
    """LaTeX for ``node`` and its precedence (higher binds tighter)."""
    if isinstance(node, ast.Expression):
        return _tex(node.body)
    if isinstance(node, ast.Name):
        return tex_symbol(node.id), _ATOM
    if isinstance(node, ast.Constant):
        text = _tex_number(node.value)
        return text, _ATOM if not text.startswith("-") else _MUL
    if isinstance(node, ast.UnaryOp):
        inner, p = _tex(node.operand)
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        return sign + _wrap(inner, p, _MUL), _MUL
    if isinstance(node, ast.BinOp):
        left, lp = _tex(node.left)
        right, rp = _tex(node.right)
        if isinstance(node.right, ast.UnaryOp):  # a - (-b), a * (-b): keep the sign visible
            rp = _ADD
        if isinstance(node.op, ast.Add):
            return f"{left} + {_wrap(right, rp, _MUL)}", _ADD
        if isinstance(node.op, ast.Sub):
            return f"{left} - {_wrap(right, rp, _MUL)}", _ADD
        if isinstance(node.op, ast.Mult):
            return rf"{_wrap(left, lp, _MUL)} \cdot {_wrap(right, rp, _MUL)}", _MUL
        if isinstance(node.op, ast.Div):
            return rf"\frac{{{left}}}{{{right}}}", _FRAC
        if isinstance(node.op, ast.Pow):
            return f"{_wrap(left, lp, _ATOM)}^{{{right}}}", _POW
        raise ValueError(f"unsupported operator {type(node.op).__name__}")
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        args = [_tex(a) for a in node.args]
        texts = [a[0] for a in args]
        if name == "exp":
            return rf"\exp\left({texts[0]}\right)", _ATOM
        if name == "log":
            return rf"\ln\left({texts[0]}\right)", _ATOM
        if name == "sqrt":
            return rf"\sqrt{{{texts[0]}}}", _ATOM
        if name == "hill":
            (x, xp), (k, kp), (n, _) = args
            xn, kn = f"{_wrap(x, xp, _ATOM)}^{{{n}}}", f"{_wrap(k, kp, _ATOM)}^{{{n}}}"
            return rf"\frac{{{xn}}}{{{kn} + {xn}}}", _FRAC
        if name == "pos":
            return rf"\max\left({texts[0]},\ 0\right)", _ATOM
        if name == "spos":  # smooth positive part (see ketasim.model.compile)
            return rf"\max_{{s}}\left({texts[0]},\ 0\right)", _ATOM
        if name in ("maximum", "minimum"):
            op = r"\max" if name == "maximum" else r"\min"
            return rf"{op}\left({texts[0]},\ {texts[1]}\right)", _ATOM
        raise ValueError(f"unknown function {name!r}")
    raise ValueError(f"unsupported expression node {type(node).__name__}")


def latex(expr: str) -> str:
    """LaTeX for a model expression (fractions, powers, exp, hill as a fraction,
    pos as max(., 0))."""
    return _tex(ast.parse(expr, mode="eval"))[0]


# -- the cascade as a graph -------------------------------------------------------------------
_BLOCK = re.compile(r"^b_(?P<cpd>.+)_(?P<cls>" + "|".join(receptors.CLASSES) + r")$")


def state_reads(spec: ModelSpec) -> dict[str, set[str]]:
    """For every state, the states and inputs its rate reads, directly or through
    assignments (derived parameters are constants and carry no dependency)."""
    dynamic = set(spec.states) | set(spec.inputs)
    resolved: dict[str, set[str]] = {}

    def reads(expr: str) -> set[str]:
        out: set[str] = set()
        for s in symbols(expr):
            if s in dynamic:
                out.add(s)
            elif s in resolved:
                out |= resolved[s]
        return out

    for a in spec.assignments.values():
        resolved[a.name] = reads(a.expr)
    return {s.name: reads(s.rate) - {s.name} for s in spec.states.values()}


def node_of(spec: ModelSpec, name: str) -> str:
    """Diagram node of a state: one node per compound for its PK states (``pk_<c>``) and
    one for its NMDA block states (``nmda_<c>``); every other state is its own node."""
    if name in spec.inputs:
        return name
    group = spec.states[name].group
    if group.startswith("pk:"):
        return "pk_" + group[3:]
    m = _BLOCK.match(name)
    if m and group == receptors.G:
        return "nmda_" + m.group("cpd")
    return name


def _layer(spec: ModelSpec, name: str) -> str:
    if name in spec.inputs:
        return "inputs"
    group = spec.states[name].group
    return "pharmacokinetics" if group.startswith("pk:") else group


def cascade_edges(spec: ModelSpec) -> set[tuple[str, str]]:
    """Edges ``a -> b`` between diagram nodes: b's rate reads a (directly or through
    assignments). Edges inside one node, and between the NMDA block nodes of different
    compounds (they compete for the channel site), are left out."""
    edges: set[tuple[str, str]] = set()
    for dst, srcs in state_reads(spec).items():
        b = node_of(spec, dst)
        for src in srcs:
            a = node_of(spec, src)
            if a == b or (a.startswith("nmda_") and b.startswith("nmda_")):
                continue
            edges.add((a, b))
    return edges


def _label(spec: ModelSpec, node: str) -> str:
    if node.startswith("pk_"):
        text = f"{node[3:]}<br/>PK"
    elif node.startswith("nmda_"):
        text = f"NMDA block<br/>by {node[5:]}"
    elif node in spec.inputs:
        text = f"{node}<br/>input"
    else:
        doc = spec.states[node].doc
        text = f"{node}<br/>{doc}" if doc else node
    return text.replace('"', "#quot;")


_MERMAID_RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "class", "click"}


def cascade_mermaid(*specs: ModelSpec) -> str:
    """A Mermaid ``flowchart LR`` of the union of the cascades of ``specs``."""
    nodes: dict[str, tuple[str, str]] = {}  # node -> (layer, label)
    edges: set[tuple[str, str]] = set()
    for spec in specs:
        for name in [*spec.inputs, *spec.states]:
            node = node_of(spec, name)
            if node in _MERMAID_RESERVED:
                raise ValueError(f"state name {node!r} is a Mermaid keyword")
            nodes.setdefault(node, (_layer(spec, name), _label(spec, node)))
        edges |= cascade_edges(spec)
    lines = ["flowchart LR"]
    layers: dict[str, list[str]] = {}
    for node, (layer, _) in nodes.items():
        layers.setdefault(layer, []).append(node)
    for layer, members in layers.items():
        lines.append(f'  subgraph L_{layer}["{layer}"]')
        for node in members:
            label = nodes[node][1]
            shape = f'(["{label}"])' if layer == "inputs" else f'["{label}"]'
            lines.append(f"    {node}{shape}")
        lines.append("  end")
    order = {n: i for i, n in enumerate(nodes)}
    for a, b in sorted(edges, key=lambda e: (order[e[0]], order[e[1]])):
        lines.append(f"  {a} --> {b}")
    return "\n".join(lines)


# -- Markdown ---------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", r"\|").replace("*", r"\*")


def _num(value: float) -> str:
    return f"{value:.6g}"


def _groups(items: Iterable[State | Assignment]) -> dict[str, list[State | Assignment]]:
    out: dict[str, list[State | Assignment]] = {}
    for it in items:
        out.setdefault(it.group or "(other)", []).append(it)
    return out


def _state_block(s: State) -> list[str]:
    head = f"- **`{s.name}`** [{s.unit}]" + (f": {s.doc}" if s.doc else "")
    head += f"; initial value `{s.initial}`"
    return [head, "", "$$", rf"\frac{{d\,{tex_symbol(s.name)}}}{{dt}} = {latex(s.rate)}", "$$",
            ""]


def _assignment_block(a: Assignment) -> list[str]:
    head = f"- **`{a.name}`** [{a.unit}]" + (f": {a.doc}" if a.doc else "")
    return [head, "", "$$", f"{tex_symbol(a.name)} = {latex(a.expr)}", "$$", ""]


def _readers(spec: ModelSpec, name: str) -> list[tuple[str, str, str]]:
    """(kind, symbol, expression) of every equation that reads ``name``."""
    out = []
    for d in spec.derived.values():
        if name in symbols(d.expr):
            out.append(("derived", d.name, d.expr))
    for a in spec.assignments.values():
        if name in symbols(a.expr):
            out.append(("assignment", a.name, a.expr))
    for s in spec.states.values():
        if name in symbols(s.rate):
            out.append(("rate", s.name, s.rate))
    return out


def _reader_lines(spec: ModelSpec, name: str) -> list[str]:
    lines = []
    for kind, sym, expr in _readers(spec, name):
        lhs = rf"\frac{{d\,{tex_symbol(sym)}}}{{dt}}" if kind == "rate" else tex_symbol(sym)
        lines += [f"  - {kind} `{sym}`:", "", "    $$", f"    {lhs} = {latex(expr)}", "    $$",
                  ""]
    return lines or ["  - (read by no equation of this model)", ""]


def _switches(spec: ModelSpec) -> list[str]:
    from ketasim.population import KNOCKOUT_PARAMS

    lines = ["## Hypotheses and knockouts", ""]
    hyp = [p for p in spec.parameters.values() if p.group == "hypotheses"]
    if hyp:
        lines += [
            "The scenario table `[model] hypotheses` sets these weights (each in [0, 1]; "
            "0 switches the mechanism off). Each weight multiplies a term of the equations "
            "listed under it.", ""]
        for p in hyp:
            lines += [f"- **`{p.name}`** = {_num(p.value)} (default; {p.tag}): "
                      f"{_cell(p.source)}", ""]
            lines += _reader_lines(spec, p.name)
    knock = {v: k for k, v in KNOCKOUT_PARAMS.items()}
    kos = [p for p in spec.parameters.values() if p.name.startswith("ko_")]
    if kos:
        lines += ["Knockouts (scenario `population.knockouts`) set a switch parameter from 0 "
                  "to 1; they act only through the parameters of the same equations:", ""]
        for p in kos:
            lines += [f"- knockout `{knock.get(p.name, p.name)}` -> **`{p.name}`**", ""]
            lines += _reader_lines(spec, p.name)
    gen = [p for p in spec.parameters.values() if p.group == "genetics"]
    if gen:
        lines += ["Genotypes and genetic constants (BDNF Val66Met sets the subject parameter "
                  "`bdnf_secretion` to 1, `bdnf_secretion_val_met` or "
                  "`bdnf_secretion_met_met`):", ""]
        for p in gen:
            unit = "" if p.unit == "1" else f" {p.unit}"
            lines += [f"- **`{p.name}`** = {_num(p.value)}{unit} ({p.tag}): "
                      f"{_cell(p.source)}", ""]
    if "bdnf_secretion" in spec.parameters:
        from ketasim.model.params import mechanism_table

        lines += ["- subject parameter **`bdnf_secretion`** (BDNF Val66Met: Val/Val 1)", ""]
        for name, v in mechanism_table().get("genetics", {}).items():
            if name.startswith("bdnf_secretion"):
                lines += [f"  - `{name}` = {_num(v.value)} ({v.tag}): {_cell(v.source)}"]
        lines += [""]
        lines += _reader_lines(spec, "bdnf_secretion")
    return lines


_TABLE_HEAD = ("| name | value | unit | tag | source |", "|---|---|---|---|---|")


def _value_row(name: str, p: Any) -> str:
    """One table row of a sourced value (a model parameter or a catalog ``Sourced``)."""
    src = p.source if not p.note or p.note in p.source else f"{p.source}; {p.note}"
    return f"| `{name}` | {_num(p.value)} | {_cell(p.unit)} | {p.tag} | {_cell(src)} |"


def _parameter_tables(spec: ModelSpec, names: Sequence[str]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(spec.parameters[n].group or "(other)", []).append(n)
    lines: list[str] = []
    for g, members in groups.items():
        lines += [f"### {g}", "", *_TABLE_HEAD]
        lines += [_value_row(n, spec.parameters[n]) for n in members]
        lines.append("")
    return lines


def render_model_doc(spec: ModelSpec, title: str = "The ketasim model", *,
                     base: ModelSpec | None = None, overview: bool = True,
                     diagram: Sequence[ModelSpec] | None = None, level: int = 1) -> str:
    """Markdown documentation of ``spec``.

    With ``base``, only the states, assignments, derived and base parameters that are new
    in ``spec`` or defined differently from ``base`` are listed (a supplement).
    ``diagram`` lists the specs whose union the cascade diagram shows (default: ``spec``).
    """
    h = "#" * level

    def keep(table: str, name: str) -> bool:
        if base is None:
            return True
        other = getattr(base, table).get(name)
        return other is None or other != getattr(spec, table)[name]

    lines = [f"{h} {title}", ""]
    if overview:
        lines += [f"{h}# Layers", ""]
        for name, module in LAYERS:
            lines += [f"{h}## {name} (`{module.__name__}`)", "", inspect.getdoc(module) or "", ""]
        lines += [f"{h}## Expression language (`ketasim.model.spec`)", "",
                  inspect.getdoc(inspect.getmodule(ModelSpec)) or "", ""]
    if diagram is None or diagram:
        lines += [f"{h}# Cascade", "",
                  "Generated from the rate equations: an arrow a --> b means that the rate of "
                  "b reads a, directly or through assignments. The PK states of each compound "
                  "are one node (`pk_<compound>`), its NMDA block states on the five receptor "
                  "classes another (`nmda_<compound>`); arrows between block nodes "
                  "(competition for the channel site) are left out.", "", "```mermaid",
                  cascade_mermaid(*(diagram or [spec])), "```", ""]
        if base is None:
            lines += _switches(spec)
    states = [s for s in spec.states.values() if keep("states", s.name)]
    lines += [f"{h}# States and rate equations", "",
              "Time in hours; `t` is the model time. Grouped by layer / compound.", ""]
    for g, members in _groups(states).items():
        lines += [f"{h}## {g}", ""]
        for s in members:
            assert isinstance(s, State)
            lines += _state_block(s)
    derived = [d for d in spec.derived.values() if keep("derived", d.name)]
    if derived:
        lines += [f"{h}# Derived parameters", "",
                  "Functions of parameters only, computed once per subject.", ""]
        for g, members in _groups(derived).items():
            lines += [f"{h}## {g}", ""]
            for a in members:
                assert isinstance(a, Assignment)
                lines += _assignment_block(a)
    assigns = [a for a in spec.assignments.values() if keep("assignments", a.name)]
    if assigns:
        lines += [f"{h}# Assignments", "",
                  "Algebraic quantities of states and parameters, evaluated in this order at "
                  "every right-hand-side call.", ""]
        for g, members in _groups(assigns).items():
            lines += [f"{h}## {g}", ""]
            for a in members:
                assert isinstance(a, Assignment)
                lines += _assignment_block(a)
    readouts = [r for r in spec.readouts.values() if keep("readouts", r.name)]
    if readouts:
        lines += [f"{h}# Readouts", "", "| readout | unit | expression |", "|---|---|---|"]
        for r in readouts:
            expr = " ".join(r.expr.split()).replace("|", r"\|")
            lines.append(f"| `{r.name}` | {_cell(r.unit)} | `{expr}` |")
        lines.append("")
    params = [p.name for p in spec.parameters.values() if keep("parameters", p.name)]
    lines += [f"{h}# Parameters", "",
              "Every constant with its value, unit, tag (P primary source, S secondary, "
              "U recalled/unverified, calibrated, assumed, derived) and source, as loaded "
              "from the catalog data files. Subject parameters are the typical values the "
              "population layer overrides per subject.", ""]
    lines += _parameter_tables(spec, params)
    return "\n".join(lines).rstrip() + "\n"


def _measurement_section() -> list[str]:
    """The measurement models (ratings, behaviour) and the population constants they and
    the virtual-subject draws use (catalog/population.toml)."""
    from ketasim.catalog import catalog
    from ketasim.experiments import measures

    lines = ["# Measurement models and population constants", "",
             f"## Measurement models (`{measures.__name__}`)", "",
             inspect.getdoc(measures) or "", ""]
    for sec, table in catalog().population.items():
        lines += [f"## [{sec}]", "", *_TABLE_HEAD]
        lines += [_value_row(name, p) for name, p in table.items()]
        lines.append("")
    return lines


def documentation_specs() -> tuple[ModelSpec, ModelSpec]:
    """The two documented models: human esketamine + arketamine (racemic ketamine) by IV
    infusion, and a mouse model with ketamine and every tool compound."""
    from ketasim.model.system import build_spec

    human = build_spec("human", HUMAN_COMPOUNDS, HUMAN_ROUTES)
    mouse = build_spec("mouse", MOUSE_COMPOUNDS, MOUSE_ROUTES)
    return human, mouse


def render_documentation() -> str:
    """The full docs/model.md."""
    human, mouse = documentation_specs()
    head = [
        "<!-- generated by `" + REGENERATE + "`: do not edit by hand -->", "",
    ]
    body = render_model_doc(human, "The ketasim model", diagram=[human, mouse])
    intro = (
        "This document is generated from the model definition. The sections below describe the "
        "human model for racemic ketamine (esketamine + arketamine with their metabolites, "
        "IV infusion); the last section lists what a mouse model with ketamine and the "
        "tool compounds (" + ", ".join(MOUSE_COMPOUNDS[2:]) + ") adds or defines "
        "differently. The cascade diagram shows both.\n")
    title, rest = body.split("\n", 1)
    supplement = render_model_doc(mouse, "Mouse model: additions and differences", base=human,
                                  overview=False, diagram=[], level=2)
    measured = "\n".join(_measurement_section()).rstrip() + "\n"
    return "\n".join(head) + title + "\n\n" + intro + rest + "\n" + measured + "\n" + supplement


def main() -> None:
    print(render_documentation(), end="")


if __name__ == "__main__":
    main()

"""docs/model.md is generated from the model definition, complete and up to date."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from ketasim.io.docs import (
    REGENERATE,
    cascade_edges,
    documentation_specs,
    latex,
    render_documentation,
    render_model_doc,
)
from ketasim.model.spec import ModelSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "model.md"


@cache
def specs() -> tuple[ModelSpec, ModelSpec]:
    return documentation_specs()


@cache
def document() -> str:
    return render_documentation()


def mermaid(text: str) -> str:
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


# -- LaTeX ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "tex"), [
    ("a / b", r"\frac{a}{b}"),
    ("(a + b) * c", r"\left(a + b\right) \cdot c"),
    ("a - (b - c)", r"a - \left(b - c\right)"),
    ("a - b - c", "a - b - c"),
    ("- k * x", r"-k \cdot x"),
    ("(w / w0) ** 0.75", r"\left(\frac{w}{\mathrm{w0}}\right)^{0.75}"),
    ("x ** n ** 2", "x^{n^{2}}"),
    ("exp(-k * t)", r"\exp\left(-k \cdot t\right)"),
    ("hill(x, k, n)", r"\frac{x^{n}}{k^{n} + x^{n}}"),
    ("hill(a + b, k, 2)", r"\frac{\left(a + b\right)^{2}}{k^{2} + \left(a + b\right)^{2}}"),
    ("pos(a - b)", r"\max\left(a - b,\ 0\right)"),
    ("minimum(f, 0.98)", r"\min\left(f,\ 0.98\right)"),
    ("0.6931471805599453 / thb", r"\frac{0.693147}{\mathrm{thb}}"),
    ("1.5e-05 * x", r"1.5 \times 10^{-5} \cdot x"),
    ("tau_ampa", r"\mathrm{tau\_ampa}"),
])
def test_latex(expr: str, tex: str) -> None:
    assert latex(expr) == tex


def test_every_equation_renders() -> None:
    for spec in specs():
        for s in spec.states.values():
            assert latex(s.rate)
        for a in (*spec.assignments.values(), *spec.derived.values()):
            assert latex(a.expr)


# -- completeness -----------------------------------------------------------------------------
def test_every_state_and_parameter_is_documented() -> None:
    text = document()
    for spec in specs():
        for name in spec.states:
            assert f"**`{name}`**" in text, name
        for name in spec.parameters:
            assert f"| `{name}` |" in text, name
        for name in (*spec.assignments, *spec.derived):
            assert f"**`{name}`**" in text, name


def test_parameter_rows_carry_value_unit_tag_and_source() -> None:
    human, _ = specs()
    text = render_model_doc(human)
    p = human.parameters["esketamine_cl_ref"]
    row = next(ln for ln in text.splitlines() if ln.startswith("| `esketamine_cl_ref` |"))
    assert row.split(" | ")[1:4] == ["95", "L/h", p.tag]
    assert "Fanta 2015" in row


def test_layers_hypotheses_and_knockouts_are_described() -> None:
    text = document()
    for layer in ("Pharmacokinetics", "Receptors", "Circuit", "Signalling", "Structure",
                  "Outcomes"):
        assert f"### {layer}" in text
    section = text.split("## Hypotheses and knockouts", 1)[1].split("\n## ", 1)[0]
    for name in ("disinhibition", "rest_block_eef2", "hnk_ampa"):
        assert f"**`{name}`**" in section
    for ko in ("glun2b_interneuron", "glun2b_pyramidal", "glun2d", "glua2"):
        assert f"knockout `{ko}`" in section
    # each switch is shown with the equation it scales
    assert r"\mathrm{disinhibition} \cdot \mathrm{share\_int}" in section
    assert "bdnf_secretion_val_met" in section


# -- the diagram ------------------------------------------------------------------------------
def test_cascade_contains_the_real_edges() -> None:
    block = mermaid(document())
    assert block.startswith("flowchart LR")
    for edge in ("glu --> ampa", "mtor --> psd95", "pyramidal --> glu",
                 "interneuron --> pyramidal", "ampa --> bdnf_ex", "p_eef2 --> bdnf",
                 "bdnf_ex --> trkb", "trkb --> erk", "erk --> mtor", "sno --> rheb",
                 "rheb --> mtor", "psd95 --> spines_set", "immature --> new_1",
                 "new_1 --> new_2", "new_3 --> mood_syn", "stress --> stress_load",
                 "pk_esketamine --> pk_s_norketamine", "pk_esketamine --> nmda_esketamine",
                 "nmda_esketamine --> interneuron", "nmda_esketamine --> p_eef2",
                 "pk_hnk_2r6r --> ampa", "pk_nbqx --> ampa", "pk_rapamycin --> mtor",
                 "pk_ana12 --> trkb", "pk_bdnf_antibody --> trkb",
                 "pk_nifedipine --> bdnf_ex", "pk_midazolam --> pyramidal"):
        assert f"  {edge}\n" in block, edge
    # no arrow that the equations do not contain
    for edge in ("spines --> glu", "mtor --> ampa", "pk_rapamycin --> ampa",
                 "nmda_esketamine --> nmda_arketamine"):
        assert f"  {edge}\n" not in block, edge


def test_cascade_edges_follow_the_equations() -> None:
    """An edge a --> b exists exactly when b's rate reads a (possibly via assignments):
    editing an equation changes the diagram."""
    human, _ = specs()
    edges = cascade_edges(human)
    assert ("glu", "ampa") in edges
    spec = ModelSpec()
    spec.param("k", 1.0, "1/h", "test")
    spec.state("a", "1", "- k * a")
    spec.assign("a2", "a * a", "1")
    spec.state("b", "1", "a2 - k * b")
    spec.state("c", "1", "b - k * c")
    assert cascade_edges(spec) == {("a", "b"), ("b", "c")}
    mer = mermaid(render_model_doc(spec))
    assert "  a --> b\n" in mer and "  b --> c\n" in mer and "a --> c" not in mer


# -- the committed document -------------------------------------------------------------------
def test_committed_model_md_is_up_to_date() -> None:
    assert DOC.exists(), f"docs/model.md is missing: run `{REGENERATE}`"
    if DOC.read_text(encoding="utf-8") != document():
        pytest.fail(f"docs/model.md is out of date with the model: run `{REGENERATE}`")

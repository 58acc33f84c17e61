"""Receptor layer: NMDA block by cell type and subunit, and the other drug targets.

NMDA receptors are split into five classes: interneuron GluN2A / GluN2B / GluN2C-D and
pyramidal GluN2A / GluN2B, each carrying a share ``f_*`` of its cell's NMDA drive
(knockouts set a share to zero). For every compound ``c`` with NMDA pharmacology and
every class ``k`` the blocked fraction ``b`` follows

    db/dt = kon C (1 - B_k) o  -  koff b ((1 - trap) + trap o),   kon = koff / IC50_k,
    o = ud u_k + (1 - ud)

(IC50 scaled from recombinant to native neurons by ``native_potency``, or by the
compound's own factor where its block was measured in native neurons), where ``B_k``
sums the block of all compounds on class ``k`` (they compete for the channel site),
``u_k`` is channel use (relative opening, part of it following the cell's activity),
``ud`` the use dependence (1 open-channel blocker, 0 allosteric)
and ``trap`` the trapped fraction (a trapped blocker leaves only
when the channel opens). IC50s are at 1 mM Mg2+, so Mg2+-dependent potency enters through
the subunit-specific IC50s (GluN2C/D are less Mg2+-sensitive).

Block at rest (spontaneous transmission onto pyramidal neurons, the eEF2 and nNOS
branches) weighs each compound's pyramidal block by its ``rest_block``.
"""

from __future__ import annotations

from ketasim.catalog import Catalog, catalog
from ketasim.catalog.schema import Potency, Sourced
from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

CLASSES = {  # class -> (cell, subunit ic50 key)
    "int_2a": ("int", "2a"), "int_2b": ("int", "2b"), "int_2d": ("int", "2d"),
    "pyr_2a": ("pyr", "2a"), "pyr_2b": ("pyr", "2b"),
}
G = "receptors"


def _sp(m: ModelSpec, name: str, s: Sourced, unit: str) -> str:
    note = s.note
    return m.param(name, s.to(unit), unit, f"{s.source} [{s.tag}]" + (f"; {note}" if note else ""),
                   s.tag, note, G, catalog().path_of(s))


def nmda_compounds(cat: Catalog, compounds: list[str]) -> list[str]:
    return [c for c in compounds if cat.drugs[c].pd.nmda is not None]


def add_nmda(m: ModelSpec, cat: Catalog, compounds: list[str]) -> None:
    """Block states for every NMDA-active compound, class totals and cell-level blocks."""
    for k in ("f_int_2a", "f_int_2b", "f_int_2d", "f_pyr_2a", "f_pyr_2b", "u_int", "u_pyr",
              "use_activity", "native_potency"):
        mech(m, G, k)
    for ko in ("ko_glun2b_interneuron", "ko_glun2b_pyramidal", "ko_glun2d"):
        m.param(ko, 0.0, "1", "knockout switch (scenario population.knockouts)", "assumed",
                group="subject")
    m.derive("F_int_2a", "f_int_2a", "1", "interneuron GluN2A share", G)
    m.derive("F_int_2b", "f_int_2b * (1 - ko_glun2b_interneuron)", "1", "", G)
    m.derive("F_int_2d", "f_int_2d * (1 - ko_glun2d)", "1", "", G)
    m.derive("F_pyr_2a", "f_pyr_2a", "1", "", G)
    m.derive("F_pyr_2b", "f_pyr_2b * (1 - ko_glun2b_pyramidal)", "1", "", G)
    m.derive("share_int", "F_int_2a + F_int_2b + F_int_2d", "1",
             "interneuron NMDA drive present (1 in wild type)", G)
    m.derive("share_pyr", "F_pyr_2a + F_pyr_2b", "1", "pyramidal NMDA drive present", G)
    # part of channel opening follows firing, the rest ambient/spontaneous glutamate; a
    # fully firing-coupled use would trap drug in silenced cells and stall their block
    m.assign("use_int", "u_int * (1 - use_activity + use_activity * interneuron)", "1",
             "channel use on interneurons", G)
    m.assign("use_pyr", "u_pyr * (1 - use_activity + use_activity * pyramidal)", "1",
             "channel use on pyramidal neurons", G)
    active = nmda_compounds(cat, compounds)
    native: dict[str, str] = {}  # each compound's recombinant-to-native IC50 factor
    for c in active:
        nm = cat.drugs[c].pd.nmda
        assert nm is not None
        for sub, s in (("2a", nm.ic50_glun2a), ("2b", nm.ic50_glun2b), ("2d", nm.ic50_glun2d)):
            _sp(m, f"{c}_ic50_{sub}", s, "uM")
        _sp(m, f"{c}_koff", nm.koff, "1/h")
        _sp(m, f"{c}_ud", nm.use_dependence, "1")
        _sp(m, f"{c}_trap", nm.trapping, "1")
        _sp(m, f"{c}_rest", nm.rest_block, "1")
        native[c] = "native_potency"
        if nm.native_potency is not None:  # measured in native neurons: no transfer factor
            native[c] = _sp(m, f"{c}_native", nm.native_potency, "1")
    for k, (cell, sub) in CLASSES.items():
        total = " + ".join(f"b_{c}_{k}" for c in active) or "0"
        m.assign(f"B_{k}", total, "1", f"total NMDA block of class {k}", G)
        for c in active:
            o = f"({c}_ud * use_{cell} + 1 - {c}_ud)"
            kon = f"{c}_koff / ({c}_ic50_{sub} * {native[c]})"
            rate = (f"{kon} * {c}_Cs * (1 - B_{k}) * {o}"
                    f" - {c}_koff * b_{c}_{k} * (1 - {c}_trap + {c}_trap * {o})")
            m.state(f"b_{c}_{k}", "1", rate, doc=f"fraction of {k} receptors blocked by {c}",
                    group=G)
    m.assign("block_int",
             "(F_int_2a * B_int_2a + F_int_2b * B_int_2b + F_int_2d * B_int_2d) / share_int",
             "1", "fraction of interneuron NMDA receptors blocked", G)
    m.assign("block_pyr", "(F_pyr_2a * B_pyr_2a + F_pyr_2b * B_pyr_2b) / share_pyr", "1",
             "fraction of pyramidal NMDA receptors blocked", G)
    rest = {k: " + ".join(f"{c}_rest * b_{c}_{k}" for c in active) or "0"
            for k in ("pyr_2a", "pyr_2b")}
    # resting NMDA signalling lost, relative to a wild-type subject (knockouts lose it too)
    m.assign("rest_loss",
             f"1 - F_pyr_2a * (1 - ({rest['pyr_2a']})) - F_pyr_2b * (1 - ({rest['pyr_2b']}))",
             "1", "loss of resting pyramidal NMDA signalling (block at rest and knockouts)", G)
    m.readout("nmda_block.interneuron", "block_int", "fraction", "")
    m.readout("nmda_block.pyramidal", "block_pyr", "fraction", "")


def _effect(m: ModelSpec, cat: Catalog, compounds: list[str], target: str, name: str,
            doc: str) -> None:
    """Fractional effect at ``target`` summed over compounds (Emax model, capped at 1)."""
    terms = []
    for c in compounds:
        pot: Potency | None = getattr(cat.drugs[c].pd, target)
        if pot is None:
            continue
        ic = _sp(m, f"{c}_{target}_ic50", pot.ic50, "uM")
        em = _sp(m, f"{c}_{target}_emax", pot.emax, "1") if pot.emax else "1.0"
        h = _sp(m, f"{c}_{target}_hill", pot.hill, "1") if pot.hill else "1.0"
        terms.append(f"{em} * hill(pos({c}_Cs), {ic}, {h})")
    expr = " + ".join(terms) if terms else "0"
    if target.endswith(("antagonism", "inhibition", "block", "neutralisation")):
        expr = f"minimum({expr}, 1.0)" if terms else "0"
    m.assign(name, expr, "1", doc, G)


def add_targets(m: ModelSpec, cat: Catalog, compounds: list[str]) -> None:
    """AMPA, TrkB, mTORC1, GABA-A, L-type, BDNF-antibody and SERT actions."""
    _effect(m, cat, compounds, "ampa_antagonism", "ampa_block", "AMPA receptors blocked")
    _effect(m, cat, compounds, "ampa_potentiation", "ampa_pot",
            "fractional AMPA potentiation (HNK)")
    _effect(m, cat, compounds, "trkb_antagonism", "trkb_block", "TrkB blocked (ANA-12)")
    _effect(m, cat, compounds, "mtorc1_inhibition", "mtor_block", "mTORC1 inhibited")
    _effect(m, cat, compounds, "gabaa_potentiation", "gabaa_pot",
            "fractional GABA-A potentiation (midazolam)")
    _effect(m, cat, compounds, "ltype_block", "ltype_block", "L-type Ca2+ channels blocked")
    _effect(m, cat, compounds, "sert_inhibition", "sert_occ", "SERT occupancy")
    # antibody: free BDNF fraction = 1 / (1 + [Ab]/Kd)
    terms = []
    for c in compounds:
        pot = cat.drugs[c].pd.bdnf_neutralisation
        if pot is not None:
            kd = _sp(m, f"{c}_bdnf_kd", pot.ic50, "uM")
            terms.append(f"{c}_Cs / {kd}")
    m.assign("bdnf_free_frac", f"1 / (1 + {' + '.join(terms)})" if terms else "1 + 0 * t", "1",
             "fraction of released BDNF not neutralised", G)
    # sympathomimetic action on total plasma concentration (ng/mL); several compounds
    # combine as agonists sharing one receptor pool: sum_c Emax_c x_c / (1 + sum_c x_c)
    xs, num = [], []
    for c in compounds:
        pot = cat.drugs[c].pd.sympathomimetic
        if pot is not None and pot.emax is not None:
            ec = _sp(m, f"{c}_symp_ec50", pot.ic50, "ng/mL")
            em = _sp(m, f"{c}_symp_emax", pot.emax, "mmHg")
            xs.append(f"{c}_C * {c}_mw / 1000 / {ec}")
            num.append(f"{em} * {c}_C * {c}_mw / 1000 / {ec}")
    expr = f"({' + '.join(num)}) / (1 + {' + '.join(xs)})" if xs else "0 * t"
    m.assign("sbp_rise", expr, "mmHg", "systolic BP rise (sympathomimetic)", G)

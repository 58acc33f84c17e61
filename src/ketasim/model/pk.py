"""Pharmacokinetic layer: linear mammillary disposition, routes, metabolite chain, brain.

For every compound ``c`` (a dosed drug's components and all their metabolites):

- ``c_c`` central amount, ``c_p1``/``c_p2`` peripheral amounts (nmol); plasma concentration
  ``C = c_c / V1`` (nM); clearance ``CL`` removes ``CL*C``, of which fraction ``f_m`` forms
  metabolite ``m`` (through one transit compartment ``c_tr_m`` of mean time ``MTT``);
- ``c_b`` unbound brain amount (nmol) in the brain water volume ``V_bw``; exchange
  ``k_eq (kp_uu fu C V_bw - c_b)`` with ``k_eq = ln2 / t_half_brain`` (mass leaves plasma);
- ``c_loc`` intracortical injection depot (volume ``V_site``), draining into ``c_b``;
- ``c_dep_<route>`` first-order absorption depots, ``ka``; bioavailability F applied at dosing.

Individual parameters: ``CL = CL_ref (W/W_ref)^b_cl * eta_cl * sex * CYP2B6``,
``V = V_ref (W/W_ref)^b_v * eta_v``. Amounts are nmol, time h, volumes L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ketasim.catalog import Catalog, catalog
from ketasim.catalog.schema import Disposition, Drug, RouteAbsorption, Sourced
from ketasim.model.spec import ModelSpec

EXTRAVASCULAR = ("im", "sc", "ip", "oral", "intranasal")
PORTAL = ("ip", "oral")  # routes whose non-absorbed fraction passes the liver first


@dataclass(frozen=True)
class DoseTarget:
    """Where one compound of a dose goes: ``state`` receives ``fraction`` x dose (nmol)."""

    state: str
    fraction: float


def _src(s: Sourced) -> str:
    return f"{s.source} [{s.tag}]" + (f"; {s.note}" if s.note else "")


def disposition_for(drug: Drug, species: str) -> tuple[Disposition, str]:
    """The disposition block to use for ``species`` and the species it was measured in.

    Missing species are scaled allometrically from the closest species with data.
    """
    order = {"human": ["human", "rat", "mouse"], "rat": ["rat", "mouse", "human"],
             "mouse": ["mouse", "rat", "human"]}[species]
    for sp in order:
        if sp in drug.pk:
            return drug.pk[sp], sp
    raise KeyError(drug.id)


def absorption_for(cat: Catalog, drug: Drug, species: str, route: str) -> RouteAbsorption:
    """Absorption parameters: the drug's data in this species, else the species default
    for the route, else the drug's data in another species."""
    if species in drug.pk and route in drug.pk[species].routes:
        return drug.pk[species].routes[route]
    default = cat.species[species].default_absorption.get(route)  # type: ignore[call-overload]
    if default is not None:
        return default
    for sp in ("human", "rat", "mouse"):
        if sp in drug.pk and route in drug.pk[sp].routes:
            return drug.pk[sp].routes[route]
    raise KeyError(f"{drug.id}: no absorption data for route {route} in {species}")


def add_subject_parameters(m: ModelSpec, cat: Catalog, species: str) -> None:
    """Covariates of one subject (set per subject by the population layer)."""
    sp = cat.species[species]
    bw = sp.body_weight
    m.param("weight", bw.to("kg"), "kg", _src(bw), bw.tag, group="subject")
    m.param("female", 0.0, "1", "covariate: 1 female, 0 male", "assumed", group="subject")
    m.param("lean_ratio", 1.0, "1",
            "covariate: fat-free mass / weight relative to the reference adult (Janmahasatian "
            "2005 Clin Pharmacokinet 44:1051 from weight, BMI and sex; 1 in rodents)", "P",
            group="subject")
    m.param("cyp2b6_pm", 0.0, "1", "covariate: 1 CYP2B6 poor metaboliser (*6/*6)", "assumed",
            group="subject")
    m.param("allo_cl", sp.allometry.cl_exponent.value, "1", _src(sp.allometry.cl_exponent),
            sp.allometry.cl_exponent.tag, group="species")
    m.param("allo_v", sp.allometry.v_exponent.value, "1", _src(sp.allometry.v_exponent),
            sp.allometry.v_exponent.tag, group="species")
    m.param("V_bw", sp.brain_water_volume.to("L"), "L", _src(sp.brain_water_volume),
            sp.brain_water_volume.tag, group="species")
    m.param("V_site", sp.mpfc_volume.to("L"), "L", _src(sp.mpfc_volume), sp.mpfc_volume.tag,
            group="species")
    m.param("k_site", math.log(2) / 0.5, "1/h",
            "intracortical depot drains into brain tissue with a 30-min half-time", "assumed",
            note="microinjection spreads over about 1 mm within an hour", group="species")


def covariate(drug: Drug, name: str, species: str) -> Sourced | None:
    """Covariate ``name`` of ``drug`` for ``species``: a ``<name>_<species>`` entry applies
    to that species only and wins over a plain ``<name>`` (which applies to all)."""
    return drug.covariates.get(f"{name}_{species}", drug.covariates.get(name))


def _p(m: ModelSpec, name: str, s: Sourced, unit: str, group: str, scale: float = 1.0) -> str:
    return m.param(name, s.to(unit) * scale, unit, _src(s), s.tag, s.note, group,
                   catalog().path_of(s))


def add_compound(m: ModelSpec, cat: Catalog, species: str, cid: str, routes: set[str],
                 track_elimination: bool = False) -> None:
    """Add the states, parameters and fluxes of compound ``cid`` (not its metabolites')."""
    drug = cat.drugs[cid]
    disp, measured_in = disposition_for(drug, species)
    g = f"pk:{cid}"
    assert drug.molecular_weight is not None
    _p(m, f"{cid}_mw", drug.molecular_weight, "g/mol", g)
    _p(m, f"{cid}_wref", disp.ref_weight, "kg", g)
    _p(m, f"{cid}_cl_ref", disp.cl, "L/h", g)
    _p(m, f"{cid}_v1_ref", disp.v1, "L", g)
    _p(m, f"{cid}_fu", disp.fu, "1", g)
    _p(m, f"{cid}_kpuu", disp.kp_uu, "1", g)
    _p(m, f"{cid}_thb", disp.t_half_brain, "h", g)
    m.param(f"eta_cl_{cid}", 1.0, "1", "between-subject variability (population layer)",
            "assumed", group="subject")
    m.param(f"eta_v_{cid}", 1.0, "1", "between-subject variability (population layer)",
            "assumed", group="subject")
    sex = "1.0"
    if (fem := covariate(drug, "female_cl_factor", species)) is not None:
        _p(m, f"{cid}_fem_cl", fem, "1", g)
        sex = f"(1 + ({cid}_fem_cl - 1) * female)"
    cyp = "1.0"
    if (pm := covariate(drug, "cyp2b6_poor_cl_factor", species)) is not None:
        _p(m, f"{cid}_pm_cl", pm, "1", g)
        cyp = f"(1 + ({cid}_pm_cl - 1) * cyp2b6_pm)"
    wr = f"(weight / {cid}_wref)"
    # clearance scales with lean (fat-free) mass: lean_ratio = subject's FFM/weight relative
    # to the reference adult's (1 for rodents and the typical subject), so at a mg/kg dose
    # heavier, fatter patients get more exposure
    m.derive(f"{cid}_CL",
             f"{cid}_cl_ref * ({wr} * lean_ratio) ** allo_cl * eta_cl_{cid} * {sex} * {cyp}",
             "L/h", f"individual clearance of {cid}", g)
    m.derive(f"{cid}_V1", f"{cid}_v1_ref * {wr} ** allo_v * eta_v_{cid}", "L",
             f"individual central volume of {cid}", g)
    m.derive(f"{cid}_keq", f"0.6931471805599453 / {cid}_thb", "1/h",
             "blood-brain equilibration rate", g)
    m.assign(f"{cid}_C", f"{cid}_c / {cid}_V1", "nM", f"plasma concentration of {cid}", g)
    m.assign(f"{cid}_J_b", f"{cid}_keq * ({cid}_kpuu * {cid}_fu * {cid}_C * V_bw - {cid}_b)",
             "nmol/h", "net flux plasma -> brain", g)
    central = f"- {cid}_CL * {cid}_C - {cid}_J_b"
    for k, (q, v) in enumerate((("q2", "v2"), ("q3", "v3")), start=1):
        qs, vs = getattr(disp, q), getattr(disp, v)
        if qs is None:
            break
        _p(m, f"{cid}_{q}_ref", qs, "L/h", g)
        _p(m, f"{cid}_{v}_ref", vs, "L", g)
        m.derive(f"{cid}_Q{k}", f"{cid}_{q}_ref * {wr} ** allo_cl", "L/h", "", g)
        m.derive(f"{cid}_VP{k}", f"{cid}_{v}_ref * {wr} ** allo_v * eta_v_{cid}", "L", "", g)
        flux = f"{cid}_Q{k} * ({cid}_C - {cid}_p{k} / {cid}_VP{k})"
        m.state(f"{cid}_p{k}", "nmol", flux, doc=f"peripheral compartment {k} of {cid}",
                group=g)
        central += f" - {flux}"
    m.state(f"{cid}_c", "nmol", central, doc=f"central (venous plasma) amount of {cid}",
            group=g)
    m.state(f"{cid}_b", "nmol", f"{cid}_J_b", doc=f"unbound brain amount of {cid}", group=g)
    m.assign(f"{cid}_Cb", f"{cid}_b / V_bw / 1000", "uM", f"unbound brain {cid}", g)
    m.state(f"{cid}_loc", "nmol", f"- k_site * {cid}_loc",
            doc=f"intracortical depot of {cid}", group=g)
    m.add_rate(f"{cid}_b", f"k_site * {cid}_loc")
    m.assign(f"{cid}_Cs", f"{cid}_Cb + {cid}_loc / V_site / 1000", "uM",
             f"unbound concentration of {cid} at the prefrontal site", g)
    for route in sorted(routes & set(EXTRAVASCULAR)):
        ab = absorption_for(cat, drug, species, route)
        if ab.ka is None:
            raise KeyError(f"{cid}: route {route} has no ka")
        _p(m, f"{cid}_ka_{route}", ab.ka, "1/h", g)
        dep = f"{cid}_dep_{route}"
        m.state(dep, "nmol", f"- {cid}_ka_{route} * {dep}", doc=f"{route} depot of {cid}",
                group=g)
        m.add_rate(f"{cid}_c", f"{cid}_ka_{route} * {dep}")
    if track_elimination:
        m.state(f"{cid}_elim", "nmol", "0", doc=f"cumulative non-metabolic loss of {cid}",
                group=g)
    _ = measured_in


def add_metabolism(m: ModelSpec, cat: Catalog, species: str, cid: str,
                   track_elimination: bool = False) -> None:
    """Route fraction ``f_m`` of ``cid``'s clearance into each metabolite."""
    drug = cat.drugs[cid]
    g = f"pk:{cid}"
    formed = []
    for met in drug.metabolites:
        f = met.species_fraction.get(species, met.fraction)  # type: ignore[call-overload]
        fname = _p(m, f"{cid}_f_{met.to}", f, "1", g)
        fam = cat.drugs[met.to].readout or met.to
        fem = covariate(drug, f"female_{fam}_formation_factor", species)
        if fem is not None:
            ff = _p(m, f"{cid}_fem_f_{met.to}", fem, "1", g)
            m.derive(f"{cid}_F_{met.to}", f"minimum({fname} * (1 + ({ff} - 1) * female), 0.98)",
                     "1", "formation fraction with sex covariate", g)
            fname = f"{cid}_F_{met.to}"
        formed.append(fname)
        rate = f"{fname} * {cid}_CL * {cid}_C"
        if met.transit is not None and met.transit.value > 0:
            # transit times were measured in adults; physiological times scale as W^0.25
            _p(m, f"{cid}_mtt_{met.to}", met.transit, "h", g)
            mtt = m.derive(f"{cid}_MTT_{met.to}",
                           f"{cid}_mtt_{met.to} * (weight / 70.0) ** (1 - allo_cl)", "h",
                           "individual transit time (allometric from a 70-kg adult)", g)
            tr = f"{cid}_tr_{met.to}"
            m.state(tr, "nmol", f"{rate} - {tr} / {mtt}",
                    doc=f"formation transit {cid} -> {met.to}", group=g)
            m.add_rate(f"{met.to}_c", f"{tr} / {mtt}")
        else:
            m.add_rate(f"{met.to}_c", rate)
    if track_elimination:
        rest = " - ".join(["1", *formed])
        s = m.states[f"{cid}_elim"]
        m.states[f"{cid}_elim"] = type(s)(s.name, s.unit, f"({rest}) * {cid}_CL * {cid}_C",
                                          s.initial, s.doc, s.group)


def dose_targets(cat: Catalog, species: str, cid: str, route: str,
                 f_override: float | None = None) -> list[DoseTarget]:
    """States that receive a dose of compound ``cid`` by ``route`` and their fractions.

    Extravascular routes put F into the depot; for portal routes (oral, i.p.) the first-pass
    loss (1 - F) is metabolised on the way: each metabolite's transit (or central)
    compartment receives (1 - F) x its formation fraction (molar).
    """
    if route in ("iv_bolus", "iv_infusion"):
        return [DoseTarget(f"{cid}_c", 1.0)]
    if route == "icv":
        return [DoseTarget(f"{cid}_b", 1.0)]
    if route == "intracortical":
        return [DoseTarget(f"{cid}_loc", 1.0)]
    drug = cat.drugs[cid]
    ab = absorption_for(cat, drug, species, route)
    f = ab.f.to("1") if f_override is None else f_override
    out = [DoseTarget(f"{cid}_dep_{route}", f)]
    if route in PORTAL:
        for met in drug.metabolites:
            fm = met.species_fraction.get(species, met.fraction).to("1")  # type: ignore[call-overload]
            has_tr = met.transit is not None and met.transit.value > 0
            state = f"{cid}_tr_{met.to}" if has_tr else f"{met.to}_c"
            out.append(DoseTarget(state, (1 - f) * fm))
    return out


def add_pk(m: ModelSpec, cat: Catalog, species: str, compounds: list[str],
           routes_by_compound: dict[str, set[str]], track_elimination: bool = False) -> None:
    """Add the PK of ``compounds`` and of every metabolite they form."""
    closure = cat.closure(compounds)
    for cid in closure:
        add_compound(m, cat, species, cid, routes_by_compound.get(cid, set()),
                     track_elimination)
    for cid in closure:
        add_metabolism(m, cat, species, cid, track_elimination)
    for fam in sorted({cat.drugs[c].readout or c for c in closure} | set(closure)):
        members = [c for c in closure if c == fam or cat.drugs[c].readout == fam]
        if not members:
            continue
        plasma = " + ".join(f"{c}_C * {c}_mw / 1000" for c in members)
        brain = " + ".join(f"{c}_Cs" for c in members)
        m.readout(f"plasma.{fam}", plasma, "ng/mL", f"total plasma {fam}")
        m.readout(f"brain.{fam}", brain, "uM", f"unbound brain (prefrontal) {fam}")

"""Pharmacokinetic layer: linear mammillary disposition, routes, metabolite chain, brain.

For every compound ``c`` (a dosed drug's components and all their metabolites):

- ``c_c`` central amount, ``c_p1``/``c_p2`` peripheral amounts (nmol); plasma concentration
  ``C = c_c / V1`` (nM); clearance ``CL`` removes ``CL*C``, of which fraction ``f_m`` forms
  metabolite ``m`` (through one transit compartment ``c_tr_m`` of mean time ``MTT``);
- ``c_b`` unbound brain amount (nmol) in the brain water volume ``V_bw``; exchange
  ``k_eq (kp_uu fu C V_bw - c_b)`` with ``k_eq = ln2 / t_half_brain`` (mass leaves plasma);
- ``c_loc`` intracortical injection depot (volume ``V_site``), draining into ``c_b``;
- ``c_dep_<route>`` first-order absorption depots, ``ka``; a fixed bioavailability F is
  applied at dosing; a swallowed dose (``fa``/``fg`` in the catalog) instead passes the gut
  wall and the liver on absorption: ``F = fa fg (1 - E_H)`` with the well-stirred hepatic
  extraction ``E_H = K r / (1 + K r)``, ``K = E_ref / (1 - E_ref)``, ``E_ref = f_hep CL_ref /
  Q_H`` (hepatic part of the typical clearance over hepatic blood flow) and ``r`` the
  subject's clearance relative to the typical one (intrinsic clearance scales with the
  subject's enzymes; E_H stays below 1). What the gut wall and liver extract forms the
  metabolites (fraction ``f_m`` each) on the way in. Intranasal doses with a ``swallowed``
  fraction put it into the oral depot (Perez-Ruixo 2021 Clin Pharmacokinet 60:501);
- arterial mixing (where the disposition gives ``v_arterial``, ``q_mix``, ``t_venous``):
  ``c_c`` is the arterial central pool ``V_A`` (doses, elimination, brain and tissue
  exchange), ``c_f`` the rest of the venous-fitted ``V1`` mixing with it through
  ``Q_mix``, and ``c_v`` an arm (forearm) compartment of mean transit ``t_venous`` whose
  outflow is the venous sample: ``plasma.X`` reads ``c_v / V_arm`` (psychiatric trials
  sample venous blood), ``plasma_arterial.X`` reads ``c_c / V_A`` (Henthorn 2018
  Anesthesiology 129:260; Kamp 2020 Anesthesiology 133:1192).

Individual parameters: ``CL = CL_ref (W/W_ref)^b_cl * eta_cl * sex * CYP2B6``,
``V = V_ref (W/W_ref)^b_v * eta_v``. Amounts are nmol, time h, volumes L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ketasim.catalog import Catalog, catalog
from ketasim.catalog.schema import Disposition, Drug, RouteAbsorption, Sourced
from ketasim.model.spec import ModelSpec

EXTRAVASCULAR = ("im", "sc", "ip", "oral", "intranasal", "sublingual")
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
    if sp.hepatic_blood_flow is not None:
        m.param("QH_ref", sp.hepatic_blood_flow.to("L/h"), "L/h", _src(sp.hepatic_blood_flow),
                sp.hepatic_blood_flow.tag, group="species")
        m.param("bw_ref", bw.to("kg"), "kg", _src(bw), bw.tag, group="species")
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
    mixing = disp.v_arterial is not None
    vc = _arterial_volumes(m, disp, cid, wr) if mixing else f"{cid}_V1"
    m.derive(f"{cid}_VC", vc, "L", f"volume of the central state {cid}_c", g)
    m.assign(f"{cid}_C", f"{cid}_c / {cid}_VC", "nM",
             f"plasma concentration of {cid} (arterial where mixing is described)", g)
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
    if mixing:
        for st, q, v, doc in ((f"{cid}_f", f"{cid}_QMIX", f"{cid}_VF",
                               "rest of the venous-fitted central volume"),
                              (f"{cid}_v", f"{cid}_QARM", f"{cid}_VARM",
                               "arm (venous sampling) compartment")):
            flux = f"{q} * ({cid}_C - {st} / {v})"
            m.state(st, "nmol", flux, doc=f"{doc} of {cid}", group=g)
            central += f" - {flux}"
        m.assign(f"{cid}_Cv", f"{cid}_v / {cid}_VARM", "nM", f"venous plasma {cid}", g)
    else:
        m.assign(f"{cid}_Cv", f"{cid}_C", "nM", f"venous plasma {cid} (= central)", g)
    m.state(f"{cid}_c", "nmol", central,
            doc=f"central amount of {cid} (arterial pool where mixing is described)",
            group=g)
    m.state(f"{cid}_b", "nmol", f"{cid}_J_b", doc=f"unbound brain amount of {cid}", group=g)
    m.assign(f"{cid}_Cb", f"{cid}_b / V_bw / 1000", "uM", f"unbound brain {cid}", g)
    m.state(f"{cid}_loc", "nmol", f"- k_site * {cid}_loc",
            doc=f"intracortical depot of {cid}", group=g)
    m.add_rate(f"{cid}_b", f"k_site * {cid}_loc")
    m.assign(f"{cid}_Cs", f"{cid}_Cb + {cid}_loc / V_site / 1000", "uM",
             f"unbound concentration of {cid} at the prefrontal site", g)
    if track_elimination:
        m.state(f"{cid}_elim", "nmol", "0", doc=f"cumulative non-metabolic loss of {cid}",
                group=g)
    for route in sorted(depot_routes(cat, species, cid, routes)):
        ab = absorption_for(cat, drug, species, route)
        if ab.ka is None:
            raise KeyError(f"{cid}: route {route} has no ka")
        _p(m, f"{cid}_ka_{route}", ab.ka, "1/h", g)
        dep = f"{cid}_dep_{route}"
        m.state(dep, "nmol", f"- {cid}_ka_{route} * {dep}", doc=f"{route} depot of {cid}",
                group=g)
        if ab.first_pass:
            f = _first_pass(m, cat, species, cid, route, ab, wr)
            m.add_rate(f"{cid}_c", f"{f} * {cid}_ka_{route} * {dep}")
            if track_elimination:  # not absorbed from the gut lumen
                m.add_rate(f"{cid}_elim", f"(1 - {cid}_fa_{route}) * {cid}_ka_{route} * {dep}")
        else:
            m.add_rate(f"{cid}_c", f"{cid}_ka_{route} * {dep}")
    _ = measured_in


def depot_routes(cat: Catalog, species: str, cid: str, routes: set[str]) -> set[str]:
    """Extravascular routes of ``cid`` that need a depot: the routes dosed, plus ``oral``
    where a dosed route swallows part of the dose."""
    out = set(routes) & set(EXTRAVASCULAR)
    drug = cat.drugs[cid]
    for route in sorted(out):
        if absorption_for(cat, drug, species, route).swallowed is not None:
            out.add("oral")
    return out


def _arterial_volumes(m: ModelSpec, disp: Disposition, cid: str, wr: str) -> str:
    """Parameters of arterial mixing and the arm compartment; returns the arterial volume."""
    g = f"pk:{cid}"
    assert disp.v_arterial is not None and disp.q_mix is not None
    assert disp.t_venous is not None
    _p(m, f"{cid}_va_ref", disp.v_arterial, "L", g)
    _p(m, f"{cid}_qmix_ref", disp.q_mix, "L/h", g)
    _p(m, f"{cid}_tven", disp.t_venous, "h", g)
    m.param(f"{cid}_qarm_ref", 3.0, "L/h",
            "forearm plasma flow about 50 mL/min (textbook physiology)", "assumed",
            "only the transit time t_venous shapes the venous curve; the arm holds < 1 % "
            "of the drug", g)
    m.derive(f"{cid}_VA", f"{cid}_va_ref * {wr} ** allo_v * eta_v_{cid}", "L",
             "arterial (mixing) central volume", g)
    m.derive(f"{cid}_VF", f"{cid}_V1 - {cid}_VA", "L",
             "rest of the venous-fitted central volume", g)
    m.derive(f"{cid}_QMIX", f"{cid}_qmix_ref * {wr} ** allo_cl", "L/h",
             "arterial mixing clearance", g)
    m.derive(f"{cid}_QARM", f"{cid}_qarm_ref * {wr} ** allo_cl", "L/h", "arm plasma flow", g)
    m.derive(f"{cid}_VARM", f"{cid}_QARM * {cid}_tven", "L", "arm compartment volume", g)
    return f"{cid}_VA"


def _first_pass(m: ModelSpec, cat: Catalog, species: str, cid: str, route: str,
                ab: RouteAbsorption, wr: str) -> str:
    """Derived parameters of a computed first pass; returns the name of F (fraction of the
    absorbed flux reaching the central compartment)."""
    g = f"pk:{cid}"
    disp, _ = disposition_for(cat.drugs[cid], species)
    if disp.hepatic_fraction is None or cat.species[species].hepatic_blood_flow is None:
        raise KeyError(f"{cid}: route {route} computes a first pass but {species} has no "
                       "hepatic_fraction or hepatic_blood_flow")
    assert ab.fa is not None and ab.fg is not None
    _p(m, f"{cid}_fa_{route}", ab.fa, "1", g)
    _p(m, f"{cid}_fg_{route}", ab.fg, "1", g)
    if f"{cid}_EH" not in m.derived:
        _p(m, f"{cid}_fhep", disp.hepatic_fraction, "1", g)
        m.derive(f"{cid}_EHref",
                 f"minimum({cid}_fhep * {cid}_cl_ref / (QH_ref * ({cid}_wref / bw_ref) "
                 "** allo_cl), 0.999)", "1", "hepatic extraction of the typical subject", g)
        m.derive(f"{cid}_KH", f"{cid}_EHref / (1 - {cid}_EHref)", "1",
                 "intrinsic hepatic clearance over hepatic blood flow (typical subject)", g)
        m.derive(f"{cid}_rcl", f"{cid}_CL / ({cid}_cl_ref * {wr} ** allo_cl)", "1",
                 "the subject's clearance relative to the typical one at its weight", g)
        m.derive(f"{cid}_EH", f"{cid}_KH * {cid}_rcl / (1 + {cid}_KH * {cid}_rcl)", "1",
                 "the subject's hepatic extraction (well-stirred liver)", g)
    return m.derive(f"{cid}_F_{route}",
                    f"{cid}_fa_{route} * {cid}_fg_{route} * (1 - {cid}_EH)", "1",
                    f"bioavailability of {route} {cid} (computed first pass)", g)


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
        presystemic = _presystemic(m, cid)
        if presystemic:  # gut wall and liver extract part of a swallowed dose on the way in
            rate = f"{rate} + {fname} * ({presystemic})"
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
        m.add_rate(f"{cid}_elim", f"({rest}) * {cid}_CL * {cid}_C")
        presystemic = _presystemic(m, cid)
        if presystemic:
            m.add_rate(f"{cid}_elim", f"({rest}) * ({presystemic})")


def _presystemic(m: ModelSpec, cid: str) -> str:
    """Flux (nmol/h) extracted by the gut wall and liver from the swallowed depots of
    ``cid`` whose first pass is computed ('' if none)."""
    terms = []
    for name in m.derived:
        pre = f"{cid}_F_"
        if name.startswith(pre) and f"{cid}_dep_{name[len(pre):]}" in m.states:
            route = name[len(pre):]
            terms.append(f"{cid}_fa_{route} * (1 - {cid}_fg_{route} * (1 - {cid}_EH)) * "
                         f"{cid}_ka_{route} * {cid}_dep_{route}")
    return " + ".join(terms)


def dose_targets(cat: Catalog, species: str, cid: str, route: str,
                 f_override: float | None = None) -> list[DoseTarget]:
    """States that receive a dose of compound ``cid`` by ``route`` and their fractions.

    Extravascular routes with a fixed F put F into the depot; for portal routes (oral, i.p.)
    the first-pass loss (1 - F) is metabolised on the way: each metabolite's transit (or
    central) compartment receives (1 - F) x its formation fraction (molar). Routes with a
    computed first pass put the whole dose into the depot (the model extracts it on
    absorption). A ``swallowed`` fraction (intranasal) goes the oral way.
    """
    if route in ("iv_bolus", "iv_infusion"):
        return [DoseTarget(f"{cid}_c", 1.0)]
    if route == "icv":
        return [DoseTarget(f"{cid}_b", 1.0)]
    if route == "intracortical":
        return [DoseTarget(f"{cid}_loc", 1.0)]
    drug = cat.drugs[cid]
    ab = absorption_for(cat, drug, species, route)
    if ab.first_pass and f_override is None:
        return [DoseTarget(f"{cid}_dep_{route}", 1.0)]
    assert ab.f is not None
    f = ab.f.to("1") if f_override is None else f_override
    out = [DoseTarget(f"{cid}_dep_{route}", f)]
    if route in PORTAL:
        for met in drug.metabolites:
            fm = met.species_fraction.get(species, met.fraction).to("1")  # type: ignore[call-overload]
            has_tr = met.transit is not None and met.transit.value > 0
            state = f"{cid}_tr_{met.to}" if has_tr else f"{met.to}_c"
            out.append(DoseTarget(state, (1 - f) * fm))
    if ab.swallowed is not None:
        sw = ab.swallowed.to("1")
        out += [DoseTarget(t.state, t.fraction * sw)
                for t in dose_targets(cat, species, cid, "oral")]
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
        plasma = " + ".join(f"{c}_Cv * {c}_mw / 1000" for c in members)
        arterial = " + ".join(f"{c}_C * {c}_mw / 1000" for c in members)
        brain = " + ".join(f"{c}_Cs" for c in members)
        m.readout(f"plasma.{fam}", plasma, "ng/mL", f"total venous plasma {fam}")
        m.readout(f"plasma_arterial.{fam}", arterial, "ng/mL", f"total arterial plasma {fam}")
        m.readout(f"brain.{fam}", brain, "uM", f"unbound brain (prefrontal) {fam}")

"""The drug and species catalog: contract ids, composition, metabolite chain, published
ratios, and provenance of every number."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from ketasim.catalog import ROUTES, SPECIES, Sourced, catalog

CONTRACT_DRUGS = [
    "ketamine", "esketamine", "arketamine", "norketamine", "hnk_2r6r", "memantine",
    "lanicemine", "mk801", "ro25_6981", "traxoprodil", "nbqx", "rapamycin", "ana12",
    "nifedipine", "bdnf_antibody", "midazolam", "saline", "escitalopram",
]

EXTRAVASCULAR = ("im", "sc", "ip", "oral", "intranasal")
SUBUNITS = ("ic50_glun2a", "ic50_glun2b", "ic50_glun2d")


def _sourced(obj: object, path: str = "") -> Iterator[tuple[str, Sourced]]:
    """Every Sourced value inside a pydantic model, dict or list, with its path."""
    if isinstance(obj, Sourced):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _sourced(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _sourced(v, f"{path}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _sourced(v, f"{path}[{i}]")


def test_catalog_loads_and_has_all_species() -> None:
    cat = catalog()
    assert set(cat.species) == set(SPECIES)


@pytest.mark.parametrize("drug", CONTRACT_DRUGS)
def test_contract_drug_present_and_dosable(drug: str) -> None:
    cat = catalog()
    assert drug in cat.drugs
    assert cat.drugs[drug].dosable
    assert drug in cat.dosable()
    assert cat.drugs[drug].routes, f"{drug} lists no routes"


def test_every_compound_has_molecular_weight_and_pk() -> None:
    for d in catalog().drugs.values():
        if d.role == "compound":
            assert d.molecular_weight is not None, d.id
            assert d.molecular_weight.to("g/mol") > 0, d.id
            assert d.pk, d.id


@pytest.mark.parametrize(
    ("alias", "target"),
    [
        ("dizocilpine", "mk801"),
        ("MK-801", "mk801"),
        ("Ro 25-6981", "ro25_6981"),
        ("CP-101,606", "traxoprodil"),
        ("cp-101606", "traxoprodil"),
        ("(2R,6R)-HNK", "hnk_2r6r"),
        ("2r6r-hnk", "hnk_2r6r"),
        ("r-hnk", "hnk_2r6r"),
        ("racemic ketamine", "ketamine"),
        ("(R,S)-ketamine", "ketamine"),
        ("Ketalar", "ketamine"),
        ("esketamine", "esketamine"),
    ],
)
def test_aliases_resolve(alias: str, target: str) -> None:
    assert catalog().resolve(alias) == target


def test_ketamine_is_a_racemic_mixture() -> None:
    cat = catalog()
    assert cat.drugs["ketamine"].role == "mixture"
    comp = cat.composition("ketamine")
    assert comp == pytest.approx({"esketamine": 0.5, "arketamine": 0.5})
    assert cat.composition("norketamine") == pytest.approx(
        {"s_norketamine": 0.5, "r_norketamine": 0.5}
    )
    assert cat.composition("saline") == {}


def test_metabolite_closure_of_ketamine() -> None:
    cat = catalog()
    closure = cat.closure(list(cat.composition("ketamine")))
    for cid in (
        "esketamine", "arketamine", "s_norketamine", "r_norketamine",
        "hnk_2s6s", "hnk_2r6r", "s_dhnk", "r_dhnk",
    ):
        assert cid in closure, cid
    families = {cat.drugs[c].readout for c in closure}
    assert {"ketamine", "norketamine", "hnk", "dhnk"} <= families
    # parents come before their metabolites
    assert closure.index("esketamine") < closure.index("s_norketamine") < closure.index("hnk_2s6s")


def test_metabolite_fractions_are_mass_balanced() -> None:
    for d in catalog().drugs.values():
        for sp in SPECIES:
            total = sum(
                m.species_fraction.get(sp, m.fraction).to("1")  # type: ignore[call-overload]
                for m in d.metabolites
            )
            assert total <= 1.0 + 1e-9, (d.id, sp, total)


@pytest.mark.parametrize("species", SPECIES)
def test_s_ketamine_cleared_6_to_35_percent_faster_than_r(species: str) -> None:
    cat = catalog()
    s = cat.drugs["esketamine"].pk[species]
    r = cat.drugs["arketamine"].pk[species]
    ratio = s.cl.to("L/h") / r.cl.to("L/h")
    assert 1.06 <= ratio <= 1.35, ratio
    # distribution is not stereoselective (Henthorn)
    assert s.v1.to("L") == pytest.approx(r.v1.to("L"))


@pytest.mark.parametrize("subunit", SUBUNITS)
def test_esketamine_3_to_5_times_more_potent_than_arketamine(subunit: str) -> None:
    cat = catalog()
    s = getattr(cat.drugs["esketamine"].pd.nmda, subunit).to("uM")
    r = getattr(cat.drugs["arketamine"].pd.nmda, subunit).to("uM")
    assert 3.0 <= r / s <= 5.0, (subunit, r / s)


def test_hnk_auc_ratios_reproduce_hasan_2021() -> None:
    """AUC_HNK / AUC_K = f(K->NK) f(NK->HNK) CL_K / CL_HNK: R 3.1, S 1.7 (human)."""
    cat = catalog()
    for parent, nk, hnk, target in (
        ("esketamine", "s_norketamine", "hnk_2s6s", 1.7),
        ("arketamine", "r_norketamine", "hnk_2r6r", 3.1),
    ):
        f1 = next(m for m in cat.drugs[parent].metabolites if m.to == nk).fraction.to("1")
        f2 = next(m for m in cat.drugs[nk].metabolites if m.to == hnk).fraction.to("1")
        cl_k = cat.drugs[parent].pk["human"].cl.to("L/h")
        cl_h = cat.drugs[hnk].pk["human"].cl.to("L/h")
        assert f1 * f2 * cl_k / cl_h == pytest.approx(target, rel=0.02), parent


def test_receptor_selectivity_is_in_the_numbers() -> None:
    cat = catalog()
    ro = cat.drugs["ro25_6981"].pd.nmda
    assert ro is not None
    assert ro.ic50_glun2b.to("uM") < ro.ic50_glun2a.to("uM") / 1000
    assert ro.use_dependence.value == 0 and ro.trapping.value == 0
    mem = cat.drugs["memantine"].pd.nmda
    ket = cat.drugs["esketamine"].pd.nmda
    assert mem is not None and ket is not None
    assert mem.rest_block.value < 0.2 < ket.rest_block.value
    assert mem.trapping.value < ket.trapping.value
    hnk = cat.drugs["hnk_2r6r"]
    assert hnk.pd.ampa_potentiation is not None
    assert hnk.pd.nmda is not None
    assert hnk.pd.nmda.ic50_glun2a.to("uM") > 10 * ket.ic50_glun2a.to("uM")


@pytest.mark.parametrize("species", SPECIES)
def test_every_route_has_absorption(species: str) -> None:
    """Extravascular routes resolve to drug data (any species) or the species default."""
    cat = catalog()
    sp = cat.species[species]
    for did in cat.dosable():
        for cid in cat.composition(did):
            drug = cat.drugs[cid]
            for route in cat.routes(did, species):
                if route not in EXTRAVASCULAR:
                    continue
                found = any(route in disp.routes for disp in drug.pk.values())
                assert found or route in sp.default_absorption, (did, cid, species, route)


def test_routes_are_known() -> None:
    cat = catalog()
    for d in cat.drugs.values():
        assert set(d.routes) <= set(ROUTES), d.id
    assert set(cat.drugs["saline"].routes) == set(ROUTES)
    for sp in ("rat", "mouse"):
        assert {"ip", "icv", "intracortical"} <= set(cat.species[sp].routes)


def test_every_sourced_value_has_a_source_and_a_usable_unit() -> None:
    cat = catalog()
    n = 0
    for kind, items in (("drugs", cat.drugs), ("species", cat.species)):
        for key, item in items.items():
            for path, s in _sourced(item, f"{kind}/{key}"):
                n += 1
                assert s.source.strip(), path
                assert s.value == s.value, path  # not NaN
                if s.tag in ("calibrated", "assumed", "derived"):
                    # the reason: in the note, or a source that is more than a label
                    assert s.note.strip() or len(s.source.split()) >= 2, f"{path}: say why"
    assert n > 500

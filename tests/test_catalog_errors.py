"""Every way a catalog folder can be wrong gives one CatalogError line naming the file, the
field, the value and what is allowed: ``load_catalog`` pointed at a broken copy of the
packaged catalog in a temporary folder."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

import ketasim as ks
from ketasim.catalog import load_catalog
from ketasim.errors import CatalogError, KetasimError

ESK = "drugs/esketamine.toml"
CL = 'cl = { value = 95, unit = "L/h", source = "Fanta 2015, Eur J Clin Pharmacol 71:441 (venous)", tag = "P" }'  # noqa: E501


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A writable copy of the packaged catalog's data files."""
    src = Path(str(resources.files("ketasim.catalog")))
    dst = tmp_path / "catalog"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _error(folder: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(folder)
    assert isinstance(info.value, KetasimError)
    line = str(info.value)
    assert "\n" not in line, line
    return line


def test_an_intact_copy_loads_like_the_packaged_catalog(folder: Path) -> None:
    copy, packaged = load_catalog(folder), ks.catalog()
    assert copy.drugs == packaged.drugs and copy.species == packaged.species
    assert copy.mechanism == packaged.mechanism and copy.population == packaged.population
    assert copy.assays == packaged.assays and copy.aliases == packaged.aliases


def test_malformed_toml(folder: Path) -> None:
    _edit(folder, ESK, 'role = "compound"', 'role = "compound')
    line = _error(folder)
    assert line.startswith(f"{folder}/{ESK}: not valid TOML")


def test_missing_unit(folder: Path) -> None:
    _edit(folder, ESK, CL, CL.replace('unit = "L/h", ', ""))
    assert _error(folder) == f"{folder}/{ESK}: pk.human.cl.unit: missing; it is required"


def test_unknown_unit(folder: Path) -> None:
    _edit(folder, ESK, CL, CL.replace('"L/h"', '"zorks per h"'))
    line = _error(folder)
    assert line == (f"{folder}/{ESK}: pk.human.cl.unit: 'zorks per h': "
                    "unknown unit 'zorks per h'")


def test_missing_source(folder: Path) -> None:
    _edit(folder, ESK, CL, CL.replace('source = "Fanta 2015, Eur J Clin Pharmacol 71:441 '
                                      '(venous)", ', ""))
    assert _error(folder) == f"{folder}/{ESK}: pk.human.cl.source: missing; it is required"


def test_empty_source(folder: Path) -> None:
    _edit(folder, ESK, CL, CL.replace("Fanta 2015, Eur J Clin Pharmacol 71:441 (venous)", ""))
    line = _error(folder)
    assert line.startswith(f"{folder}/{ESK}: pk.human.cl.source: '': ")
    assert "at least 1 character" in line


def test_bad_tag(folder: Path) -> None:
    _edit(folder, ESK, CL, CL.replace('tag = "P"', 'tag = "trust me"'))
    line = _error(folder)
    assert line.startswith(f"{folder}/{ESK}: pk.human.cl.tag: 'trust me': Input should be ")
    for tag in ("'P'", "'S'", "'U'", "'calibrated'", "'assumed'", "'derived'"):
        assert tag in line


def test_unknown_field(folder: Path) -> None:
    _edit(folder, ESK, 'role = "compound"', 'role = "compound"\nflavour = "mint"')
    line = _error(folder)
    assert line.startswith(f"{folder}/{ESK}: flavour: 'mint': Extra inputs are not permitted")


def test_unknown_species_referenced_by_a_drug(folder: Path) -> None:
    _edit(folder, ESK, "[pk.human]", "[pk.dog]")
    line = _error(folder)
    assert line.startswith(f"{folder}/{ESK}: pk.dog: 'dog'"), line
    assert "'human', 'rat' or 'mouse'" in line
    # a species the schema knows but the folder lacks
    _edit(folder, ESK, "[pk.dog]", "[pk.human]")
    (folder / "species" / "rat.toml").unlink()
    assert _error(folder).startswith(f"{folder}/drugs/")
    assert "pk.rat: unknown species; the catalog has human, mouse" in _error(folder)


def test_compound_without_molecular_weight(folder: Path) -> None:
    _edit(folder, ESK, "molecular_weight = {", "# molecular_weight = {")
    assert _error(folder) == f"{folder}/{ESK}: a compound needs molecular_weight"


def test_mixture_that_does_not_sum_to_one(folder: Path) -> None:
    _edit(folder, "drugs/ketamine.toml", "arketamine = 0.5 }", "arketamine = 0.4 }")
    line = _error(folder)
    assert re.fullmatch(rf"{re.escape(str(folder))}/drugs/ketamine.toml: mixture components "
                        r"sum to 0\.9\d*, not 1", line), line


def test_peripheral_volume_without_its_clearance(folder: Path) -> None:
    _edit(folder, ESK, "q3 = {", "# q3 = {")
    assert _error(folder) == f"{folder}/{ESK}: pk.human: q3 and v3 must be given together"


def test_second_peripheral_compartment_without_the_first(folder: Path) -> None:
    _edit(folder, ESK, "q2 = {", "# q2 = {")
    _edit(folder, ESK, "v2 = {", "# v2 = {")
    assert _error(folder) == f"{folder}/{ESK}: pk.human: q3/v3 given without q2/v2"


def test_compound_without_pk_and_mixture_without_components(folder: Path) -> None:
    path = folder / "drugs" / "nbqx.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("[pk.mouse]")], encoding="utf-8")
    assert _error(folder) == (f"{folder}/drugs/nbqx.toml: a compound needs pk for at least "
                              "one species")
    path.write_text(text, encoding="utf-8")
    _edit(folder, "drugs/ketamine.toml", "components = { esketamine = 0.5, arketamine = 0.5 }",
          "")
    assert _error(folder) == f"{folder}/drugs/ketamine.toml: a mixture needs components"


def test_id_that_is_not_the_file_name(folder: Path) -> None:
    _edit(folder, ESK, 'id = "esketamine"', 'id = "esketamina"')
    assert _error(folder) == (f"{folder}/{ESK}: id: 'esketamina': must be the file name "
                              "without .toml")


def test_alias_taken_twice(folder: Path) -> None:
    _edit(folder, "drugs/arketamine.toml", "aliases = [", 'aliases = ["s-ketamine", ')
    line = _error(folder)
    assert line == (f"{folder}/drugs/esketamine.toml: aliases: 's-ketamine': is taken by "
                    "'arketamine'; aliases must be unique")


def test_unknown_metabolite_and_component(folder: Path) -> None:
    _edit(folder, ESK, 'to = "s_norketamine"', 'to = "s_nor"')
    assert _error(folder) == (f"{folder}/{ESK}: metabolites.0.to: 's_nor': unknown drug; use "
                              "one of drugs/*.toml")
    _edit(folder, ESK, 'to = "s_nor"', 'to = "s_norketamine"')
    _edit(folder, "drugs/ketamine.toml", "esketamine = 0.5", "esketamin = 0.5")
    assert _error(folder) == (f"{folder}/drugs/ketamine.toml: components: 'esketamin': "
                              "unknown drug; use one of drugs/*.toml")


def test_bad_mechanism_and_population_constants(folder: Path) -> None:
    _edit(folder, "mechanism.toml", 'f_int_2a = { value = 0.2, unit = "1"',
          'f_int_2a = { value = "a fifth", unit = "1"')
    line = _error(folder)
    assert line.startswith(f"{folder}/mechanism.toml: receptors.f_int_2a.value: 'a fifth': ")
    assert "valid number" in line
    _edit(folder, "mechanism.toml", '"a fifth"', "0.2")
    _edit(folder, "population.toml", "[human]", "loose = 3\n[human]")
    line = _error(folder)
    assert line == f"{folder}/population.toml: loose: 3: must be a table of sourced values"


def test_bad_assay_technique(folder: Path) -> None:
    _edit(folder, "assays.toml", 'reference = "vehicle"', 'reference = "control"')
    line = _error(folder)
    assert line == (f"{folder}/assays.toml: techniques.western_blot.reference: 'control': "
                    "Input should be 'vehicle' or 'baseline'")


def test_missing_file_or_folder(folder: Path) -> None:
    (folder / "assays.toml").unlink()
    assert _error(folder) == f"{folder}/assays.toml: missing; the catalog needs this file"
    shutil.rmtree(folder / "species")
    assert _error(folder) == f"{folder}/species: missing; the catalog needs this folder"


def test_unknown_drug_name() -> None:
    with pytest.raises(CatalogError, match=r"^unknown drug 'ketamin'$"):
        ks.catalog().resolve("ketamin")

"""The catalog: drugs, species, mechanism and population constants, assay techniques;
data files validated on load.

``load_catalog(folder)`` reads and validates one catalog folder (``drugs/*.toml``,
``species/*.toml``, ``mechanism.toml``, ``population.toml``, ``assays.toml``) and raises
:class:`~ketasim.errors.CatalogError` with one line (file, field, value, what is allowed)
on the first bad entry. ``catalog()`` is the packaged folder, loaded once and cached;
drugs are looked up by id or alias.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ketasim.catalog.schema import ROUTES, SPECIES, Drug, Sourced, Species, Technique
from ketasim.errors import CatalogError

__all__ = ["ROUTES", "SPECIES", "Catalog", "Drug", "Sourced", "Species", "Technique",
           "catalog", "load_catalog"]

INTRAVASCULAR = ("iv_infusion", "iv_bolus")
LOCAL = ("icv", "intracortical")
Table = dict[str, dict[str, Sourced]]  # section -> name -> Sourced


def _shown(value: Any) -> str:
    """A value for an error line: short scalars in full, a table or list by its kind."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _invalid(where: str, exc: ValidationError, prefix: str = "") -> CatalogError:
    """One line for the first error pydantic found: file, field, value, what is allowed."""
    first = exc.errors()[0]
    parts = [prefix] * bool(prefix) + [str(p) for p in first["loc"] if p != "[key]"]
    loc = ".".join(parts)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return CatalogError(f"{where}: {loc}: missing; it is required")
    if first["type"] == "value_error" and isinstance(first["input"], dict):
        # a check across fields of one table: the message names them
        return CatalogError(f"{where}: {loc + ': ' if loc else ''}{msg}")
    return CatalogError(f"{where}: {loc}: {_shown(first['input'])}: {msg}")


class _Folder:
    """A catalog folder (packaged or on disk) and the name its files are shown by."""

    def __init__(self, root: Traversable, label: str) -> None:
        self.root, self.label = root, label

    def read(self, *parts: str) -> dict[str, Any]:
        where = "/".join((self.label, *parts))
        path = self.root.joinpath(*parts)
        if not path.is_file():
            raise CatalogError(f"{where}: missing; the catalog needs this file")
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{where}: not valid TOML: {exc}") from exc

    def entries(self, sub: str, model: type[Drug] | type[Species]) -> dict[str, Any]:
        """Every ``sub/*.toml`` validated as ``model``; the id must be the file name."""
        out: dict[str, Any] = {}
        folder = self.root.joinpath(sub)
        if not folder.is_dir():
            raise CatalogError(f"{self.label}/{sub}: missing; the catalog needs this folder")
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if not entry.name.endswith(".toml"):
                continue
            item = self.validate(model, self.read(sub, entry.name), sub, entry.name)
            if item.id != entry.name.removesuffix(".toml"):
                raise CatalogError(f"{self.label}/{sub}/{entry.name}: id: {item.id!r}: "
                                   "must be the file name without .toml")
            out[item.id] = item
        return out

    def validate(self, model: type[Any], data: Any, *parts: str, prefix: str = "") -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _invalid("/".join((self.label, *parts)), exc, prefix) from exc

    def table(self, name: str) -> Table:
        """A file of sections of Sourced values (mechanism.toml, population.toml)."""
        out: Table = {}
        for section, entries in self.read(name).items():
            if not isinstance(entries, dict):
                raise CatalogError(f"{self.label}/{name}: {section}: {_shown(entries)}: "
                                   "must be a table of sourced values")
            out[section] = {k: self.validate(Sourced, v, name, prefix=f"{section}.{k}")
                            for k, v in entries.items()}
        return out

    def techniques(self, name: str) -> dict[str, Technique]:
        raw = self.read(name).get("techniques", {})
        return {tid: self.validate(Technique, {"id": tid, **t} if isinstance(t, dict) else t,
                                   name, prefix=f"techniques.{tid}")
                for tid, t in raw.items()}


@dataclass(frozen=True)
class Catalog:
    """All drugs (by id) and species (by id), an alias index, the mechanism and population
    constants (section -> name -> Sourced) and the assay techniques (by id)."""

    drugs: dict[str, Drug]
    species: dict[str, Species]
    aliases: dict[str, str]
    mechanism: Table
    population: Table
    assays: dict[str, Technique]
    paths: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def path_of(self, value: Sourced) -> str:
        """The dotted name of a catalog value (``drugs.esketamine.pk.human.cl``), '' for a
        value that is not this catalog's. Metabolites are named by what they form
        (``drugs.esketamine.metabolites.s_norketamine.fraction``), never by position."""
        return self.paths.get(id(value), "")

    def resolve(self, name: str) -> str:
        """Catalog id for a drug id or alias (case-insensitive); CatalogError if unknown."""
        key = name.strip().lower()
        if key in self.drugs:
            return key
        if key in self.aliases:
            return self.aliases[key]
        raise CatalogError(f"unknown drug {name!r}")

    def drug(self, name: str) -> Drug:
        return self.drugs[self.resolve(name)]

    def families(self) -> set[str]:
        """Names that may follow ``plasma.`` / ``brain.`` in a readout: every compound id
        and every readout family (``ketamine`` = esketamine + arketamine)."""
        out: set[str] = set()
        for d in self.drugs.values():
            if d.role == "compound":
                out.add(d.id)
                if d.readout:
                    out.add(d.readout)
        return out

    def family_members(self, family: str) -> list[str]:
        """Compound ids whose concentrations add up to the readout family ``family``."""
        return [
            d.id
            for d in self.drugs.values()
            if d.role == "compound" and (d.id == family or d.readout == family)
        ]

    def dosable(self) -> list[str]:
        return [d.id for d in self.drugs.values() if d.dosable]

    def composition(self, name: str) -> dict[str, float]:
        """Mass fractions of the compounds a dose of ``name`` delivers (vehicle: empty)."""
        drug = self.drug(name)
        if drug.role == "vehicle":
            return {}
        if drug.role == "compound":
            return {drug.id: 1.0}
        out: dict[str, float] = {}
        for comp, frac in drug.components.items():
            for sub, f2 in self.composition(comp).items():
                out[sub] = out.get(sub, 0.0) + frac * f2
        return out

    def closure(self, compounds: list[str]) -> list[str]:
        """The compounds and every metabolite they form, parents before metabolites."""
        order: list[str] = []
        stack = list(compounds)
        while stack:
            c = stack.pop(0)
            if c in order:
                continue
            order.append(c)
            stack.extend(m.to for m in self.drugs[c].metabolites)
        return order

    def routes(self, name: str, species: str) -> list[str]:
        """Routes by which ``name`` can be given to ``species``: the drug's own list
        (``Drug.routes``) intersected with the routes the species supports."""
        drug = self.drug(name)
        sp = self.species[species]
        return [r for r in ROUTES if r in drug.routes and r in sp.routes]


def load_catalog(folder: str | Path | None = None) -> Catalog:
    """Load and validate the catalog in ``folder`` (default: the packaged one); raise
    CatalogError (one line: file, field, value, what is allowed) on the first bad entry."""
    if folder is None:
        src = _Folder(resources.files("ketasim.catalog"), "catalog")
    else:
        src = _Folder(Path(folder), str(folder))
    drugs: dict[str, Drug] = src.entries("drugs", Drug)
    species: dict[str, Species] = src.entries("species", Species)
    _check_references(src.label, drugs, species)
    paths: dict[int, str] = {}
    for kind, items in (("drugs", drugs), ("species", species)):
        for key, item in items.items():
            _index(item, f"{kind}.{key}", paths)
    return Catalog(drugs=drugs, species=species, aliases=_aliases(src.label, drugs),
                   mechanism=src.table("mechanism.toml"),
                   population=src.table("population.toml"),
                   assays=src.techniques("assays.toml"), paths=paths)


def _aliases(label: str, drugs: dict[str, Drug]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for d in drugs.values():
        for a in d.aliases:
            key = a.strip().lower()
            if key in drugs or (key in aliases and aliases[key] != d.id):
                raise CatalogError(f"{label}/drugs/{d.id}.toml: aliases: {a!r}: is taken "
                                   f"by {aliases.get(key, key)!r}; aliases must be unique")
            aliases[key] = d.id
    return aliases


def _check_references(label: str, drugs: dict[str, Drug], species: dict[str, Species]) -> None:
    """Every metabolite, component and species a drug names must be in the catalog."""
    for d in drugs.values():
        where = f"{label}/drugs/{d.id}.toml"
        for i, m in enumerate(d.metabolites):
            if m.to not in drugs:
                raise CatalogError(f"{where}: metabolites.{i}.to: {m.to!r}: unknown drug; use "
                                   "one of drugs/*.toml")
        for c in d.components:
            if c not in drugs:
                raise CatalogError(f"{where}: components: {c!r}: unknown drug; use one of "
                                   "drugs/*.toml")
        for sp in d.pk:
            if sp not in species:
                raise CatalogError(f"{where}: pk.{sp}: unknown species; the catalog has "
                                   f"{', '.join(species) or 'none'}")


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The packaged catalog, loaded and validated once (:func:`load_catalog`)."""
    return load_catalog()


def _index(node: Any, path: str, out: dict[int, str]) -> None:
    """Record the dotted name of every Sourced value under ``node`` (by object identity)."""
    if isinstance(node, Sourced):
        out[id(node)] = path
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _index(getattr(node, name), f"{path}.{name}", out)
    elif isinstance(node, dict):
        for key, value in node.items():
            _index(value, f"{path}.{key}", out)
    elif isinstance(node, list):
        for value in node:
            to = getattr(value, "to", None)
            if isinstance(value, BaseModel) and isinstance(to, str):
                _index(value, f"{path}.{to}", out)

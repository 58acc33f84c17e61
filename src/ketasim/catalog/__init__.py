"""The drug and species catalog: data files validated on load.

``catalog()`` returns the cached :class:`Catalog`; drugs are looked up by id or alias.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from ketasim.catalog.schema import ROUTES, SPECIES, Drug, Sourced, Species
from ketasim.errors import CatalogError

__all__ = ["ROUTES", "SPECIES", "Catalog", "Drug", "Sourced", "Species", "catalog"]

INTRAVASCULAR = ("iv_infusion", "iv_bolus")
LOCAL = ("icv", "intracortical")


def _read_toml(folder: str, name: str) -> dict[str, Any]:
    path = resources.files("ketasim.catalog").joinpath(folder, name)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog/{folder}/{name}: not valid TOML: {exc}") from exc


def _load(folder: str, model: type[Drug] | type[Species]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    root = resources.files("ketasim.catalog").joinpath(folder)
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        data = _read_toml(folder, entry.name)
        try:
            item = model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise CatalogError(f"catalog/{folder}/{entry.name}: {loc}: {first['msg']}") from exc
        if item.id != entry.name.removesuffix(".toml"):
            raise CatalogError(f"catalog/{folder}/{entry.name}: id {item.id!r} != file name")
        out[item.id] = item
    return out


@dataclass(frozen=True)
class Catalog:
    """All drugs (by id) and species (by id), plus an alias index."""

    drugs: dict[str, Drug]
    species: dict[str, Species]
    aliases: dict[str, str]
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


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """Load and validate every catalog file once; raise CatalogError on the first bad one."""
    drugs = _load("drugs", Drug)
    species = _load("species", Species)
    aliases: dict[str, str] = {}
    for d in drugs.values():
        for a in d.aliases:
            key = a.strip().lower()
            if key in drugs or (key in aliases and aliases[key] != d.id):
                raise CatalogError(f"catalog/drugs/{d.id}.toml: alias {a!r} is taken")
            aliases[key] = d.id
    for d in drugs.values():
        for m in d.metabolites:
            if m.to not in drugs:
                raise CatalogError(f"catalog/drugs/{d.id}.toml: metabolite {m.to!r} unknown")
        for c in d.components:
            if c not in drugs:
                raise CatalogError(f"catalog/drugs/{d.id}.toml: component {c!r} unknown")
    paths: dict[int, str] = {}
    for kind, items in (("drugs", drugs), ("species", species)):
        for key, item in items.items():
            _index(item, f"{kind}.{key}", paths)
    return Catalog(drugs=drugs, species=species, aliases=aliases, paths=paths)


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

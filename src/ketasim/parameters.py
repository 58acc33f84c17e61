"""Catalog values by dotted name: what they are, how uncertain, and where they act.

Every number of the catalog has a dotted name (``mechanism.structure.tau_spine``,
``population.ratings.relief_max``, ``drugs.esketamine.pk.human.cl``,
``drugs.esketamine.pd.nmda.ic50_glun2b``) and an uncertainty from
``catalog/uncertainty.toml`` (its own entry, else the default of its evidence tag; the
defaults are documented in that file's header and in docs/sensitivity.md).

:func:`select` turns patterns (exact names or globs: ``mechanism.*``, ``ratings.*``,
``drugs.ketamine.pd.*``; a mixture's name stands for its components) into the names a
scenario's model can vary per subject; :func:`uncertainty` gives each one's range. This
module is the one place that knows the names, so the sensitivity analysis and the
calibration/PEtab export share them.

Where a value acts (:func:`targets`): a model parameter (the model records the catalog
value each of its parameters comes from, ``Parameter.origin``) or a measurement constant
(``population.ratings.*`` for rating scales, ``population.behaviour.*`` for rodent tests),
both settable per subject, so a sample of parameter rows is one batch of subjects.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ketasim.catalog import catalog
from ketasim.catalog.schema import Sourced, Tag
from ketasim.errors import ArgumentError, CatalogError
from ketasim.model.compile import CompiledModel
from ketasim.model.params import mechanism_table

__all__ = ["MEASURE_SECTIONS", "Uncertain", "catalog_values", "measure_constants", "select",
           "targets", "uncertainty", "uncertainty_table"]

Dist = Literal["uniform", "loguniform", "fixed"]
# population.toml sections the measurement models read per subject, by species kind
MEASURE_SECTIONS = {"human": ("ratings",), "rodent": ("behaviour",)}


class Range(BaseModel):
    """One entry of catalog/uncertainty.toml (see its header)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dist: Dist
    relative: float | None = Field(default=None, gt=0, lt=1)
    factor: float | None = Field(default=None, gt=1)
    low: float | None = None
    high: float | None = None
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> Range:
        given = [k for k in ("relative", "factor") if getattr(self, k) is not None]
        absolute = self.low is not None or self.high is not None
        if self.dist == "fixed":
            if given or absolute:
                raise ValueError("a fixed value takes no range")
            return self
        if absolute and (self.low is None or self.high is None):
            raise ValueError("give low and high together")
        if absolute and given:
            raise ValueError("give either low/high or a relative range, not both")
        if self.dist == "uniform" and self.factor is not None:
            raise ValueError("uniform takes relative or low/high, not factor")
        if self.dist == "loguniform" and self.relative is not None:
            raise ValueError("loguniform takes factor or low/high, not relative")
        if not absolute and not given:
            way = "relative" if self.dist == "uniform" else "factor"
            raise ValueError(f"{self.dist} needs {way} or low/high")
        if absolute:
            assert self.low is not None and self.high is not None
            if not self.low < self.high:
                raise ValueError(f"low {self.low} is not below high {self.high}")
            if self.dist == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        return self


@dataclass(frozen=True)
class UncertaintyTable:
    defaults: dict[str, Range]
    entries: dict[str, Range]  # key (name or glob) -> range, in file order


@dataclass(frozen=True)
class Uncertain:
    """A catalog value and its range: ``low``..``high`` in ``unit``, ``dist`` uniform or
    loguniform (uniform in log), ``reason`` why (the default of ``tag`` or its own)."""

    name: str
    value: float
    unit: str
    tag: str
    dist: str
    low: float
    high: float
    reason: str
    source: str = ""


def _read(name: str) -> dict[str, Any]:
    text = resources.files("ketasim.catalog").joinpath(name).read_text("utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog/{name}: not valid TOML: {exc}") from exc


def _range(where: str, raw: Any) -> Range:
    try:
        return Range.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise CatalogError(f"catalog/uncertainty.toml: {where}{'.' + loc if loc else ''}: "
                           f"{msg}") from None


@lru_cache(maxsize=1)
def uncertainty_table() -> UncertaintyTable:
    """catalog/uncertainty.toml, validated: a default for every tag, every entry a valid
    range matching at least one catalog value (a typo would otherwise do nothing)."""
    raw = _read("uncertainty.toml")
    extra = set(raw) - {"defaults", "parameters"}
    if extra:
        raise CatalogError(f"catalog/uncertainty.toml: unknown table {sorted(extra)[0]!r}; "
                           "allowed: defaults, parameters")
    defaults = {tag: _range(f"defaults.{tag}", v) for tag, v in raw.get("defaults", {}).items()}
    for tag in Tag.__args__:  # type: ignore[attr-defined]
        if tag not in defaults:
            raise CatalogError(f"catalog/uncertainty.toml: defaults.{tag}: missing; every "
                               "evidence tag needs a default")
    unknown = set(defaults) - set(Tag.__args__)  # type: ignore[attr-defined]
    if unknown:
        raise CatalogError(f"catalog/uncertainty.toml: defaults.{sorted(unknown)[0]}: not an "
                           f"evidence tag; allowed: {', '.join(Tag.__args__)}")  # type: ignore[attr-defined]
    entries = {k: _range(f'parameters."{k}"', v) for k, v in raw.get("parameters", {}).items()}
    names = list(catalog_values())
    for key in entries:
        if not any(fnmatch.fnmatchcase(n, key) for n in names):
            raise CatalogError(f'catalog/uncertainty.toml: parameters."{key}": matches no '
                               "catalog value")
    return UncertaintyTable(defaults, entries)


@lru_cache(maxsize=1)
def catalog_values() -> dict[str, Sourced]:
    """Every catalog value by dotted name (mechanism, population, drugs, species)."""
    out: dict[str, Sourced] = {}
    for prefix, table in (("mechanism", mechanism_table()), ("population", catalog().population)):
        for section, entries in table.items():
            for name, value in entries.items():
                out[f"{prefix}.{section}.{name}"] = value
    for value_id, path in catalog().paths.items():
        _ = value_id
        out[path] = _lookup(path)
    return dict(sorted(out.items()))


def _lookup(path: str) -> Sourced:
    node: Any = catalog()
    kind, key, *rest = path.split(".")
    node = (node.drugs if kind == "drugs" else node.species)[key]
    for part in rest:
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            node = next(m for m in node if getattr(m, "to", None) == part)
        else:
            node = getattr(node, part)
    assert isinstance(node, Sourced)
    return node


def _entry(name: str) -> Range:
    table = uncertainty_table()
    if name in table.entries:
        return table.entries[name]
    for key, rng in table.entries.items():
        if fnmatch.fnmatchcase(name, key):
            return rng
    return table.defaults[catalog_values()[name].tag]


def uncertainty(name: str) -> Uncertain | None:
    """The range of catalog value ``name``; None when it is fixed or has no range (a value
    of 0 with only a relative range). CatalogError for a name the catalog does not have."""
    values = catalog_values()
    if name not in values:
        raise CatalogError(f"unknown catalog value {name!r}")
    s, rng = values[name], _entry(name)
    x = s.value
    if rng.dist == "fixed":
        return None
    if rng.low is not None and rng.high is not None:
        lo, hi = rng.low, rng.high
    elif rng.relative is not None:
        lo, hi = x * (1 - rng.relative), x * (1 + rng.relative)
    else:
        assert rng.factor is not None
        lo, hi = x / rng.factor, x * rng.factor
    lo, hi = min(lo, hi), max(lo, hi)
    if s.unit == "fraction":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    if not hi > lo or (rng.dist == "loguniform" and lo <= 0):
        return None
    return Uncertain(name, x, s.unit, s.tag, rng.dist, lo, hi, rng.reason, s.source)


def _species_kind(species: str) -> str:
    return "human" if species == "human" else "rodent"


def measure_constants(species: str) -> list[str]:
    """Names of the measurement-model constants a ``species`` reads per subject."""
    sections = MEASURE_SECTIONS[_species_kind(species)]
    return [n for n in catalog_values()
            if n.startswith("population.") and n.split(".")[1] in sections]


def targets(model: CompiledModel, species: str) -> dict[str, list[str]]:
    """Dotted name -> where it acts for this model: the model parameters it sets, or
    ``[]`` for a measurement constant (set per subject in the measurement model)."""
    out: dict[str, list[str]] = {}
    for p in model.spec.parameters.values():
        if p.origin:
            out.setdefault(p.origin, []).append(p.name)
    for name in measure_constants(species):
        out[name] = []
    return out


def _expand(pattern: str) -> list[str]:
    """A pattern with its shorthands spelled out: ``ratings.*`` is
    ``population.ratings.*``; ``drugs.<mixture>.`` is each component's ``drugs.<id>.``."""
    p = pattern.strip()
    first = p.split(".", 1)[0]
    if first not in ("mechanism", "population", "drugs", "species", "*"):
        if first in catalog().population:
            p = f"population.{p}"
        elif first in mechanism_table():
            p = f"mechanism.{p}"
    parts = p.split(".")
    if len(parts) > 2 and parts[0] == "drugs" and parts[1] in catalog().drugs:
        drug = catalog().drugs[parts[1]]
        if drug.role == "mixture":
            return [q for c in drug.components
                    for q in _expand(".".join(["drugs", c, *parts[2:]]))]
    return [p]


def select(patterns: Sequence[str] | str, available: Iterable[str],
           argument: str = "parameters") -> list[str]:
    """Names in ``available`` (what a model can vary) that ``patterns`` select, in
    catalog order, each varied only if it has a range.

    A glob that matches nothing varied, or an exact name that is fixed, unknown or not in
    ``available``, is an :class:`ArgumentError` on ``argument`` (one line)."""
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    if not patterns:
        raise ArgumentError(argument, "no parameters given; give dotted names or globs such "
                            "as mechanism.*, ratings.*, drugs.ketamine.pd.*")
    avail = set(available)
    values = catalog_values()
    chosen: set[str] = set()
    for pattern in patterns:
        found: set[str] = set()
        for p in _expand(pattern):
            if any(ch in p for ch in "*?["):
                found |= {n for n in avail if fnmatch.fnmatchcase(n, p)
                          and uncertainty(n) is not None}
                continue
            if p not in values:
                raise ArgumentError(argument, f'"{pattern}" is not a catalog value; names '
                                    "look like mechanism.structure.tau_spine, "
                                    "ratings.relief_max, drugs.esketamine.pd.nmda.ic50_glun2b")
            if p not in avail:
                raise ArgumentError(argument, f'"{pattern}" does not act in this scenario\'s '
                                    "model (not a parameter of it, or not varied per subject)")
            if uncertainty(p) is None:
                raise ArgumentError(argument, f'"{pattern}" is fixed in catalog/uncertainty.'
                                    f"toml ({_entry(p).reason}) or has no range")
            found.add(p)
        if not found:
            raise ArgumentError(argument, f'"{pattern}" matches no parameter this scenario '
                                "can vary")
        chosen |= found
    return [n for n in values if n in chosen]


def log_bounds(u: Uncertain) -> tuple[float, float]:
    """Bounds of ``u`` on the scale it is sampled uniformly on (log for loguniform)."""
    if u.dist == "loguniform":
        return math.log(u.low), math.log(u.high)
    return u.low, u.high

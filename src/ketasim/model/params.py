"""Access to the mechanism constants in catalog/mechanism.toml, added to a ModelSpec."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

from ketasim.catalog.schema import Sourced
from ketasim.errors import CatalogError
from ketasim.model.spec import ModelSpec


@lru_cache(maxsize=1)
def mechanism_table() -> dict[str, dict[str, Sourced]]:
    """Section -> name -> Sourced value, validated on first use."""
    text = resources.files("ketasim.catalog").joinpath("mechanism.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    out: dict[str, dict[str, Sourced]] = {}
    for section, entries in raw.items():
        out[section] = {}
        for name, val in entries.items():
            try:
                out[section][name] = Sourced.model_validate(val)
            except Exception as exc:
                raise CatalogError(f"catalog/mechanism.toml: {section}.{name}: {exc}") from exc
    return out


def mech(m: ModelSpec, section: str, name: str) -> str:
    """Add mechanism constant ``section.name`` to ``m`` (once) and return its symbol."""
    if name in m.parameters:
        return name
    s = mechanism_table()[section][name]
    m.param(name, s.value, s.unit, s.source, s.tag, s.note, group=section,
            origin=f"mechanism.{section}.{name}")
    return name

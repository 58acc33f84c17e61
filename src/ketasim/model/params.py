"""Access to the mechanism constants in catalog/mechanism.toml, added to a ModelSpec."""

from __future__ import annotations

from ketasim.catalog import catalog
from ketasim.catalog.schema import Sourced
from ketasim.model.spec import ModelSpec


def mechanism_table() -> dict[str, dict[str, Sourced]]:
    """Section -> name -> Sourced value of catalog/mechanism.toml (the packaged catalog)."""
    return catalog().mechanism


def mech(m: ModelSpec, section: str, name: str) -> str:
    """Add mechanism constant ``section.name`` to ``m`` (once) and return its symbol."""
    if name in m.parameters:
        return name
    s = mechanism_table()[section][name]
    m.param(name, s.value, s.unit, s.source, s.tag, s.note, group=section,
            origin=f"mechanism.{section}.{name}")
    return name

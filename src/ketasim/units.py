"""One pint registry for the whole package, and parsers for the strings users write.

Canonical internal units: time in hours (h), drug amounts in micrograms (ug), volumes in
litres (L), clearances in L/h, plasma concentrations in ng/mL (= ug/L) and unbound brain
concentrations in micromolar (uM).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Literal

import pint

ureg: pint.UnitRegistry = pint.UnitRegistry()
ureg.define("percent_ = 0.01 = pct")
Q_ = ureg.Quantity

DoseBasis = Literal["mass", "mass_per_kg", "moles", "moles_per_kg"]

_DOSE_DIMS: dict[str, DoseBasis] = {
    "[mass]": "mass",
    "[substance]": "moles",
    "": "mass_per_kg",  # mg/kg is dimensionless; checked again below
}


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(?![\d.])")


def starts_with_number(text: str) -> bool:
    """True if ``text`` begins with a plain decimal number (``"0.5 mg/kg"``, ``"-30 min"``,
    ``"1e3 ug"``); False for ``"mg/kg"``, ``"nan h"`` or ``"inf d"``."""
    return isinstance(text, str) and _NUMBER.match(text) is not None


@lru_cache(maxsize=4096)
def parse(text: str) -> pint.Quantity:
    """Parse ``"0.5 mg/kg"`` or ``"40 min"`` into a quantity; raise ValueError if not.

    The text must start with a finite decimal number: a bare unit (``"mg/kg"``, which pint
    would read as 1 mg/kg), ``nan`` or ``inf`` are not quantities here."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a quantity: {text!r}")
    if not starts_with_number(text):
        raise ValueError(f"not a quantity (no number): {text!r}")
    try:
        q: pint.Quantity = ureg.Quantity(text.strip())
    except Exception as exc:  # pint raises several unrelated types
        raise ValueError(f"not a quantity: {text!r}") from exc
    if not isinstance(q, pint.Quantity):
        raise ValueError(f"not a quantity: {text!r}")
    if not math.isfinite(float(q.magnitude)):
        raise ValueError(f"not a finite quantity: {text!r}")
    return q


def hours(text: str) -> float:
    """A duration or time string in hours; ValueError if it has no time dimension."""
    q = parse(text)
    if q.dimensionality != ureg.hour.dimensionality:
        raise ValueError(f"not a time: {text!r}")
    return float(q.to(ureg.hour).magnitude)


def dose_basis(text: str) -> tuple[DoseBasis, float]:
    """Classify a dose string and return (basis, magnitude in canonical units).

    Canonical magnitudes: ``mass`` in ug, ``mass_per_kg`` in ug/kg, ``moles`` in nmol,
    ``moles_per_kg`` in nmol/kg. Raises ValueError for anything that is not a dose.
    """
    q = parse(text)
    dims = q.dimensionality
    if dims == ureg.ug.dimensionality:
        return "mass", float(q.to(ureg.ug).magnitude)
    if dims == ureg.nmol.dimensionality:
        return "moles", float(q.to(ureg.nmol).magnitude)
    if dims == (ureg.nmol / ureg.kg).dimensionality:
        return "moles_per_kg", float(q.to(ureg.nmol / ureg.kg).magnitude)
    # mass/mass is dimensionless; demand that the string names a per-mass unit
    if dims == ureg.dimensionless.dimensionality and "/" in text and _per_body_mass(text):
        return "mass_per_kg", float(q.to(ureg.ug / ureg.kg).magnitude)
    raise ValueError(f"not a dose: {text!r}")


def _per_body_mass(text: str) -> bool:
    denom = text.split("/", 1)[1].strip()
    try:
        return bool(ureg.Quantity(1, denom).dimensionality == ureg.kg.dimensionality)
    except Exception:
        return False


def convert(value: float, unit: str, to: str) -> float:
    """Convert ``value`` in ``unit`` to ``to``; ValueError on incompatible dimensions."""
    try:
        return float(Q_(value, unit).to(to).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise ValueError(f"cannot convert {unit} to {to}") from exc
    except Exception as exc:
        raise ValueError(f"unknown unit {unit!r} or {to!r}") from exc


DAYS_FROM_H = 72.0  # from three days on, times read better in days


def format_hours(hours: float) -> str:
    """A time in hours written the way a protocol writes it; the one rule for every table,
    caption and message of the package:

    - not finite: ``"nan"``, ``"inf"``, ``"-inf"`` (a caller that means "never" says so);
    - zero: ``"0 h"``;
    - under 4 h and not a whole number of hours: minutes (``"40 min"``, ``"230 min"``,
      ``"-30 min"``);
    - a whole number of days, or from :data:`DAYS_FROM_H` (3 days) on: days (``"1 d"``,
      ``"7 d"``, ``"27.3 d"``);
    - otherwise hours (``"6 h"``, ``"36 h"``, ``"4.5 h"``).

    Minutes, hours and days keep four significant digits.
    """
    h = float(hours)
    if not math.isfinite(h):
        return str(h)
    if h == 0:
        return "0 h"
    a = abs(h)
    if a < 4 and abs(h - round(h)) > 1e-9:
        return f"{h * 60:.4g} min"
    days = h / 24.0
    if a >= DAYS_FROM_H or (a >= 24 and abs(days - round(days)) < 1e-9):
        return f"{days:.4g} d"
    return f"{h:.4g} h"

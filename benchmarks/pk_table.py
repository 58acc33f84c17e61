"""Print the predicted plasma concentrations for the clinical protocol next to the references.

0.5 mg/kg racemic ketamine IV over 40 min in a typical 70-kg man (no variability; venous
plasma, total, ng/mL; a second table gives the typical woman, who clears ketamine and
norketamine 20 % faster): ketamine, norketamine, (2S,6S;2R,6R)-HNK and DHNK at 40, 80, 120,
230 min and 24 h. The reference ranges, their sources and tags (P/S read in a primary or
secondary source, U recalled and unverified) are those tested in tests/test_pk.py
(``INFUSION_REFERENCE``, ``INFUSION_SOURCES``).

    PYTHONPATH=src python benchmarks/pk_table.py      # Markdown table and sources
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_pk import INFUSION_REFERENCE, INFUSION_SOURCES, TIMES_MIN, infusion_table


def main() -> None:
    table = infusion_table(70.0)
    names = list(INFUSION_REFERENCE)
    print("0.5 mg/kg racemic ketamine IV over 40 min, typical 70-kg man, venous plasma "
          "(ng/mL): simulated (reference range)")
    print()
    print("| time | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    outside = []
    for i, tm in enumerate(TIMES_MIN):
        label = f"{tm} min" if tm < 1440 else f"{tm // 60} h"
        cells = []
        for n in names:
            lo, hi = INFUSION_REFERENCE[n][tm]
            v = float(table[n][i])
            mark = "" if lo <= v <= hi else " !"
            if mark:
                outside.append(f"{n} at {label}")
            cells.append(f"{v:.1f} ({lo:g}-{hi:g}){mark}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("Sources of the ranges:")
    for n in names:
        print(f"- {n}: {INFUSION_SOURCES[n]}")
    print()
    print("Outside the reference range: " + (", ".join(outside) if outside else "none"))
    women = infusion_table(70.0, female=1.0)
    print()
    print("Typical 70-kg woman (ng/mL):")
    print()
    print("| time | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, tm in enumerate(TIMES_MIN):
        label = f"{tm} min" if tm < 1440 else f"{tm // 60} h"
        print(f"| {label} | " + " | ".join(f"{float(women[n][i]):.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()

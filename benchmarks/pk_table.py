"""Print the predicted plasma concentrations for the clinical protocol next to the references.

0.5 mg/kg racemic ketamine IV over 40 min in a typical 70-kg adult (venous plasma, ng/mL):
ketamine, norketamine, (2S,6S;2R,6R)-HNK and DHNK at 40, 80, 120, 230 min and 24 h. The
reference ranges and their sources are those tested in tests/test_pk.py.

    python benchmarks/pk_table.py            # Markdown table
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_pk import INFUSION_REFERENCE, TIMES_MIN, infusion_table


def main() -> None:
    table = infusion_table(70.0)
    names = list(INFUSION_REFERENCE)
    print("| time | " + " | ".join(f"{n} (ref.)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for i, tm in enumerate(TIMES_MIN):
        label = f"{tm} min" if tm < 1440 else f"{tm // 60} h"
        cells = []
        for n in names:
            lo, hi = INFUSION_REFERENCE[n][tm]
            cells.append(f"{table[n][i]:.1f} ({lo:g}-{hi:g})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

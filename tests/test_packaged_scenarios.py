"""The validation cases ship the scenarios they use inside the package (so an installed
``ketasim validate`` runs without ``examples/``); those copies must stay the examples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = sorted((ROOT / "src/ketasim/validation/scenarios").glob("*.toml"))


def test_every_scenario_file_of_a_case_is_packaged() -> None:
    for case in (ROOT / "src/ketasim/validation/cases").glob("*.toml"):
        for line in case.read_text(encoding="utf-8").splitlines():
            if line.startswith("scenario_file"):
                name = line.split("=", 1)[1].strip().strip('"')
                assert name.startswith("../scenarios/"), (case.name, name)
                assert (case.parent / name).is_file(), (case.name, name)


@pytest.mark.parametrize("path", PACKAGED, ids=[p.stem for p in PACKAGED])
def test_packaged_scenario_is_the_example(path: Path) -> None:
    example = ROOT / "examples" / path.name
    assert path.read_bytes() == example.read_bytes(), f"{path.name} drifted from examples/"

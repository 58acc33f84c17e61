"""Same seed, same summary.csv, to the byte: serial, ``--jobs 2`` and any ``--chunk-size``
(issue 14 item 10).

The scenario runs on the reference engine, which integrates every subject on its own, so a
subject's numbers do not depend on which subjects share its chunk; the streamed summary
merges exact sums (:func:`ketasim.experiments.stream.exact_sums`), so the merged numbers do
not depend on the chunk sizes either. (The batched engine integrates a chunk as one system
with one step size, so its numbers move within the solver tolerance when the chunks change;
serial and parallel runs of the same chunks still agree to the bit, as tested here.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ketasim.cli import app
from scenario_text import KETAMINE_VS_SALINE

SMALL = """
name = "determinism"
species = "human"
seed = 23

[population]
size = 3
condition = "trd"

[design]
type = "parallel"
follow_up = "1 d"

[engine]
method = "{engine}"
""" + KETAMINE_VS_SALINE + """
[outputs]
times = ["40 min", "4 h", "1 d"]
readouts = ["plasma.ketamine", "madrs", "response"]
"""


def _summary(tmp_path: Path, engine: str, *flags: str) -> bytes:
    scenario = tmp_path / f"{engine}.toml"
    scenario.write_text(SMALL.format(engine=engine), encoding="utf-8")
    out = tmp_path / ("out" + "_".join(flags).replace("-", ""))
    res = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "--format",
                                   "json", "--no-subjects", *flags])
    assert res.exit_code == 0, res.output
    return (out / "summary.csv").read_bytes()


def test_same_summary_serial_parallel_and_for_every_chunk_size(tmp_path: Path) -> None:
    # 3 subjects per arm: chunks of 1 (six tasks), 2 on two workers (four), 3 (two)
    chunked = {flags: _summary(tmp_path, "reference", *flags) for flags in (
        ("--chunk-size", "1"), ("--chunk-size", "2", "--jobs", "2"), ("--chunk-size", "3"))}
    first = next(iter(chunked.values()))
    assert b"plasma.ketamine" in first and b"madrs" in first
    for flags, text in chunked.items():
        assert text == first, flags


@pytest.mark.slow
def test_whole_cohorts_serial_and_parallel(tmp_path: Path) -> None:
    # the unchunked summary (with its tests), and the batched engine on the same chunks
    assert _summary(tmp_path, "reference") == _summary(tmp_path, "reference", "--jobs", "2")
    flags = ("--chunk-size", "2")
    assert _summary(tmp_path, "batched", *flags) == _summary(tmp_path, "batched", *flags,
                                                             "--jobs", "2")

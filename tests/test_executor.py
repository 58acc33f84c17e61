"""Chunks through executors: the same numbers serial, in a process pool and on a Dask
cluster (127.0.0.1), with a worker killed mid-run, and after an interrupted run resumed."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

import ketasim as ks
from ketasim.cli import app
from ketasim.errors import KetasimError, WorkerLostError
from ketasim.experiments import executor as ex
from ketasim.experiments.stream import SummaryAccumulator
from scenario_text import KETAMINE_VS_SALINE

SMALL = """
name = "executor test"
species = "human"
seed = 11

[population]
size = 3
condition = "trd"

[design]
type = "parallel"
follow_up = "1 d"
""" + KETAMINE_VS_SALINE + """
[outputs]
times = ["40 min", "1 d"]
readouts = ["plasma.ketamine", "madrs", "response"]
"""
CHUNK = 2  # 3 subjects per arm: chunks of 2 and 1, four tasks in all


def small() -> Any:
    return ks.load_scenario(tomllib.loads(SMALL))


def same(a: Any, b: Any) -> None:
    """Bit-identical summaries, solver statuses and kept subjects."""
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
    assert a.manifest["solver_status"] == b.manifest["solver_status"]
    xr.testing.assert_identical(a.data, b.data)


@pytest.fixture(scope="module")
def serial() -> Any:
    return ks.run(small(), chunk_size=CHUNK)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                             initializer=ex.limit_threads, initargs=(1,)) as p:
        yield p


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """The client of ``--cluster local:2`` (two one-thread workers on 127.0.0.1)."""
    import distributed

    with ex.executor_for(cluster="local:2"):
        yield distributed.default_client()


# ------------------------------------------------------------------ merging, unit level


def _synthetic(sc: Any, subjects: np.ndarray, rng: np.random.Generator) -> xr.Dataset:
    """A crossover chunk: madrs (some NaN) and response for the default scenario's times;
    every seventh subject failed."""
    times = np.asarray(sc.output_times_h)
    n, t = subjects.size, times.size
    first = np.where(subjects % 2 == 0, "ketamine", "saline")
    arm = np.stack([first, np.where(first == "ketamine", "saline", "ketamine")], axis=1)
    madrs = rng.normal(25, 8, (n, 2, t))
    madrs[rng.random((n, 2, t)) < 0.05] = np.nan
    response = (rng.random((n, 2, t)) < 0.4).astype(float)
    status = np.where(subjects % 7 == 3, "failed", "ok").astype(object)
    return xr.Dataset(
        {"madrs": (("subject", "period", "time"), madrs, {"unit": "points"}),
         "response": (("subject", "period", "time"), response, {"unit": "fraction"}),
         "status": ("subject", status)},
        coords={"subject": subjects, "period": [1, 2], "time": times,
                "arm": (("subject", "period"), arm.astype(object))})


def test_merged_accumulators_equal_added_chunks_to_the_bit() -> None:
    sc = ks.default_scenario()
    rng = np.random.default_rng(3)
    chunks = [_synthetic(sc, np.arange(lo, lo + size), rng)
              for lo, size in ((0, 13), (13, 1), (14, 30), (44, 9))]
    added = SummaryAccumulator(sc, quantile_sample=10)  # small k: bottom-k truncates
    merged = SummaryAccumulator(sc, quantile_sample=10)
    for ds in chunks:
        added.add(ds)
        part = SummaryAccumulator(sc, quantile_sample=10)
        part.add(ds)
        merged.merge(part)
    want, got = added.table(), merged.table()
    assert len(want) > 100 and want["arm"].str.contains(" vs ").any()  # paired differences
    pd.testing.assert_frame_equal(want, got, check_exact=True)
    assert merged.status == added.status == {"failed": 8, "ok": 45}


# -------------------------------------------------------------------- tasks, unit level


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (3 - x % 3))  # later tasks finish first
    return x * x


def test_run_tasks_gives_results_in_task_order() -> None:
    seen: list[int] = []
    with ThreadPoolExecutor(3) as pool:
        got = list(ex.run_tasks(_slow_square, [(i,) for i in range(7)], pool,
                                done=lambda i, _: seen.append(i)))
    assert got == [i * i for i in range(7)]
    assert sorted(seen) == list(range(7)) and seen != sorted(seen)


def test_checkpoint_keeps_finished_tasks_and_refuses_other_work(tmp_path: Path) -> None:
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        if x == 3 and len(calls) == 4:
            raise KeyboardInterrupt  # interrupted at the fourth task, the first time
        return x * x

    ck = ex.Checkpoint(tmp_path / "c", {"work": "squares"})
    with pytest.raises(KeyboardInterrupt):
        list(ex.run_tasks(square, [(i,) for i in range(6)], None, ck))
    assert ck.done() == {0, 1, 2}
    again = ex.Checkpoint(tmp_path / "c", {"work": "squares"})
    assert list(ex.run_tasks(square, [(i,) for i in range(6)], None, again)) == \
        [i * i for i in range(6)]
    assert calls == [0, 1, 2, 3, 3, 4, 5]  # 0-2 loaded, not run again
    with pytest.raises(KetasimError, match="other work"):
        ex.Checkpoint(tmp_path / "c", {"work": "cubes"})


def _dies_at_two(x: int) -> int:
    if x == 2:
        os._exit(3)  # a worker process killed mid-run
    return x


def test_a_dead_pool_worker_is_one_line_and_keeps_the_chunks(tmp_path: Path) -> None:
    ck = ex.Checkpoint(tmp_path / "c", {"work": "dies"})
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as one, \
            pytest.raises(WorkerLostError, match="--resume continues the run"):
        list(ex.run_tasks(_dies_at_two, [(i,) for i in range(4)], one, ck))
    assert ck.done() <= {0, 1}
    with pytest.raises(WorkerLostError), ex.discard_on_error(ck.folder):
        raise WorkerLostError("lost")
    assert ck.folder.is_dir()  # kept for --resume, unlike after a failure
    with pytest.raises(KetasimError), ex.discard_on_error(ck.folder):
        raise KetasimError("bad")
    assert not ck.folder.exists()


def test_out_folder_states(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert ex.out_checkpoint(out) == out / ex.CHECKPOINT_DIR  # absent: fine
    (out / ex.CHECKPOINT_DIR).mkdir(parents=True)
    with pytest.raises(KetasimError, match="holds an interrupted run; use resume=True"):
        ex.out_checkpoint(out)
    assert ex.out_checkpoint(out, resume=True).is_dir()
    ex.out_checkpoint(out, overwrite=True)
    assert not (out / ex.CHECKPOINT_DIR).exists()  # --overwrite starts again
    (out / "summary.csv").write_text("x")
    with pytest.raises(KetasimError, match="holds finished results"):
        ex.out_checkpoint(out, resume=True)
    with pytest.raises(KetasimError, match="exists; use overwrite=True"):
        ex.out_checkpoint(out)


def test_cli_refuses_bad_executor_options(tmp_path: Path) -> None:
    for args, line in (
            (["--jobs", "0"], "--jobs: 0 is not allowed; use a whole number >= 1"),
            (["--cluster", "remote"], '--cluster: "remote" is not allowed; use local:N'),
            (["--chunk-size", "0"], "--chunk-size: 0 is not allowed"),
            (["--resume"], "--resume: give --out DIR, the folder of the interrupted run"),
            (["--jobs", "2", "--cluster", "local:2"],
             "--jobs: give only one of jobs, cluster and scheduler")):
        res = CliRunner().invoke(app, ["run", "--format", "json", *args])
        assert res.exit_code == 2, (args, res.output)
        err = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith(line), (args, err)
        assert res.stdout == ""


# ---------------------------------------------------------------------- whole runs


def test_workers_run_one_numba_thread(pool: Any, dask_client: Any) -> None:
    assert pool.submit(os.getenv, "NUMBA_NUM_THREADS").result() == "1"
    got = dask_client.run(os.getenv, "NUMBA_NUM_THREADS")
    assert list(got.values()) == ["1", "1"]
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in got)


def test_process_pool_gives_the_serial_numbers(serial: Any, pool: Any) -> None:
    got = ks.run(small(), chunk_size=CHUNK, executor=pool)
    same(serial, got)
    assert got.manifest["tasks"] == {"total": 4, "resumed": 0}
    assert got.manifest["executor"] == "ProcessPoolExecutor"


def test_whole_cohorts_on_a_pool_give_the_serial_numbers(pool: Any) -> None:
    want = ks.run(small())  # unchunked: the full summary, with p-values
    got = ks.run(small(), executor=pool)
    assert "p_value" in set(want.summary["statistic"])
    same(want, got)


def test_dask_cluster_gives_the_serial_numbers(serial: Any, dask_client: Any) -> None:
    got = ks.run(small(), chunk_size=CHUNK, executor=dask_client.get_executor())
    same(serial, got)


def test_a_killed_worker_is_retried_and_changes_nothing(serial: Any, dask_client: Any
                                                        ) -> None:
    before = set(dask_client.run(os.getpid).values())
    killed: list[int] = []

    def kill_a_busy_worker(advance: int = 0, total: int | None = None) -> None:
        if advance and not killed:  # the first chunk is back: the others are running
            busy = [w for w, keys in dask_client.processing().items() if keys]
            pid = dask_client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    got = ks.run(small(), progress=kill_a_busy_worker, chunk_size=CHUNK,
                 executor=dask_client.get_executor())
    assert killed and killed[0] in before
    dask_client.wait_for_workers(2, timeout=60)
    after = set(dask_client.run(os.getpid).values())
    assert killed[0] not in after and len(after) == 2  # the nanny started a new one
    same(serial, got)


def test_interrupted_run_resumes_to_the_same_numbers(serial: Any, tmp_path: Path) -> None:
    """A run killed (SIGKILL) after two of its four chunks are written resumes with
    --resume (here on a 2-worker Dask cluster) to the summary of an uninterrupted run."""
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL, encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from ketasim.cli import main; main()", "run", str(scenario),
           "--out", str(out), "--chunk-size", str(CHUNK), "--format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks = out / ex.CHECKPOINT_DIR
    deadline = time.monotonic() + 300
    while len(list(chunks.glob("*/task-*.pkl"))) < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no chunk written in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(chunks.glob("*/task-*.pkl")))
    assert 2 <= written < 4 and not (out / "summary.csv").exists()

    again = CliRunner().invoke(app, [*cmd[3:], "--resume", "--cluster", "local:2"])
    assert again.exit_code == 0, again.output
    assert "Dask: 2 workers; dashboard http://127.0.0.1:" in again.stderr
    got = pd.read_csv(out / "summary.csv")
    want = pd.read_csv(pd.io.common.StringIO(serial.summary.to_csv(index=False)))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    manifest = pd.read_json(out / "manifest.json", typ="series")
    assert manifest["tasks"] == {"total": 4, "resumed": written}
    assert not chunks.exists()  # the finished results replace the chunks


def test_failed_run_leaves_no_chunks(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(SMALL + "\n[model]\nparameters = { no_such_parameter = 2.0 }\n",
                        encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "--chunk-size",
                                   "2"])
    assert res.exit_code == 2 and not out.exists()


def test_power_batches_on_a_pool_give_the_serial_table(pool: Any) -> None:
    from ketasim.analysis import power as pw
    from test_power import FakeSim, _scenario  # a picklable stand-in for ketasim.run

    sc = _scenario("parallel")
    want = pw.power(sc, [4, 10], 40, batch=7, simulate=FakeSim(-5.0))
    got = pw.power(sc, [4, 10], 40, batch=7, simulate=FakeSim(-5.0), executor=pool)
    assert want["replicates"].tolist() == [40, 40]
    pd.testing.assert_frame_equal(want, got, check_exact=True)

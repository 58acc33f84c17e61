"""Dashboard jobs: a scenario run in a worker process, in a workspace the server chooses.

The browser never names a file. A job is made from scenario *text*; the server creates its
workspace (a fresh directory under the store's temporary root), runs the scenario in a
separate process (so a cancel ends it at once and a failure cannot take the server down),
writes the result files there with :func:`ketasim.write_results`, and serves them by job
id (32 hex digits, looked up in the store) and a fixed file name only.

Only the public API (``import ketasim as ks``) is used. No NiceGUI here: the store is
tested without a browser.
"""

from __future__ import annotations

import html.parser
import json
import multiprocessing as mp
import os
import queue as queue_mod
import re
import shutil
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ketasim as ks

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

DEFAULT_STUDY = "default"  # the built-in study set: crossover + course, with Table 1
DOWNLOADS = ("summary.csv", "subjects.parquet", "report.html")
MAX_SUBJECTS = 1_000  # default population cap of a dashboard job
KEEP_JOBS = 20  # finished jobs whose files are kept; older ones are deleted
JOB_ID = re.compile(r"[0-9a-f]{32}")
GENERIC_FIGURES = "Figures"  # the report's section of per-readout time courses


def one_line(exc: object) -> str:
    """The error as the command line prints it: one line, whitespace collapsed."""
    return " ".join(str(exc).split())


# ------------------------------------------------------------------------- scenarios


def default_examples_dir() -> Path | None:
    """The ``examples/`` folder of a source checkout, beside ``src/``; None if absent."""
    folder = Path(ks.__file__).resolve().parents[2] / "examples"
    return folder if folder.is_dir() else None


def examples(folder: Path | None) -> dict[str, tuple[str, str]]:
    """``{key: (label, toml text)}``: the built-in study set first, then every ``*.toml``
    of ``folder`` (the key is the file stem; the label the scenario's name)."""
    from importlib import resources

    text = resources.files("ketasim.scenarios").joinpath("default.toml").read_text("utf-8")
    out = {DEFAULT_STUDY: ("Default study: seed crossover + six-infusion course (Table 1)",
                           text)}
    for path in sorted(folder.glob("*.toml")) if folder is not None else []:
        body = path.read_text(encoding="utf-8")
        try:
            name = str(tomllib.loads(body).get("name") or path.stem)
        except tomllib.TOMLDecodeError:
            name = path.stem
        out[path.stem] = (f"{path.stem}: {name}", body)
    return out


@dataclass
class Checked:
    """A scenario text as the dashboard sees it: valid (``scenario``) or one error line."""

    scenario: Any = None
    error: str | None = None
    subjects: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def subject_count(sc: Scenario) -> int:
    """Subjects a run of ``sc`` simulates: ``population.size`` per arm, or once in all for
    a crossover (every subject receives every arm)."""
    size = int(sc.population.size)
    return size if sc.design.type == "crossover" else size * len(sc.arms)


def check(text: str, max_subjects: int = MAX_SUBJECTS) -> Checked:
    """Validate scenario text: the scenario, or the command line's one-line error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Checked(error=f"scenario: not valid TOML: {one_line(exc)}")
    try:
        sc = ks.load_scenario(data)
    except ks.KetasimError as exc:
        return Checked(error=one_line(exc))
    n = subject_count(sc)
    if n > max_subjects:
        err = ks.ScenarioError(
            "population.size", int(sc.population.size),
            f"gives {n} subjects in all; this dashboard runs at most {max_subjects} "
            "(start it with --max-subjects to allow more)")
        return Checked(error=one_line(err), subjects=n)
    return Checked(scenario=sc, subjects=n)


# ---------------------------------------------------------------------------- worker


def _work(text: str, study: bool, out: str, messages: Any) -> None:
    """Worker process: run the scenario, write its files into ``out``, report on
    ``messages`` as ``(kind, a, b)`` tuples: progress, phase, done, error."""
    def progress(advance: int = 0, total: int | None = None) -> None:
        messages.put(("progress", int(advance or 0), None if total is None else int(total)))

    try:
        sc = ks.load_scenario(tomllib.loads(text))
        result = (ks.run_default(progress, single=sc) if study
                  else ks.run(sc, progress=progress))
        messages.put(("phase", "writing the report", None))
        ks.write_results(result, out)
        messages.put(("done", None, None))
    except ks.KetasimError as exc:
        messages.put(("error", one_line(exc), None))
    except Exception as exc:  # a defect, not bad input: say what it was
        messages.put(("error", f"the run failed: {type(exc).__name__}: {one_line(exc)}", None))


# ------------------------------------------------------------------------------- job


@dataclass
class Job:
    """One run: state ``running``, ``done``, ``failed`` or ``cancelled``."""

    id: str
    workspace: Path
    study: bool
    name: str
    state: str = "running"
    error: str | None = None
    done: int = 0
    total: int | None = None
    phase: str = "starting"
    process: Any = field(default=None, repr=False)
    messages: Any = field(default=None, repr=False)

    @property
    def out(self) -> Path:
        return self.workspace / "out"

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def poll(self) -> None:
        """Take the worker's messages; notice a worker that died without a word."""
        if self.finished:
            return
        for kind, a, b in self._drain():
            if kind == "progress":
                self.done += a
                self.total = b if b is not None else self.total
                self.phase = "simulating subjects"
            elif kind == "phase":
                self.phase = str(a)
            elif kind == "done":
                self._end("done")
            elif kind == "error":
                self._end("failed", str(a))
        if not self.finished and not self.process.is_alive():
            for kind, a, _ in self._drain():  # the last words may arrive after the exit
                if kind in ("done", "error"):
                    self._end("done" if kind == "done" else "failed", a)
            if not self.finished:
                self._end("failed", "the worker process ended unexpectedly "
                          f"(exit code {self.process.exitcode})")

    def _drain(self) -> Iterator[tuple[str, Any, Any]]:
        while True:
            try:
                yield self.messages.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return

    def cancel(self) -> None:
        """End the worker now and delete what it wrote."""
        if self.finished:
            return
        self._stop_worker()
        self.state = "cancelled"
        shutil.rmtree(self.out, ignore_errors=True)

    def _end(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        self.phase = state
        self.process.join(timeout=10)

    def _stop_worker(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
        self.messages.close()
        self.messages.cancel_join_thread()

    def file(self, name: str) -> Path | None:
        """A finished job's download ``name`` (one of :data:`DOWNLOADS`), if written."""
        if self.state != "done" or name not in DOWNLOADS:
            return None
        path = self.out / name
        return path if path.is_file() else None

    def manifest(self) -> dict[str, Any]:
        path = self.out / "manifest.json"
        if self.state != "done" or not path.is_file():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def table(self, name: str) -> list[dict[str, str]]:
        """Rows of an extra table the run wrote (``table1``, ``lab_stats``), as text."""
        import csv

        path = self.out / f"{name}.csv"
        if self.state != "done" or not path.is_file():
            return []
        with path.open(encoding="utf-8", newline="") as fh:
            return [dict(r) for r in csv.DictReader(fh)]

    def figures(self) -> list[tuple[str, str, str]]:
        """``(section, image data URL, caption)`` of every figure in the report: the
        design's sections (trial or laboratory figures) first, then the generic
        "Figures" section, each in the report's order."""
        path = self.file("report.html")
        if path is None:
            return []
        parser = ReportFigures()
        parser.feed(path.read_text(encoding="utf-8"))
        return sorted(parser.found, key=lambda f: f[0] == GENERIC_FIGURES)


class ReportFigures(html.parser.HTMLParser):
    """Collects ``<figure><img src=...><figcaption>...</figcaption></figure>`` with the
    ``<h2>`` heading above each."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self._section = ""
        self._heading: list[str] | None = None
        self._src: str | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._heading = []
        elif tag == "figure":
            self._src, self._caption = None, None
        elif tag == "img" and self._src is None:
            self._src = dict(attrs).get("src") or None
        elif tag == "figcaption":
            self._caption = []

    def handle_data(self, data: str) -> None:
        for part in (self._heading, self._caption):
            if part is not None:
                part.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._heading is not None:
            self._section, self._heading = "".join(self._heading).strip(), None
        elif tag == "figcaption" and self._caption is not None:
            self._caption = [" ".join("".join(self._caption).split())]
        elif tag == "figure" and self._src and self._src.startswith("data:image/"):
            caption = "".join(self._caption or [])
            self.found.append((self._section, self._src, caption))
            self._src, self._caption = None, None


# ----------------------------------------------------------------------------- store


class JobStore:
    """Every job of one server, by id; their workspaces under one temporary root."""

    def __init__(self, max_subjects: int = MAX_SUBJECTS, max_running: int | None = None,
                 keep: int = KEEP_JOBS) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ketasim-dashboard-"))
        self.max_subjects = int(max_subjects)
        self.max_running = int(max_running or os.cpu_count() or 1)
        self.keep = int(keep)
        self.jobs: dict[str, Job] = {}
        self._ctx = mp.get_context("spawn")  # no fork of a server with threads

    def check(self, text: str) -> Checked:
        return check(text, self.max_subjects)

    def start(self, text: str, study: bool = False) -> Job:
        """Start a job from scenario text; KetasimError (one line) if it cannot run."""
        checked = self.check(text)
        if not checked.ok:
            raise ks.KetasimError(checked.error)
        for j in self.jobs.values():
            j.poll()
        if sum(not j.finished for j in self.jobs.values()) >= self.max_running:
            raise ks.KetasimError(f"the server is busy: {self.max_running} runs are going; "
                                  "try again when one has finished")
        self._forget_old()
        job_id = uuid.uuid4().hex
        workspace = self.root / job_id
        workspace.mkdir()
        messages = self._ctx.Queue()
        process = self._ctx.Process(target=_work, args=(text, study, str(workspace / "out"),
                                                        messages),
                                    name=f"ketasim-job-{job_id[:8]}", daemon=True)
        job = Job(job_id, workspace, study, str(checked.scenario.name), process=process,
                  messages=messages)
        process.start()
        self.jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id; None for anything else (a path, an unknown id)."""
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            return None
        return self.jobs.get(job_id)

    def file(self, job_id: str, name: str) -> Path | None:
        """A download of a finished job by id and fixed name; None if there is none."""
        job = self.get(job_id)
        if job is None:
            return None
        job.poll()
        return job.file(name)

    def _forget_old(self) -> None:
        done = [j for j in self.jobs.values() if j.finished]
        for job in done[: max(0, len(done) - self.keep + 1)]:
            shutil.rmtree(job.workspace, ignore_errors=True)
            del self.jobs[job.id]

    def close(self) -> None:
        """Cancel every running job and delete every workspace."""
        for job in self.jobs.values():
            job.cancel()
        self.jobs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

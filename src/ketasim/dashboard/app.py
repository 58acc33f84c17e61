"""The dashboard page (NiceGUI) and the routes that serve a job's files.

One page per browser client: a scenario editor on the left (an example to start from, TOML
validated as you type), the run's progress and results on the right (facts, downloads,
Table 1, the report's figures, the summary table). A client runs one job at a time; a
client that goes away has its job cancelled. Files are served by job id and fixed name:

- ``/jobs/{job_id}/download/{name}``: summary.csv, subjects.parquet or report.html, as a
  download;
- ``/jobs/{job_id}/report``: report.html, to read in the browser.
"""

from __future__ import annotations

import base64
import csv
from pathlib import Path
from typing import Any

import ketasim as ks
from ketasim.dashboard.jobs import (
    DEFAULT_STUDY,
    DOWNLOADS,
    MAX_SUBJECTS,
    Job,
    JobStore,
    default_examples_dir,
    examples,
)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
POLL_S = 0.25  # how often a page looks at its job
SUMMARY_ROWS = 2_000  # rows of summary.csv shown in the page (all are in the download)


def serve(host: str = "127.0.0.1", port: int = 8080, examples_dir: Path | None = None,
          max_subjects: int = MAX_SUBJECTS, show: bool = False) -> None:
    """Run the dashboard server until interrupted (blocks)."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse
    from nicegui import app, ui

    store = JobStore(max_subjects=max_subjects)
    scenarios = examples(examples_dir if examples_dir is not None else default_examples_dir())

    def found(job_id: str, name: str) -> Path:
        path = store.file(job_id, name)
        if path is None:
            raise HTTPException(status_code=404, detail="no such job or file")
        return path

    @app.get("/jobs/{job_id}/download/{name}")
    def download(job_id: str, name: str) -> FileResponse:
        return FileResponse(found(job_id, name), filename=name)

    @app.get("/jobs/{job_id}/report")
    def report(job_id: str) -> FileResponse:
        return FileResponse(found(job_id, "report.html"), media_type="text/html")

    @ui.page("/")
    def index() -> None:
        Page(store, scenarios).build()

    app.on_shutdown(store.close)
    shown = f"[{host}]" if ":" in host else host
    print(f"ketasim dashboard on http://{shown}:{port} (Ctrl-C to stop)", flush=True)
    ui.run(host=host, port=port, title="ketasim", reload=False, show=show,
           show_welcome_message=False, favicon="🧪")


class Page:
    """One browser client's page: the editor, its job and the results."""

    def __init__(self, store: JobStore, scenarios: dict[str, tuple[str, str]]) -> None:
        self.store = store
        self.scenarios = scenarios
        self.study = True
        self.job: Job | None = None

    # ------------------------------------------------------------------------ layout

    def build(self) -> None:
        from nicegui import ui

        ui.page_title("ketasim dashboard")
        with ui.header().classes("items-baseline bg-slate-800"):
            ui.label("ketasim").classes("text-xl font-bold")
            ui.label("virtual patients and animals on ketamine: pick a scenario, run it, "
                     f"read the report · version {ks.__version__}").classes("text-sm opacity-80")
        with ui.row().classes("w-full no-wrap items-start gap-6"):
            with ui.column().classes("w-[38rem] shrink-0 gap-2"):
                self._editor_panel()
            self.results = ui.column().classes("grow min-w-0 gap-3")
            with self.results:
                ui.label("Results appear here after a run.").classes("text-gray-500")
        self.timer = ui.timer(POLL_S, self._tick, active=False)
        ui.context.client.on_delete(self._client_gone)
        self._validate()

    def _editor_panel(self) -> None:
        from nicegui import ui

        options = {k: label for k, (label, _) in self.scenarios.items()}
        self.example = ui.select(options, value=DEFAULT_STUDY, label="Start from an example",
                                 on_change=self._pick).classes("w-full")
        self.example.props('data-testid=example options-dense')
        self.editor = ui.codemirror(self.scenarios[DEFAULT_STUDY][1], language="TOML",
                                    on_change=self._validate, line_wrapping=True)
        self.editor.classes("w-full h-[30rem] border rounded").props("data-testid=editor")
        self.check = ui.label().classes("text-sm").props("data-testid=check")
        with ui.row().classes("items-center gap-2"):
            self.run_button = ui.button("Run", icon="play_arrow", on_click=self._run)
            self.run_button.props("data-testid=run")
            self.cancel_button = ui.button("Cancel", icon="stop", on_click=self._cancel)
            self.cancel_button.props("outline data-testid=cancel")
            self.cancel_button.disable()
        self.bar = ui.linear_progress(value=0, show_value=False, size="10px")
        self.bar.props("data-testid=progress").classes("rounded")
        self.progress = ui.label().classes("text-sm text-gray-600").props(
            "data-testid=progress-text")
        ui.label(f"Runs of up to {self.store.max_subjects} subjects; the scenario format is "
                 "described in docs/scenario-format.md.").classes("text-xs text-gray-500")

    # ---------------------------------------------------------------------- handlers

    def _pick(self) -> None:
        key = self.example.value
        if key not in self.scenarios:  # only names the server offered
            return
        self.study = key == DEFAULT_STUDY
        self.editor.set_value(self.scenarios[key][1])
        self._validate()

    def _validate(self) -> None:
        checked = self.store.check(self.editor.value or "")
        running = self.job is not None and not self.job.finished
        if checked.ok:
            sc = checked.scenario
            extra = " + the six-infusion course (Table 1)" if self.study else ""
            self.check.set_text(f"✓ {sc.name} · {sc.species} · {sc.design.type} · "
                                f"{checked.subjects} subjects{extra}")
            self.check.classes(replace="text-sm text-positive")
        else:
            self.check.set_text(checked.error or "")
            self.check.classes(replace="text-sm text-negative font-mono")
        self.run_button.set_enabled(checked.ok and not running)

    def _run(self) -> None:
        from nicegui import ui

        if self.job is not None and not self.job.finished:
            ui.notify("This page's run is still going: wait for it or cancel it.")
            return
        try:
            self.job = self.store.start(self.editor.value or "", study=self.study)
        except ks.KetasimError as exc:
            self.check.set_text(" ".join(str(exc).split()))
            self.check.classes(replace="text-sm text-negative font-mono")
            return
        self.results.clear()
        with self.results:
            ui.label(f"Running: {self.job.name}").classes("text-lg")
        self.run_button.disable()
        self.cancel_button.enable()
        self.bar.set_value(0)
        self.progress.set_text("starting a worker")
        self.timer.activate()

    def _cancel(self) -> None:
        if self.job is not None and not self.job.finished:
            self.job.cancel()
        self._tick()

    def _client_gone(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _tick(self) -> None:
        job = self.job
        if job is None:
            return
        job.poll()
        self.bar.set_value(job.fraction if job.state != "done" else 1.0)
        if job.state == "running":
            count = f": {job.done} of {job.total}" if job.total else ""
            self.progress.set_text(f"{job.phase}{count}")
            return
        self.timer.deactivate()
        self.cancel_button.disable()
        self.progress.set_text({"done": "finished", "failed": "failed",
                                "cancelled": "cancelled"}[job.state])
        self._validate()
        self._show(job)

    # ----------------------------------------------------------------------- results

    def _show(self, job: Job) -> None:
        from nicegui import ui

        self.results.clear()
        with self.results:
            if job.state == "cancelled":
                ui.label(f"{job.name}: cancelled.").classes("text-lg")
                return
            if job.state == "failed":
                ui.label(f"{job.name}: the run failed").classes("text-lg")
                ui.label(job.error or "").classes("text-negative font-mono").props(
                    "data-testid=run-error")
                return
            self._facts(job)
            self._downloads(job)
            self._table1(job)
            self._figures(job)
            self._summary(job)

    def _figures(self, job: Job) -> None:
        """The report's figures under their headings, side by side where they fit."""
        from nicegui import ui

        sections: dict[str, list[tuple[str, str]]] = {}
        for heading, src, caption in job.figures():
            sections.setdefault(heading, []).append((src, caption))
        k = 0
        for heading, figures in sections.items():
            ui.label(heading).classes("text-lg font-semibold")
            with ui.row().classes("w-full items-start gap-3"):
                for src, caption in figures:
                    width = png_width(src)
                    card = ui.card().props(f"data-testid=figure-{k}").classes("max-w-full")
                    if width:  # the card as wide as its figure: a one-panel one stays small
                        card.style(f"width: {width + 32}px")
                    with card, ui.element("div"):  # a div: Quasar stretches a card's img
                        img = ui.element("img").classes("max-w-full h-auto")
                        img.props.update(src=src, alt=caption)
                        ui.label(caption).classes("text-sm text-gray-600")
                    k += 1

    def _facts(self, job: Job) -> None:
        from nicegui import ui

        m = job.manifest()
        sc = m.get("scenario") or {}
        facts = [str(sc.get("species", "")), str((sc.get("design") or {}).get("type", "")),
                 f"{m.get('subjects', '?')} subjects"]
        facts += [f"solver {k} {v}" for k, v in (m.get("solver_status") or {}).items()]
        facts += [f"engine {m.get('engine', '?')}", f"seed {m.get('seed', '?')}",
                  f"{m.get('wall_time_s', 0):.1f} s"]
        ui.label(job.name).classes("text-xl font-bold").props("data-testid=result-title")
        ui.label(" · ".join(f for f in facts if f)).classes("text-sm text-gray-600")

    def _downloads(self, job: Job) -> None:
        from nicegui import ui

        with ui.row().classes("gap-2 items-center"):
            for name in DOWNLOADS:
                if job.file(name) is None:
                    continue
                link = ui.link(name, f"/jobs/{job.id}/download/{name}")
                link.props(f'download="{name}" data-testid="download-{name}"')
                link.classes("q-btn q-btn--outline normal-case px-3 py-1 rounded border "
                             "no-underline")
            ui.link("open the full report", f"/jobs/{job.id}/report", new_tab=True).props(
                "data-testid=open-report")

    def _table1(self, job: Job) -> None:
        rows = job.table("table1")
        if rows:
            _table("Table 1: published values beside simulated ones", rows, "table1")

    def _summary(self, job: Job) -> None:
        from nicegui import ui

        path = job.file("summary.csv")
        if path is None:
            return
        with path.open(encoding="utf-8", newline="") as fh:
            rows = [dict(r) for _, r in zip(range(SUMMARY_ROWS), csv.DictReader(fh),
                                             strict=False)]
        with ui.expansion(f"Summary table ({len(rows)} rows shown; all in summary.csv)",
                          icon="table_chart").classes("w-full"):
            _table("", rows, "summary", page=15)


def png_width(src: str) -> int | None:
    """Width in pixels of a base64 PNG data URL (from its IHDR header); None if not one."""
    prefix = "data:image/png;base64,"
    if not src.startswith(prefix):
        return None
    head = base64.b64decode(src[len(prefix):len(prefix) + 32] + "==", validate=False)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    return int.from_bytes(head[16:20], "big")


def _table(title: str, rows: list[dict[str, str]], testid: str, page: int = 0) -> Any:
    from nicegui import ui

    if title:
        ui.label(title).classes("text-lg font-semibold")
    columns = [{"name": c, "label": c, "field": c, "align": "left"} for c in rows[0]]
    keyed = [{**r, "_row": k} for k, r in enumerate(rows)]
    table = ui.table(columns=columns, rows=keyed, row_key="_row",
                     pagination=page or None).classes("w-full")
    table.props(f"dense flat bordered wrap-cells data-testid={testid}")
    return table
